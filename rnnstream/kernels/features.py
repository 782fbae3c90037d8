"""Input preparation: per-entity online normalisation and time features.

Normalisation is an exponentially weighted mean and variance per entity and feature, with a
count-based warm start (the first events are weighted as a plain running mean). An event is
normalised with the statistics *before* it, then folded in: the input is causal. A constant series has
zero variance; its deviations are measured against a small floor relative to its level and clipped to
``[-zclip, zclip]`` so that one step change cannot blow up the recurrent state.
"""

from __future__ import annotations

import math

from .jit import device
from .params import KP_DOW, KP_GAP, KP_HALFLIFE, KP_TOD, KP_ZCLIP

DAY = 86400.0
WEEK_OFFSET_DAYS = 3.0  # 1970-01-01 was a Thursday; shift so that Monday 00:00 UTC is angle 0
GAP_SCALE = 10.0        # log1p(gap seconds) / GAP_SCALE keeps the gap feature within ~[0, 1.5]
REL_FLOOR = 1e-6        # standard deviation floor relative to |mean|
ABS_FLOOR = 1e-9


@device
def prepare_input(x, t, s, count, last_ts, nmean, nvar, kp, u, msd):
    """Write entity ``s``'s model input for the event ``(x, t)`` into ``u``; update its normaliser.

    ``u[:F]`` is the clipped normalised feature vector, then the time features that ``kp`` enables
    (time of day sin/cos, day of week sin/cos, log of the gap since the entity's previous event).
    ``msd[0]`` and ``msd[1]`` receive the mean and deviation the event was normalised with. Does not
    touch ``count`` or ``last_ts``: ``ring.finish_event`` does, once the event is scored.
    """
    n = count[s]
    n_features = x.shape[0]
    alpha = max(1.0 / (n + 1.0), math.log(2.0) / kp[KP_HALFLIFE])
    zclip = kp[KP_ZCLIP]
    for f in range(n_features):
        m = nmean[s, f]
        v = nvar[s, f]
        sd = max(math.sqrt(v), REL_FLOOR * abs(m) + ABS_FLOOR)
        z = 0.0
        if n > 0:
            z = min(max((x[f] - m) / sd, -zclip), zclip)
        u[f] = z
        msd[0, f] = m
        msd[1, f] = sd
        d = x[f] - m
        nmean[s, f] = m + alpha * d
        nvar[s, f] = (1.0 - alpha) * (v + alpha * d * d)
    k = n_features
    if kp[KP_TOD] != 0.0:
        a = 2.0 * math.pi * ((t % DAY) / DAY)
        u[k] = math.sin(a)
        u[k + 1] = math.cos(a)
        k += 2
    if kp[KP_DOW] != 0.0:
        a = 2.0 * math.pi * (((t / DAY + WEEK_OFFSET_DAYS) % 7.0) / 7.0)
        u[k] = math.sin(a)
        u[k + 1] = math.cos(a)
        k += 2
    if kp[KP_GAP] != 0.0:
        gap = 0.0
        if n > 0:
            gap = max(t - last_ts[s], 0.0)
        u[k] = math.log1p(gap) / GAP_SCALE
