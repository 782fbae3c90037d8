"""A rolling z-score detector: the non-recurrent baseline of the evaluation (pure numpy, causal).

Per entity and feature, row i is compared with the mean and standard deviation of that entity's
previous ``window`` rows of the feature (row i itself excluded); ``|z|`` is the largest over the
features. An entity's first ``warmup`` rows (at least 2) score 0. A window with zero spread
(a constant series) gives ``|z| = 0`` for an equal value and ``MAX_Z`` for any other, so a change
out of a flat line counts. The alarm is ``|z| >= threshold``; the NAB score is the monotone map
``|z| / (|z| + threshold)`` (0.5 at the threshold), so NAB's own threshold optimisation sees the
same ordering of rows.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

MAX_Z = 1e6


@dataclass(frozen=True)
class ZScoreParams:
    window: int = 100
    threshold: float = 4.0
    warmup: int = 20


def rolling_abs_z(values: np.ndarray, window: int, warmup: int) -> np.ndarray:
    """``|z|`` of every row of one entity's ``(n, F)`` values, max over features."""
    x = np.asarray(values, dtype=np.float64)
    if x.ndim == 1:
        x = x[:, None]
    n = x.shape[0]
    c1 = np.vstack([np.zeros((1, x.shape[1])), np.cumsum(x, axis=0)])
    c2 = np.vstack([np.zeros((1, x.shape[1])), np.cumsum(x * x, axis=0)])
    i = np.arange(n)
    lo = np.maximum(i - window, 0)
    cnt = (i - lo).astype(np.float64)[:, None]
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = (c1[i] - c1[lo]) / cnt
        var = np.maximum((c2[i] - c2[lo]) / cnt - mean * mean, 0.0)
        dev = np.abs(x - mean)
        sd = np.sqrt(var)
        # cumulative sums lose precision on large levels: treat spreads below 1e-9 of the level as 0
        flat = sd <= 1e-9 * np.maximum(np.abs(mean), 1.0)
        z = np.where(flat, np.where(dev <= 1e-9 * np.maximum(np.abs(mean), 1.0), 0.0, MAX_Z), dev / np.where(flat, 1.0, sd))
    z = np.max(z, axis=1)
    z[: max(warmup, 2)] = 0.0
    return np.nan_to_num(z, nan=0.0, posinf=MAX_Z)


def score_stream(entity: np.ndarray, values: np.ndarray, params: ZScoreParams) -> np.ndarray:
    """``|z|`` of every row of a stream, each entity on its own."""
    out = np.zeros(len(entity))
    for code in np.unique(entity):
        rows = np.flatnonzero(entity == code)
        out[rows] = rolling_abs_z(values[rows], params.window, params.warmup)
    return out


def to_score(abs_z: np.ndarray, threshold: float) -> np.ndarray:
    """``|z| / (|z| + threshold)``: in [0, 1), 0.5 at the threshold."""
    return abs_z / (abs_z + threshold)
