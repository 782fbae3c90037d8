"""PNG plots for a person to look at: one entity's values, predictions, scores and anomalies."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from .errors import RnnstreamError


def plot_entity(rows: Sequence[tuple], feature_names: Sequence[str], out: str | Path,
                entity: str | None = None) -> Path:
    """Plot ``rows`` of ``(entity, t, x, pred, score, is_anomaly)`` for one entity (default: the first).

    Needs matplotlib (``pip install rnnstream[plot]``).
    """
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise RnnstreamError("plotting needs matplotlib: pip install 'rnnstream[plot]'") from None
    if not rows:
        raise RnnstreamError("nothing to plot: no processed events")
    entity = rows[0][0] if entity is None else entity
    mine = [r for r in rows if r[0] == entity]
    if not mine:
        raise RnnstreamError(f"entity {entity!r} has no processed events")
    t = np.array([r[1] for r in mine]).astype("datetime64[s]")
    x = np.stack([r[2] for r in mine])
    pred = np.stack([r[3] for r in mine])
    score = np.array([r[4] for r in mine])
    anomaly = np.array([r[5] for r in mine])
    n_feat = x.shape[1]
    fig, axes = plt.subplots(n_feat + 1, 1, figsize=(12, 2.4 * (n_feat + 1)), sharex=True)
    for f in range(n_feat):
        ax = axes[f]
        ax.plot(t, x[:, f], lw=0.8, label="observed")
        ax.plot(t, pred[:, f], lw=0.8, alpha=0.7, label="predicted")
        ax.scatter(t[anomaly], x[anomaly, f], color="red", zorder=3, s=18, label="anomaly")
        ax.set_ylabel(feature_names[f])
        ax.legend(loc="upper left", fontsize=7)
    axes[-1].plot(t, score, lw=0.8, color="black")
    axes[-1].scatter(t[anomaly], score[anomaly], color="red", zorder=3, s=18)
    axes[-1].set_ylabel("score")
    axes[-1].set_ylim(0, 1.02)
    fig.suptitle(f"entity {entity}")
    fig.tight_layout()
    out = Path(out)
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return out
