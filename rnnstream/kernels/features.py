"""Input preparation: per-entity online normalisation and time features.

Normalisation is an exponentially weighted mean and variance per entity and feature, with a
count-based warm start (the first events are weighted as a plain running mean). An event is
normalised with the statistics *before* it, then folded in: the input is causal. A constant series has
zero variance; its deviations are measured against a small floor relative to its level and clipped to
``[-zclip, zclip]`` so that one step change cannot blow up the recurrent state.

Daily profile (``profile_bins`` B > 0): per entity, time-of-day bin and feature, the mean of the raw
values that fell in that bin (a running mean over the bin's first ``1 / profile_rate`` values, then
exponential). The input gets, per feature, the profile at the event's bin (as it was before the event)
and at the bin of the expected next event (the event time plus the previous gap, after the event is
folded in), both normalised like the feature. A bin with no value yet stands in with the event's own
normalised value (current bin) or the current bin's profile (next bin), so an empty profile implies no
change. The profile lives in the per-entity statistics row (``calibrate.profile_offset``), its means as
float32 (``calibrate.PROFILE_MEANS_PER_WORD``), saturated at float32's largest value; a bin's
count is kept up to ``calibrate.PROFILE_COUNT_MAX`` (15) only, which is exact as long as
``1 / profile_rate`` (10) is below it: beyond, the count changes nothing.
"""

from __future__ import annotations

import math

import numpy as np

from .jit import device
from .calibrate import (PROFILE_COUNT_BITS, PROFILE_COUNT_MAX, PROFILE_COUNTS_PER_WORD, PROFILE_MEAN_MAX,
                        PROFILE_MEANS_PER_WORD, profile_means_size_kernel, profile_offset_kernel)
from .params import KP_DOW, KP_GAP, KP_HALFLIFE, KP_PROFILE_BINS, KP_PROFILE_RATE, KP_TOD, KP_ZCLIP

DAY = 86400.0
WEEK_OFFSET_DAYS = 3.0  # 1970-01-01 was a Thursday; shift so that Monday 00:00 UTC is angle 0
GAP_SCALE = 10.0        # log1p(gap seconds) / GAP_SCALE keeps the gap feature within ~[0, 1.5]
REL_FLOOR = 1e-6        # standard deviation floor relative to |mean|
ABS_FLOOR = 1e-9


