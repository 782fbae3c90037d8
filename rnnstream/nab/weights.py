"""NAB's per-row weights: probation length, window-to-row mapping, scaled-sigmoid weights.

These follow NAB v1.1's ``Sweeper.calcSweepScore`` (see /work/shared/nab/README.md):

- probation is ``min(floor(0.15 * N), 750)`` rows;
- a window ``[left, right]`` (inclusive row indices, ``width = right - left + 1``) gives row ``i``
  inside it ``S(-(right - i + 1) / width) / S(-1)`` times tpWeight (1.0 at ``left``);
- a row before any window weighs ``-1`` times fpWeight, a row after a window
  ``S(|prev_right - i| / (prev_width - 1))`` times fpWeight, where ``S(p) = 2 sig(-5p) - 1``
  and ``S(p) = -1`` for ``p >= 3`` (NAB's own cut-off; the README's ``> 3`` differs by < 1e-6).

Not NAB: after a window one row wide NAB divides by zero; here such rows weigh ``-1`` (p = inf).
Weights are returned *per unit* cost (``tp = fp = 1``): callers scale them per profile.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from rnnstream.nab.dataset import NabDataError, parse_timestamps

PROBATION_FRACTION = 0.15
PROBATION_CAP_ROWS = 750  # NAB: probationPercent * 5000


def probation_length(n_rows: int, fraction: float = PROBATION_FRACTION) -> int:
    """Rows at the start of a file that are neither scored as detections nor as misses."""
    return int(min(math.floor(fraction * n_rows), fraction * 5000))


def scaled_sigmoid(p: np.ndarray | float) -> np.ndarray:
    """NAB's ``S(p) = 2 / (1 + exp(5p)) - 1``, and ``-1`` for ``p >= 3``."""
    p = np.asarray(p, dtype=np.float64)
    clipped = np.minimum(p, 3.0)  # keeps exp() finite; those rows are overwritten below
    return np.where(p >= 3.0, -1.0, 2.0 / (1.0 + np.exp(5.0 * clipped)) - 1.0)


MAX_TP = float(scaled_sigmoid(-1.0))


def as_epoch_seconds(ts: np.ndarray | Sequence, where: str = "<timestamps>") -> np.ndarray:
    """Timestamps (datetime64, epoch seconds as numbers, or 'YYYY-MM-DD HH:MM:SS' strings) as int64 seconds."""
    a = np.asarray(ts)
    if a.dtype.kind == "M":
        return a.astype("datetime64[s]").astype(np.int64)
    if a.dtype.kind in "iuf":
        return np.asarray(np.round(a), dtype=np.int64)
    return parse_timestamps(list(a.ravel()), where).astype(np.int64).reshape(a.shape)


def window_rows(timestamps: np.ndarray, windows: Sequence[tuple], where: str = "<file>") -> np.ndarray:
    """Map windows given as (start, end) timestamps to inclusive row indices, shape ``(k, 2)``.

    Mirrors NAB: a window starts at the first row (after the previous window) whose timestamp
    equals ``start`` exactly, and its right edge is the first row of the file equal to ``end``.
    Timestamps need not be sorted or unique (NAB data has duplicates and one backward jump).
    Raises NabDataError when a bound matches no row, or when windows overlap or are out of order.
    """
    ts = as_epoch_seconds(timestamps, where)
    out = np.empty((len(windows), 2), dtype=np.int64)
    pos = 0
    for n, (start, end) in enumerate(windows):
        s, e = as_epoch_seconds([start, end], where)
        hits = np.flatnonzero(ts[pos:] == s)
        if hits.size == 0:
            raise NabDataError(f"{where}: window {n} start {np.datetime64(int(s), 's')} matches no row "
                               f"at or after row {pos}; NAB requires an exact timestamp match")
        left = pos + int(hits[0])
        ends = np.flatnonzero(ts == e)
        if ends.size == 0:
            raise NabDataError(f"{where}: window {n} end {np.datetime64(int(e), 's')} matches no row")
        right = int(ends[0])
        exit_hits = np.flatnonzero(ts[left:] == e)
        if right < left or left + int(exit_hits[0]) != right:
            raise NabDataError(f"{where}: window {n} end {np.datetime64(int(e), 's')} first occurs at row "
                               f"{right}, not after its start row {left}; cannot map it like NAB")
        out[n] = left, right
        pos = right + 1
    return out


def unit_weights(n_rows: int, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-row ``(weight, window_id)`` for unit costs; ``window_id`` is -1 outside windows.

    Inside a window the weight is the true-positive weight (to be multiplied by tpWeight); outside
    it is the (negative) false-positive weight (to be multiplied by fpWeight).
    """
    idx = np.arange(n_rows)
    weight = np.full(n_rows, -1.0)
    wid = np.full(n_rows, -1, dtype=np.int64)
    rows = np.asarray(rows, dtype=np.int64).reshape(-1, 2)
    for k, (left, right) in enumerate(rows):
        width = right - left + 1
        i = idx[left:right + 1]
        weight[left:right + 1] = scaled_sigmoid(-(right - i + 1) / width) / MAX_TP
        wid[left:right + 1] = k
    if len(rows):
        outside = np.flatnonzero(wid < 0)
        prev = np.searchsorted(rows[:, 1], outside, side="left") - 1
        after = prev >= 0
        rows_after = outside[after]
        prev_right = rows[prev[after], 1]
        denom = (rows[prev[after], 1] - rows[prev[after], 0]).astype(np.float64)  # prev_width - 1
        with np.errstate(divide="ignore", invalid="ignore"):
            p = np.where(denom > 0, np.abs(prev_right - rows_after) / np.where(denom > 0, denom, 1.0), np.inf)
        weight[rows_after] = scaled_sigmoid(p)
    return weight, wid
