"""The per-entity history ring, from which training windows are cut, in its compact exact form.

A model input ``u`` (``features.prepare_input``) is the normalised features, the calendar features
(time of day, day of week, log gap: functions of the event times alone) and the daily-profile inputs.
The ring keeps only what cannot be recomputed, each value exactly as the network was fed it:

* ``ring_in`` (W, S) float32: ``u`` without its calendar features (``stored_inputs``);
* ``ring_t`` (W + 1,) float64: the event times, so the calendar features, and the gap of the oldest
  event of a window (which needs the time before it), are recomputed by the same code that made them;
* ``ring_flag`` (ceil(W / 8),) uint8: one bit per event, set where it scored as an anomaly.

The ring position of an entity's event number ``e`` (0-based, its ``count`` before the event) is
``e % W`` (``e % (W + 1)`` for ``ring_t``), so the ring needs no cursor of its own.

The rings are pooled fields of the ``SlotState`` (``FieldSpec(pooled=True)``): only a bounded sample of
entities keeps one (``training.sample_entities``, the first to arrive while a ring is free), at row
``pool_row[s] - 1`` of the ring arrays; ``pool_row[s] == 0`` means entity ``s`` keeps no history
(its events are scored all the same, they only never become training windows).

Guaranteed (tested against the inputs the step kernels fed): :func:`unroll_windows` returns, bit for
bit, the last W inputs an entity's network was fed, oldest first. The layout is shared by every model
type (``models.base.common_fields``); training code receives only the unrolled (B, W, D) float32
windows (``training.windows.harvest_windows``).
"""

from __future__ import annotations

import numpy as np

from .features import calendar_features
from .jit import device, trainer
from .params import KP_DOW, KP_GAP, KP_TOD


@device
def finish_event(s, t, u, n_features, flag, count, last_ts, pool_row, ring_in, ring_t, ring_flag):
    """Append input ``u`` (its stored part) and anomaly ``flag`` to entity ``s``'s ring, if it keeps
    one, keep its time ``t``, then count the event."""
    e = count[s]
    r = pool_row[s] - 1
    if r >= 0:
        w = ring_in.shape[1]
        p = e % w
        n_stored = ring_in.shape[2]
        n_calendar = u.shape[0] - n_stored
        for j in range(n_features):
            ring_in[r, p, j] = u[j]
        for j in range(n_features, n_stored):
            ring_in[r, p, j] = u[n_calendar + j]
        ring_t[r, e % (w + 1)] = t
        bit = np.uint8(1 << (p & 7))
        if flag != 0:
            ring_flag[r, p >> 3] |= bit
        else:
            ring_flag[r, p >> 3] &= ~bit
    count[s] = e + 1
    last_ts[s] = t


def calendar_inputs(kp: np.ndarray) -> int:
    """How many calendar features ``kp`` enables (``features.calendar_features`` writes that many)."""
    return 2 * int(kp[KP_TOD] != 0.0) + 2 * int(kp[KP_DOW] != 0.0) + int(kp[KP_GAP] != 0.0)


def stored_inputs(n_features: int, profile_bins: int) -> int:
    """S: the inputs a ring keeps per event, the normalised features and, with a daily profile, its two
    inputs per feature (``params.n_time_features``); the calendar features are recomputed."""
    return n_features * (3 if profile_bins else 1)


@trainer
def unroll_windows(rows, counts, n_features, kp, ring_in, ring_t, out):
    """Write the last ``n = out.shape[1]`` inputs of the rings at ``rows`` (ring rows, not slots), whose
    entities have seen ``counts`` events (``n <= W`` and ``n <= counts[k]``), oldest first, as the step
    kernel fed them, into ``out[k]`` (len(rows), n, D) float32."""
    w = ring_in.shape[1]
    n = out.shape[1]
    n_stored = ring_in.shape[2]
    d = out.shape[2]
    n_calendar = d - n_stored
    u = np.zeros(d, dtype=np.float32)
    for k in range(rows.shape[0]):
        s = rows[k]
        c = counts[k]
        for i in range(n):
            e = c - n + i
            p = e % w
            t = ring_t[s, e % (w + 1)]
            gap = 0.0
            if e > 0:
                gap = max(t - ring_t[s, (e - 1) % (w + 1)], 0.0)
            calendar_features(t, gap, kp, u, n_features)
            for j in range(n_features):
                out[k, i, j] = ring_in[s, p, j]
            for j in range(n_features, n_features + n_calendar):
                out[k, i, j] = u[j]
            for j in range(n_features, n_stored):
                out[k, i, n_calendar + j] = ring_in[s, p, j]


def clean_windows(ring_flag: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """True for each of the ring ``rows`` whose full ring holds no anomaly flag (every bit of a full
    ring is a flag of one of its W events)."""
    return ~ring_flag[rows].any(axis=1)


def flags_by_position(ring_flag_row: np.ndarray, window: int) -> np.ndarray:
    """One ring's anomaly flags (W,) bool, indexed by ring position (``e % W`` for event ``e``)."""
    return np.unpackbits(ring_flag_row, bitorder="little")[:window].astype(bool)
