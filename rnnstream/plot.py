"""PNG plots for a person to look at: one entity's values, predictions, scores and anomalies.

``plot_series`` draws one panel per feature (observed, predicted, and a red mark on the features an
anomaly is blamed on) and a score panel (score, the threshold, anomalies in red, suppressed events —
scored at or above the threshold but not reported — in orange). Blame: ``blame`` (events x features,
bool) when the caller has it; otherwise the features whose |z| (normalised prediction error) is at
least ``BLAME_Z``, or the largest one. Needs matplotlib (``pip install 'rnnstream[plot]'``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from .errors import RnnstreamError

BLAME_Z = 3.0
"""|z| at or above which a feature is marked as a cause of an anomaly (when no blame is given)."""


def require_matplotlib() -> Any:
    """``matplotlib.pyplot`` (Agg backend), or RnnstreamError saying how to install it."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise RnnstreamError("plotting needs matplotlib: pip install 'rnnstream[plot]'") from None
    return plt


def blame_from_z(z: np.ndarray) -> np.ndarray:
    """(n, F) bool: per event, the features with |z| >= BLAME_Z, or the one with the largest |z|."""
    z = np.abs(np.nan_to_num(np.asarray(z, dtype=np.float64), nan=0.0))
    if z.size == 0:
        return np.zeros(z.shape, dtype=bool)
    mask = z >= BLAME_Z
    top = np.zeros_like(mask)
    top[np.arange(len(z)), np.argmax(z, axis=1)] = True
    return np.where(mask.any(axis=1, keepdims=True), mask, top)


@dataclass
class Series:
    """Arrays of one entity's events, in time order (``anomaly``/``suppressed``/``blame`` may be empty)."""

    entity: str
    t: np.ndarray                       # (n,) epoch seconds
    x: np.ndarray                       # (n, F) observed
    pred: np.ndarray                    # (n, F) predicted (NaN where unknown)
    score: np.ndarray                   # (n,)
    anomaly: np.ndarray                 # (n,) bool
    suppressed: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=bool))
    blame: np.ndarray | None = None     # (n, F) bool, or None: derived from z
    z: np.ndarray | None = None         # (n, F)

    @classmethod
    def of(cls, entity: str, t, x, pred, score, anomaly, suppressed=None, z=None, blame=None) -> "Series":
        n = len(t)
        x = np.asarray(x, dtype=np.float64).reshape(n, -1)
        return cls(entity, np.asarray(t, dtype=np.float64), x, np.asarray(pred, dtype=np.float64).reshape(n, -1),
                   np.asarray(score, dtype=np.float64), np.asarray(anomaly, dtype=bool),
                   np.zeros(n, dtype=bool) if suppressed is None else np.asarray(suppressed, dtype=bool),
                   None if blame is None else np.asarray(blame, dtype=bool).reshape(n, -1),
                   None if z is None else np.asarray(z, dtype=np.float64).reshape(n, -1))

    def window(self, start: float | None, end: float | None) -> "Series":
        keep = np.ones(len(self.t), dtype=bool)
        if start is not None:
            keep &= self.t >= start
        if end is not None:
            keep &= self.t <= end
        pick = (lambda a: None if a is None else a[keep])
        return Series(self.entity, self.t[keep], self.x[keep], self.pred[keep], self.score[keep], self.anomaly[keep],
                      self.suppressed[keep] if len(self.suppressed) else self.suppressed, pick(self.blame), pick(self.z))

    def culprits(self) -> np.ndarray:
        """(n, F) bool: which features each anomaly is marked on."""
        if self.blame is not None:
            mask = self.blame.copy()
        elif self.z is not None:
            mask = blame_from_z(self.z)
        else:
            mask = np.ones(self.x.shape, dtype=bool)
        mask &= self.anomaly[:, None]
        return mask


def plot_series(series: Any, feature_names: Sequence[str], out: str | Path, *, threshold: float | None = None,
                start: float | None = None, end: float | None = None, title: str | None = None) -> Path:
    """Draw ``series`` (a :class:`Series`, or anything with its fields as lists) to the PNG ``out``."""
    plt = require_matplotlib()
    s = series if isinstance(series, Series) else Series.of(
        series.entity, series.t, series.x, series.pred, series.score, series.anomaly,
        getattr(series, "suppressed", None), getattr(series, "z", None) or None, getattr(series, "blame", None) or None)
    s = s.window(start, end)
    if len(s.t) == 0:
        raise RnnstreamError(f"entity {s.entity!r}: no events to plot in the chosen time range")
    t = s.t.astype("datetime64[s]")
    n_feat = s.x.shape[1]
    marks = s.culprits()
    fig, axes = plt.subplots(n_feat + 1, 1, figsize=(12, 2.4 * (n_feat + 1)), sharex=True, squeeze=False)
    axes = axes[:, 0]
    for f in range(n_feat):
        ax = axes[f]
        ax.plot(t, s.x[:, f], lw=0.8, label="observed")
        if np.isfinite(s.pred[:, f]).any():
            ax.plot(t, s.pred[:, f], lw=0.8, alpha=0.7, label="predicted")
        hit = marks[:, f]
        ax.scatter(t[hit], s.x[hit, f], color="red", zorder=3, s=18, label="anomaly (this feature)")
        ax.set_ylabel(feature_names[f] if f < len(feature_names) else f"feature {f}")
        ax.legend(loc="upper left", fontsize=7)
    ax = axes[-1]
    ax.plot(t, s.score, lw=0.8, color="black", label="score")
    if threshold is not None:
        ax.axhline(threshold, color="grey", ls="--", lw=0.8, label=f"threshold {threshold:g}")
    if len(s.suppressed) and s.suppressed.any():
        ax.scatter(t[s.suppressed], s.score[s.suppressed], color="orange", marker="x", zorder=3, s=14,
                   label="suppressed")
    ax.scatter(t[s.anomaly], s.score[s.anomaly], color="red", zorder=4, s=18, label="anomaly")
    ax.set_ylabel("score")
    ax.set_ylim(0, 1.02)
    if start is not None and end is not None:
        ax.set_xlim(np.datetime64(int(start), "s"), np.datetime64(int(end), "s"))
    ax.legend(loc="upper left", fontsize=7)
    fig.suptitle(title or f"entity {s.entity}")
    fig.tight_layout()
    out = Path(out)
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return out


def plot_entity(rows: Sequence[tuple], feature_names: Sequence[str], out: str | Path,
                entity: str | None = None, **kwargs: Any) -> Path:
    """Plot ``rows`` of ``(entity, t, x, pred, score, is_anomaly[, suppressed[, z]])`` of one entity
    (default: the first); keyword arguments go to :func:`plot_series`."""
    require_matplotlib()
    if not rows:
        raise RnnstreamError("nothing to plot: no processed events")
    entity = rows[0][0] if entity is None else entity
    mine = [r for r in rows if r[0] == entity]
    if not mine:
        raise RnnstreamError(f"entity {entity!r} has no processed events")
    cols = list(zip(*mine))
    series = Series.of(entity, cols[1], np.stack(cols[2]), np.stack(cols[3]), cols[4], cols[5],
                       cols[6] if len(cols) > 6 else None, np.stack(cols[7]) if len(cols) > 7 else None)
    return plot_series(series, feature_names, out, **kwargs)