@device
def prepare_input(x, t, s, count, last_ts, nmean, nvar, sc, kp, u, msd):
    """Write entity ``s``'s model input for the event ``(x, t)`` into ``u``; update its normaliser.

    ``u[:F]`` is the clipped normalised feature vector, then the time features that ``kp`` enables
    (time of day sin/cos, day of week sin/cos, log of the gap since the entity's previous event, the
    daily profile at the current and the expected next bin, see the module docstring); updates the
    profile in ``sc[s]`` and returns how many values the event's bin held before it (0.0 when the profile
    is off). ``msd[0]`` and ``msd[1]`` receive the mean and deviation the event was normalised with. Does not
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
    gap = 0.0
    if n > 0:
        gap = max(t - last_ts[s], 0.0)
    k = calendar_features(t, gap, kp, u, n_features)
    n_bins = int(kp[KP_PROFILE_BINS])
    if n_bins > 0:
        return daily_profile(x, t, gap, s, sc, n_bins, kp[KP_PROFILE_RATE], zclip, u, k, msd)
    return 0.0


@device
def calendar_features(t, gap, kp, u, k):
    """Write the calendar features ``kp`` enables for event time ``t`` and ``gap`` (seconds since the
    entity's previous event, 0 for its first) at ``u[k:]``; return the index after them. The one
    place they are computed: the step kernels and the history ring's window cut (``ring``) share it."""
    if kp[KP_TOD] != 0.0:
        u[k], u[k + 1] = turn_sincos(float_mod(t, DAY) / DAY)
        k += 2
    if kp[KP_DOW] != 0.0:
        u[k], u[k + 1] = turn_sincos(float_mod(t / DAY + WEEK_OFFSET_DAYS, 7.0) / 7.0)
        k += 2
    if kp[KP_GAP] != 0.0:
        u[k] = math.log1p(gap) / GAP_SCALE
        k += 1
    return k


FAST_MOD_LIMIT = 2.0 ** 42   # float_mod's exact shortcut covers 0 < x < this (year 141,000 in seconds)


@device
def float_mod(x, m):
    """``x % m`` (Python's float modulo) for a whole number ``m >= 1``, bit for bit, without libm's
    ``fmod`` call for ``0 < x < FAST_MOD_LIMIT``.

    There ``q = floor(x / m)`` is the true quotient's floor or one off, ``q m`` is exact (a whole number
    below 2^53) and so is ``x - q m`` (a multiple of ulp(x) smaller than 2m and than 2x); one
    correction by ``m`` then gives the exact remainder in [0, m), which is what ``%`` returns (tested
    against it near multiples of ``m``). Other ``x`` take ``%`` itself.
    """
    if 0.0 < x < FAST_MOD_LIMIT:
        q = math.floor(x / m)
        r = x - q * m
        if r < 0.0:
            r += m
        elif r >= m:
            r -= m
        return r
    return x % m


@device
def turn_sincos(f):
    """``(sin(2 pi f), cos(2 pi f))`` for ``f`` in [0, 1], within 1e-11 (tested against ``math``).

    Inline polynomials instead of libm's ``sincos`` call: ``f`` is reduced to the nearest quarter
    turn, leaving an angle within pi/4, where Taylor series to degree 11 and 12 suffice.
    """
    q = math.floor(4.0 * f + 0.5)
    a = (2.0 * math.pi) * (f - 0.25 * q)
    a2 = a * a
    sn = a * (1.0 + a2 * (-1.0 / 6 + a2 * (1.0 / 120 + a2 * (-1.0 / 5040 + a2 * (1.0 / 362880
                                                                                  + a2 * (-1.0 / 39916800))))))
    cs = 1.0 + a2 * (-0.5 + a2 * (1.0 / 24 + a2 * (-1.0 / 720 + a2 * (1.0 / 40320 + a2 * (-1.0 / 3628800
                                                                                        + a2 * (1.0 / 479001600))))))
    quadrant = int(q) & 3
    if quadrant == 0:
        return sn, cs
    if quadrant == 1:
        return cs, -sn
    if quadrant == 2:
        return -sn, -cs
    return -cs, sn


@device
def day_bin(t, n_bins):
    """The time-of-day bin of event time ``t`` (seconds, UTC)."""
    return min(int(float_mod(t, DAY) / DAY * n_bins), n_bins - 1)


@device
def daily_profile(x, t, gap, s, sc, n_bins, rate, zclip, u, k, msd):
    """Write the profile inputs at ``u[k:k + 2F]`` (current bin, then next bin); fold ``x`` into its bin.

    Returns the number of values the current bin held before ``x``.
    """
    n_features = x.shape[0]
    base = profile_offset_kernel(n_features)
    counts = base + profile_means_size_kernel(n_features, n_bins)
    means = sc[s].view(np.float32)   # the float32 means, from float64 word ``base`` on
    b_cur = day_bin(t, n_bins)
    b_nxt = day_bin(t + gap, n_bins)
    cur = base * PROFILE_MEANS_PER_WORD + b_cur * n_features
    nxt = base * PROFILE_MEANS_PER_WORD + b_nxt * n_features
    n_cur = profile_count(sc, s, counts, b_cur)
    for f in range(n_features):
        p = u[f]
        if n_cur > 0.0:
            p = min(max((means[cur + f] - msd[0, f]) / msd[1, f], -zclip), zclip)
        u[k + f] = p
    a = max(1.0 / (n_cur + 1.0), rate)
    for f in range(n_features):
        m = float(means[cur + f])
        means[cur + f] = min(max(m + a * (x[f] - m), -PROFILE_MEAN_MAX), PROFILE_MEAN_MAX)   # float64, stored as float32
    if n_cur < PROFILE_COUNT_MAX:
        sc[s, counts + b_cur // PROFILE_COUNTS_PER_WORD] += float(
            1 << (PROFILE_COUNT_BITS * (b_cur % PROFILE_COUNTS_PER_WORD)))
    n_nxt = profile_count(sc, s, counts, b_nxt)
    for f in range(n_features):
        p = u[k + f]
        if n_nxt > 0.0:
            p = min(max((means[nxt + f] - msd[0, f]) / msd[1, f], -zclip), zclip)
        u[k + n_features + f] = p
    return n_cur


@device
def profile_count(sc, s, counts, b):
    """How many values bin ``b`` of entity ``s``'s profile holds (up to ``PROFILE_COUNT_MAX``); the
    packed counts start at ``sc[s, counts]``."""
    word = int(sc[s, counts + b // PROFILE_COUNTS_PER_WORD])
    return float((word >> (PROFILE_COUNT_BITS * (b % PROFILE_COUNTS_PER_WORD))) & PROFILE_COUNT_MAX)
