"""Error calibration: a prediction error becomes a score in [0, 1], as HTM's anomaly likelihood does.

Per entity, the error of each event is reduced to one number: the root mean square over features, in
normalised units (standard deviations of the series), taken on a log scale ``log(e + error_floor)``
so that the long-run statistics are not ruled by the heaviest errors, and errors well below
``error_floor`` count as equally small (on that scale the long-run deviation is at least
``LOG_SD_FLOOR``); ``error_floor: 0`` keeps the raw error. A short exponential mean of that number is
set against the long-run distribution of the short mean (exponentially weighted mean and variance over
``long_window`` events); the Gaussian upper-tail probability ``q`` of the current short mean is mapped
to ``log(q + 1e-10) / log(1e-10)``, so that 0.5 means a one-in-100,000 deviation and 1.0 a
one-in-10^10 one. The statistics exclude the current event when it is scored, so the score is causal.

Value novelty (like NAB's numenta detector's spatial anomaly): an event whose value leaves the
entity's seen range by more than ``novelty_tolerance`` of that range scores 1.

Alert hygiene: once an entity raises an anomaly, it raises no other for ``suppress_events`` events and
``min_gap_seconds`` seconds. Events inside that period carry flag bit ``FLAG_SUPPRESSED``.
"""

from __future__ import annotations

import math

from .jit import device
from .params import (KP_ERR_FLOOR, KP_LONG, KP_MIN_GAP, KP_NOVELTY, KP_SHORT, KP_SUPPRESS, KP_THRESHOLD,
                     KP_WARMUP)

# Layout of the per-entity scorer row (float64).
SC_SHORT = 0       # short exponential mean of the error
SC_MEAN = 1        # long-run mean of the short mean
SC_VAR = 2         # long-run variance of the short mean
SC_N = 3           # errors folded into the statistics
SC_ALARMED = 4     # 1.0 once the entity has raised an anomaly
SC_ALARM_N = 5     # the entity's event count at its last anomaly
SC_ALARM_T = 6     # the event time of its last anomaly
SC_RANGE = 8       # then, per feature f: min at SC_RANGE + 2f, max at SC_RANGE + 2f + 1
# After the ranges, when the daily profile is on (``features.prepare_input``): per time-of-day bin b,
# its event count at ``profile_offset(F) + b * (F + 1)``, then the F per-feature means.


def profile_offset(n_features: int) -> int:
    """Where the daily profile starts in the per-entity statistics row."""
    return SC_RANGE + 2 * n_features


def sc_size(n_features: int, profile_bins: int = 0) -> int:
    """Length of the per-entity statistics row for ``n_features`` features and a daily profile."""
    return profile_offset(n_features) + profile_bins * (n_features + 1)

FLAG_ANOMALY = 1
FLAG_SUPPRESSED = 2
FLAG_LATE = 4       # refused: older than the entity's previous event beyond late_tolerance_seconds

TAIL_FLOOR = 1e-10
SD_FLOOR = 1e-6
LOG_SD_FLOOR = 0.05  # on the log scale: a 5% change of error + error_floor is at most one deviation


@device
def tail_score(x):
    """Map a z-value of the short error mean to a score in [0, 1] (0.5 at a 1e-5 upper tail)."""
    q = 0.5 * math.erfc(x / math.sqrt(2.0))
    score = math.log(q + TAIL_FLOOR) / math.log(TAIL_FLOOR)
    return min(max(score, 0.0), 1.0)


@device
def novelty(x, n, s, sc, kp):
    """1.0 when a feature leaves the entity's seen range by more than the tolerance; updates the range."""
    tol = kp[KP_NOVELTY]
    hit = 0.0
    for f in range(x.shape[0]):
        k = SC_RANGE + 2 * f
        if n == 0:
            sc[s, k] = x[f]
            sc[s, k + 1] = x[f]
            continue
        lo = sc[s, k]
        hi = sc[s, k + 1]
        margin = (hi - lo) * tol
        if tol > 0.0 and hi > lo and (x[f] > hi + margin or x[f] < lo - margin):
            hit = 1.0
        sc[s, k] = min(lo, x[f])
        sc[s, k + 1] = max(hi, x[f])
    return hit


@device
def rms(err):
    """Root mean square of the vector ``err``."""
    acc = 0.0
    for f in range(err.shape[0]):
        acc += err[f] * err[f]
    return math.sqrt(acc / err.shape[0])


@device
def score_event(err, x, n, t, s, sc, kp):
    """Score entity ``s``'s event with prediction error vector ``err``; return ``(score, flags)``.

    ``n`` is the entity's event count before this event; ``t`` its event time in seconds. An entity's
    first event has no prediction and scores 0 without touching the statistics; events before
    ``warmup_events`` score 0 but are folded in.
    """
    return score_error(rms(err), x, n, t, s, sc, kp)


@device
def score_error(e, x, n, t, s, sc, kp):
    """``score_event`` for an error already reduced to the scalar ``e`` (RMS over features)."""
    novel = novelty(x, n, s, sc, kp)
    if n == 0:
        return 0.0, 0
    sd_floor = SD_FLOOR
    if kp[KP_ERR_FLOOR] > 0.0:
        e = math.log(e + kp[KP_ERR_FLOOR])
        sd_floor = LOG_SD_FLOOR

    n_seen = sc[s, SC_N]
    a_short = max(1.0 / (n_seen + 1.0), 2.0 / (kp[KP_SHORT] + 1.0))
    short = sc[s, SC_SHORT] + a_short * (e - sc[s, SC_SHORT])
    sc[s, SC_SHORT] = short

    mu = sc[s, SC_MEAN]
    var = sc[s, SC_VAR]
    score = 0.0
    if n >= kp[KP_WARMUP] and n_seen >= 2.0:
        sd = max(math.sqrt(var), sd_floor)
        score = max(tail_score((short - mu) / sd), novel)
    a_long = max(1.0 / (n_seen + 1.0), 1.0 / kp[KP_LONG])
    d = short - mu
    sc[s, SC_MEAN] = mu + a_long * d
    sc[s, SC_VAR] = (1.0 - a_long) * (var + a_long * d * d)
    sc[s, SC_N] = n_seen + 1.0

    flags = 0
    if sc[s, SC_ALARMED] != 0.0 and (
        n - sc[s, SC_ALARM_N] <= kp[KP_SUPPRESS] or t - sc[s, SC_ALARM_T] < kp[KP_MIN_GAP]
    ):
        flags = FLAG_SUPPRESSED
    elif score >= kp[KP_THRESHOLD]:
        flags = FLAG_ANOMALY
        sc[s, SC_ALARMED] = 1.0
        sc[s, SC_ALARM_N] = n
        sc[s, SC_ALARM_T] = t
    return score, flags
