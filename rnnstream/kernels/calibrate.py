"""Scoring: per-feature residuals against the entity's own residual scale, an empirical heavy-tailed
calibration, a stuck-value test, and one p-value per event.

Per entity and feature f, with the prediction error ``e_f`` in normalised units (see ``observe``):

1. **Residual scale.** ``r_f = e_f / s_f``, where ``s_f`` is the entity's exponentially weighted mean
   absolute error of that feature (over ``long_window`` events, at least ``scale_floor`` series
   deviations): the model's own expected uncertainty for this entity.
2. **Tail calibration.** The nonconformity ``a = |r_f|`` gets a tail p-value from a peaks-over-threshold
   fit, as in SPOT (Siffer et al., KDD 2017): the entity's exceedance rate ``rho`` of ``a > TAIL_U`` and a
   generalised Pareto tail fitted by moments to the excesses ``a - TAIL_U`` (shape ``xi`` in
   [0, XI_MAX]: exponential for light tails, polynomial for bursty heavy-tailed series). So
   ``p = rho (1 + xi y / sigma)^(-1 / xi)``, ``y = a - TAIL_U``; below ``TAIL_U``, ``p = 1``. The fit
   starts from a Laplace prior (``rho = e^-2``, unit exponential excesses) worth a few events, learns
   once the scale has ``MIN_SCALE_EVENTS`` errors behind it, and
   values beyond the fit's own 1e-3 quantile are folded in at that quantile (winsorised), so an
   anomaly, even a long one, barely moves the fit and does not hide the next; a tail that really is
   heavier keeps pushing that quantile out and is learnt. With more than one feature, each feature
   also keeps such a fit of the events at which no other feature's point p-value is below
   ``10^LOG_ACTIVE`` (1 in 100), and a residual at such an event takes its p-value from it (a
   conditional p-value): jumps the features make together are learnt as normal, one feature's jump
   alone is not. Not guaranteed: the same for level shifts (the sustained-deviation test's fit and
   normaliser are unconditional). With more than one feature, each feature also has a cross-feature
   test (``cross_test``): ``d = q_f - beta m`` against the other features' mean residual ``m``, with
   ``beta`` the entity's own regression of ``q_f`` on ``m``, scored against its own scale and tail
   fit: a feature that fails to follow when the others jump is found. It counts as one more test.
   These two tests compare a feature with the others and with its own past, so their residual ``q_f``
   is set against a scale in fixed units: the feature's mean absolute error in its own units
   (``QT_RAW_SCALE``: each error times the normaliser's deviation it was made in), divided by the
   deviation now: ``q_f = e_f / max(raw_f / sd_f, scale_floor)``. ``s_f`` (normalised units) mixes the
   units of every deviation its memory spans: after the features switch regimes together, each
   normaliser's deviation grows from the noise's to the distance between the regimes (40 times, say)
   within a few events, the errors of the noise shrink as much in normalised units, and for
   ``long_window`` events ``s_f`` still remembers the old ones, so a feature that then switched alone
   scored like noise. The point and sustained-deviation tests keep ``s_f``: on the univariate NAB
   corpus the fixed-unit scale scored lower (docs/detection.md, What did not help).
   With more than one feature and ``short_window`` > 1, a **level test** (``level_test``, one more test)
   looks at the values rather than the errors: each feature's normalised value less its regression on
   all the other features' (from the entity's running covariance of the normalised values, ``COV_*``:
   ``(P z)_f / P_ff`` with ``P`` the inverse of the covariance plus a ridge), in a short mean set
   against its long-run RMS with its own tail fit (as the sustained-deviation test). Features driven by
   shared causes (a daily pattern, a load, an operating point and a temperature lagging it, each
   feature with its own loadings and signs) keep their relation; one whose amplitude, shape or rhythm
   changes, that goes flat or drifts alone, leaves it, though each of its forecast errors is small.
3. **Sustained deviation** (``short_window`` > 1): a short exponential mean ``c`` of the signed
   ``r_f`` clipped to ``±SHORT_CLIP``, divided by its own long-run RMS: ``z``. Its p-value comes from
   the entity's own peaks-over-threshold fit of ``w = z^2 / 2`` beyond ``S_U`` (``|z| = 2``), as the
   point residual's does, starting from the Gaussian's tail (rate ``P(|z| > 2)``, exponential
   excesses of mean ``S_M1``: HTM's Gaussian likelihood to within 0.2 in log p for ``|z|`` 3 to 8)
   worth ``S_PRIOR_EVENTS`` events and ``S_PRIOR_EXC`` exceedances, winsorised at the fit's 1e-3
   quantile. So a level shift, which no single residual shows, is found as before on a quiet series;
   on a series whose every burst moves the short mean (a bursty counter), the fit learns a heavier
   tail and stops calling bursts level shifts. Not guaranteed: that a level shift repeated later
   scores as high as the first (the fit, like the long-run RMS, learns from it).
4. **Stuck value** (``flatline``): a run of L identical values, against the entity's own repeat
   habits as a two-state Markov chain (value changed / value repeated), with transition counts
   decayed over ``long_window`` and a Jeffreys prior: ``p = p(change -> repeat) p(repeat ->
   repeat)^(L-1)``, the counts taken as they were when the run began. Series that often stay
   constant (step functions, integers, quiet nights) have a high ``p(repeat -> repeat)`` and do not
   fire; a noisy metric that stops moving does, after a few repeats. A run that began during the
   warm-up is never scored (a series constant from its start is constant by nature).
5. **Novelty** (``novelty_tolerance`` > 0): a value beyond the entity's seen range by more than that
   share of the range (a record) scores 1, as NAB's HTM detector's spatial anomaly does, where the
   feature rarely sets records (its running rate of records after the warm-up, ``FS_RECORDS``, at most
   ``novelty_record_rate / F`` with F features) or one of its calibrated tests has a p-value at most
   ``novelty_gate``: a random walk reaching a new extreme by an ordinary step is not novel, a jump to
   one is, and so is a stationary series drifting past its range. The F features of an entity share
   the rate's budget, as they share the event's p-value (Bonferroni): each stationary feature sets a
   record with probability about 2/n at its n-th event, so an entity sets one F times as often as a
   feature does. Not guaranteed: the rate starts at 0 after the warm-up (the first records are novel)
   and decays between a walk's distant records.

Per feature, the smallest p-value of its tests is multiplied by the number of tests, and the event's
p-value is the smallest over features times F (Bonferroni): one faulty feature of 16 is not diluted.
The score is ``log(p + 1e-10) / log(1e-10)`` in [0, 1]: 0.5 means a 1-in-100,000 event, 1.0 a
1-in-10^10 one. All statistics exclude the event being scored (causal). Each feature's ``kind`` says
which test blamed it (``KIND_*``), or 0 when that feature alone would not cross the threshold. A
calibrated test names the kind of a feature that also left its range (a 16-deviation spike is a
``spike``); ``novelty`` is the kind of a feature that crosses by the novelty rule alone, and such a
feature is not blamed when another crosses by a calibrated test (a healthy sensor that reaches a new
extreme with the shared operating point, beside the faulty one).

Alert hygiene: scores are 0 before ``warmup_events``. Every event whose own score reaches the
threshold is flagged ``FLAG_ANOMALOUS``, raised or not. Once an entity raises an anomaly, it raises no
other for ``suppress_events`` events and ``min_gap_seconds`` seconds (flag ``FLAG_SUPPRESSED``),
unless an event inside that period is clearly stronger than the one that started it: a calibrated
score (novelty aside) at least ``OVERRIDE_MARGIN`` higher (a p-value 10x smaller). That event is
published and restarts the period. After a novelty alarm (whose calibrated score is below the
threshold) this holds at once, so a novelty alarm never hides a far larger deviation; after a
calibrated alarm only for a *new incident*, once ``NEW_INCIDENT_EVENTS`` events in a row have scored
below the threshold since the alarm, so a continuing incident (a stuck value whose p-value shrinks at
every repeat, a level shift building up) does not re-alarm as its score climbs. A novel value is not
compared by score: after a calibrated alarm it is published within the period once the incident has
ended and ``short_window`` events in a row after that have been unsurprising (not novel, calibrated
p-value above ``novelty_gate``), if its own calibrated p-value is at most ``novelty_gate``: the series
was back to normal, so a surprising record is a new incident's news. Scores saturate at
1.0, so after an alarm scoring above ``1 - OVERRIDE_MARGIN`` a new incident's unclipped p-value is
compared instead (10x smaller): a stronger anomaly after a strong alarm is not hidden. Past the
period, an incident that has not ended (fewer than ``NEW_INCIDENT_EVENTS`` events in a row below the
threshold since its alarm) is still held, after any alarm: its next alarm needs a new incident or an
event clearly stronger than the alarm (as above), so a stuck value or a level shift alarms once, not
once per period (``suppress_events`` and ``min_gap_seconds`` both 0 turn this off too: every event
above the threshold is an anomaly). When a stuck run gave the alarm's p-value (``SC_ALARMED``
negative), the stuck tests, whose p-value shrinks at every repeat, are left out when an event past the
period is judged stronger, and the mark stays through the incident's stronger alarms. Not guaranteed: a stronger anomaly within
``NEW_INCIDENT_EVENTS`` events of a calibrated alarm and within its period is part of its incident and
not published.
"""

from __future__ import annotations

import math

import numpy as np

from .jit import device
from .params import (KP_FLATLINE, KP_LONG, KP_MIN_GAP, KP_NOVELTY, KP_NOVELTY_GATE, KP_NOVELTY_RECORDS, KP_SCALE_FLOOR, KP_SHORT, KP_SUPPRESS,
                     KP_THRESHOLD, KP_WARMUP)

# Layout of the per-entity scorer row (float64): a header, then PF numbers per feature f at
# SC_FEAT + PF * f + FS_*, then the daily profile (``profile_offset``), then, with more than one
# feature, each feature's conditional tail fit (QT_SIZE numbers at the row's end, ``quiet_offset``).
SC_N = 0            # errors folded into the statistics
SC_ALARMED = 1      # 0 before the entity's first anomaly; after it, 1 + the events in a row since its last
                    # anomaly that scored below the threshold, saturating at 1 + NEW_INCIDENT_EVENTS; negative
                    # when a stuck run gave that anomaly's incident its p-value (rows before the latch: >= 0)
SC_ALARM_N = 2      # the entity's event count at its last anomaly
SC_ALARM_T = 3      # the event time of its last anomaly
SC_ALARM_LOGP = 4   # the calibrated log p-value (novelty aside, Bonferroni included, at most 0) of its last anomaly
SC_FEAT = 5
FS_SCALE = 0        # mean absolute error (normalised units)
FS_TAIL = 1         # tail fit of |r| (TAIL_SIZE numbers: TL_*)
FS_SHORT = 5        # short mean of the signed, clipped residual
FS_SHORT_SQ = 6     # long-run mean square of that short mean
FS_PREV = 7         # previous raw value
FS_RUN = 8          # repeats in the current run (0: the value just changed)
FS_CR = 9           # decayed counts of the transitions of the repeat chain: change -> repeat,
FS_CC = 10          # change -> change,
FS_RR = 11          # repeat -> repeat (folded in when a run ends),
FS_RC = 12          # repeat -> change
FS_LO = 13          # smallest value seen
FS_HI = 14          # largest value seen
FS_MERR = 15        # running mean absolute error of the model's own prediction (``observe``: the blend)
FS_PERR = 16        # running mean absolute error of persistence (the previous value)
FS_STAIL = 17       # tail fit of the sustained-deviation test's w = z^2 / 2 (TAIL_SIZE numbers: TL_*)
FS_RECORDS = 21     # running rate of records (values beyond the seen range by novelty_tolerance)
FS_PROFILE_ERR = 22  # running mean absolute distance of the normalised value from its time-of-day mean
PF = 23
QT_SIZE = 20        # per feature with more than one feature: the conditional fit, the cross-feature and level tests
QT_TAIL = 0         # tail fit of |q| at the events when no other feature is active (TL_*; q: r in fixed units)
XC_EM = 4           # cross-feature test: exponentially weighted mean of q_f m (m: the other features' mean q),
XC_MM = 5           # ... of m^2 (beta_f = XC_EM / XC_MM),
XC_SCALE = 6        # ... of |d_f|, d_f = q_f - beta_f m,
XC_TAIL = 7         # tail fit of |d_f| / its scale (TL_*)
QT_RAW_SCALE = 11   # mean absolute error in the feature's own units (each error times the deviation it was
                    # normalised with); RAW_SCALE_PENDING: not known yet (a row upgraded from layout 4)
LV_N = 12           # level test: events it has taken in (its own count: an upgraded row learns it afresh),
LV_SCALE = 13       # ... exponentially weighted mean of |l_f|, l_f the value less its regression on the others,
LV_SHORT = 14       # ... short mean of l_f / its scale, clipped,
LV_SHORT_SQ = 15    # ... long-run mean square of that short mean,
LV_TAIL = 16        # ... tail fit of w = short^2 / (2 mean square) (TL_*, from the Gaussian's, as FS_STAIL)
# With more than one feature, before the features' blocks: the level test's covariance block
# (``cov_offset``): the running covariance of the normalised values (lower triangle, row by row), and
# the regression's factor, refreshed when cov_refresh_due says (the Cholesky factor of the covariance
# plus the ridge, lower triangle), then three vectors: the diagonal of its inverse P (refreshed with
# it), and the event's scratch: the forward solve and each feature's residual l_f. ``cov_size(F)``.
COV_RIDGE = 0.01    # added to the covariance's diagonal, in units of its mean: a feature that is an exact
                    # combination of the others (or constant) still has a finite regression
COV_REFRESH = 16    # at most this many level-test events between two factorisations of the covariance,
COV_REFRESH_SLOPE = 64   # ... and at most 1 + (events since the first) / this: the covariance learns at
                    # 1 / count, so the factor is refreshed at every event at first and then as its
                    # relative change allows (memory long_window); O(F^3 / 3) then, O(F^2) per event
TL_RATE = 0         # a tail fit: exceedance rate of TAIL_U,
TL_M1 = 1           # mean excess over TAIL_U of the exceedances,
TL_M2 = 2           # mean squared excess,
TL_N = 3            # exceedances seen (warm start of the excess means)
# After the features, when the daily profile is on (``features.daily_profile``): per time-of-day bin
# b, the F per-feature means at ``profile_offset(F) + b * F``; then the bins' event counts, saturated
# at PROFILE_COUNT_MAX and packed PROFILE_COUNTS_PER_WORD to a float64 (4 bits each, an exact integer
# below 2^53): only whether a count reaches 1 / profile_rate matters, so they take 2 numbers, not B.
PROFILE_COUNT_BITS = 4
PROFILE_COUNT_MAX = (1 << PROFILE_COUNT_BITS) - 1
PROFILE_COUNTS_PER_WORD = 13
# The profile's per-bin means are float32, packed PROFILE_MEANS_PER_WORD to a float64 of the row (read
# through a float32 view of it): a time-of-day mean needs no more digits, and at one feature and 24 bins
# this takes 12 numbers, not 24 (float64 before 2026-12-01: ``upgrade_rows`` upgrades those rows).
PROFILE_MEANS_PER_WORD = 2
PROFILE_MEAN_MAX = float(np.finfo(np.float32).max)   # a mean saturates here (values up to 1e100 are accepted)

FLAG_ANOMALY = 1
FLAG_SUPPRESSED = 2
FLAG_LATE = 4       # refused: older than the entity's previous event beyond late_tolerance_seconds
FLAG_ANOMALOUS = 8  # the event's own score reached the threshold, whether or not it raised an anomaly


def score_flags(flag):
    """The three flags an event's outputs carry, in their fields' order: ``anomaly``, ``suppressed``,
    ``anomalous`` (bool arrays for an array of ``flag`` words, bools for one word)."""
    return (flag & FLAG_ANOMALY) != 0, (flag & FLAG_SUPPRESSED) != 0, (flag & FLAG_ANOMALOUS) != 0

KIND_NONE = 0
KIND_SPIKE = 1      # the value is far above the prediction
KIND_DROP = 2       # far below
KIND_SHIFT = 3      # a sustained deviation from the predictions (level shift)
KIND_FLATLINE = 4   # the value has been stuck for an improbably long run
KIND_NOVELTY = 5    # the value left the entity's seen range
KIND_NAMES = ("", "spike", "drop", "level_shift", "flatline", "novelty")

TAIL_FLOOR = 1e-10
LOG_TAIL_FLOOR = math.log(TAIL_FLOOR)
TAIL_U = 2.0          # exceedance threshold, in mean absolute errors
SHORT_CLIP = 4.0      # residuals enter the short mean clipped to this many mean absolute errors
RATE0 = math.exp(-2.0)  # Laplace prior: P(|r| > 2) for a unit-mean exponential |r|
PRIOR_EVENTS = 20.0   # weight of the prior exceedance rate, in events
PRIOR_EXC = 1.0       # weight of the prior excess moments (1, 2), in exceedances
EXC_MEMORY = 1.0      # the excess moments remember long_window * EXC_MEMORY exceedances
XI_MAX = 0.45
# The sustained-deviation test's tail, fitted to w = z^2 / 2 beyond S_U (|z| = 2): the prior is the
# Gaussian's (rate P(|z| > 2), exponential excesses of mean S_M1 match its log-tail to 0.2 at |z| 3-8),
# worth S_PRIOR_EVENTS events and S_PRIOR_EXC exceedances: a series whose bursts keep moving the short
# mean learns a heavier tail (a level shift also moves it: README, "How an event is scored").
S_U = 2.0
S_RATE0 = math.erfc(math.sqrt(2.0))
S_M1 = 0.93
S_PRIOR_EVENTS = 200.0
S_PRIOR_EXC = 100.0
CROSS_CLIP = 20.0     # r_f and m enter the cross-feature regression clipped to this many mean absolute errors
CROSS_FLOOR = 0.1     # the scale of d_f is at least this share of the feature's mean absolute error
LOG_ACTIVE = math.log(1e-2)  # a feature whose point p-value is below 1 in 100 is active at that event
WINSOR_LOGP = math.log(1e-3)  # values beyond their fit's 1e-3 quantile are folded in at it
OVERRIDE_MARGIN = 0.1  # a suppressed event this much above the alarm's score is published
LOG_OVERRIDE = math.log(10.0)  # ... or, in a new incident, one whose p-value is 10x smaller than the alarm's
NEW_INCIDENT_EVENTS = 3.0  # events in a row below the threshold after an alarm that end its incident
MIN_MS = 1e-12
PROFILE_ERR0 = 0.5         # the running distance starts at a profile that explains most of the series ...
PROFILE_ERR_EVENTS = 100.0  # ... and follows whether it explains it now: regimes come and go
PROFILE_GATE = math.sqrt(2.0 / math.pi)
"""``profile_cap`` holds only for a feature whose time-of-day mean predicts its normalised value better
than the series' own running mean does: a running ``FS_PROFILE_ERR`` at most E|z| of a standard normal
(0.798). A random walk or a service switching regimes at random hours has a profile that is right only
by chance (its distance is 0.85-0.95), and its surprises are no longer capped there."""
RAW_SCALE_PENDING = -1.0   # QT_RAW_SCALE of an upgraded row: set from FS_SCALE at the entity's next event
MIN_SCALE_EVENTS = 10  # the tail fits learn once the residual scale has this many errors behind it
LOG_TESTS = (0.0, math.log(2.0), math.log(3.0), math.log(4.0), math.log(5.0))  # log(tests per feature): libm's log, as in the kernel


def profile_offset(n_features: int) -> int:
    """Where the daily profile starts in the per-entity statistics row."""
    return SC_FEAT + PF * n_features


def profile_means_size(n_features: int, profile_bins: int, per_word: int = PROFILE_MEANS_PER_WORD) -> int:
    """Numbers (float64 words) the daily profile's per-bin means take, from ``profile_offset``, at
    ``per_word`` means to a number (this build's float32 means; 1 for the float64 means of layouts 1-2);
    the packed bin counts follow them."""
    return -(-profile_bins * n_features // per_word)


def profile_counts_size(profile_bins: int) -> int:
    """Numbers the daily profile's packed bin counts take, after its means."""
    return -(-profile_bins // PROFILE_COUNTS_PER_WORD)


# The same two formulas for the kernels (``features.daily_profile``): compiled from these functions, not
# restated.
profile_offset_kernel = device(profile_offset)
profile_means_size_kernel = device(profile_means_size)


def sc_size(n_features: int, profile_bins: int = 0) -> int:
    """Length of the per-entity statistics row for ``n_features`` features and a daily profile."""
    return layout_width(SCORER_LAYOUT, n_features, profile_bins)


SCORER_LAYOUT = 6
"""Version of this build's scorer row layout, kept in ``Detector.snapshot``'s meta (``scorer_layout``),
so checkpoints and changelogs say which layout their rows have (before version 3 they did not)."""

LAYOUTS = {1: (21, 4, 1), 2: (22, 11, 1), 3: (22, 11, 2), 4: (PF, 11, 2), 5: (PF, 22, 2), 6: (PF, QT_SIZE, PROFILE_MEANS_PER_WORD)}
"""``(PF, QT_SIZE, profile means per word)`` of every scorer layout :func:`upgrade_rows` reads: 1
before the novelty rule's record rate (``FS_RECORDS``) and the cross-feature test (``XC_*``); 2 before
the profile's means became float32 (``PROFILE_MEANS_PER_WORD``); 3 before the profile's running distance
(``FS_PROFILE_ERR``, the ``profile_cap`` gate); all 2026-12-01; 4 before the residual scale in the
feature's own units and the level test (``QT_RAW_SCALE``, ``LV_*``, with more than one feature),
2026-12-01 12:00 UTC; 5 before the level test's regression on all the other features (the covariance
block, ``cov_size``; it regressed on their mean, with two numbers at 13 and 14), 2026-12-01 14:00 UTC. Layouts 1 and 2 kept the means as float64, one to a number."""

UNRECORDED_LAYOUTS = (1, 2)
"""Layouts of builds that did not record theirs: rows without a recorded layout are read as the one of
these whose width they have."""


def cov_size(n_features: int) -> int:
    """Numbers of the level test's covariance block (layout 6, more than one feature): the covariance
    and the Cholesky factor, lower triangles, and three vectors of F."""
    return n_features * (n_features + 1) + 3 * n_features if n_features > 1 else 0


def cov_refresh_due(seen: int) -> bool:
    """Whether the level test refactorises its covariance ``seen`` events after its first factorisation:
    at every event for the first ``COV_REFRESH_SLOPE``, then every ``1 + seen // COV_REFRESH_SLOPE``
    events, at most every ``COV_REFRESH``."""
    return seen % min(COV_REFRESH, 1 + seen // COV_REFRESH_SLOPE) == 0


# The covariance block's size and refresh schedule for the kernels: compiled from these functions, not
# restated.
cov_size_kernel = device(cov_size)
cov_refresh_due_kernel = device(cov_refresh_due)


def layout_width(layout: int, n_features: int, profile_bins: int) -> int:
    """Row length of scorer ``layout`` (a key of ``LAYOUTS``) for ``n_features`` and a daily profile."""
    pf, qt, per_word = LAYOUTS[layout]
    quiet = qt * n_features if n_features > 1 else 0   # one feature has no others: no conditional fit or cross test
    if layout >= 6:
        quiet += cov_size(n_features)
    return (SC_FEAT + pf * n_features + profile_means_size(n_features, profile_bins, per_word)
            + profile_counts_size(profile_bins) + quiet)


def legacy_widths(n_features: int, profile_bins: int) -> tuple[int, ...]:
    """Row lengths of the ``UNRECORDED_LAYOUTS`` for ``n_features`` features and a daily profile: the rows
    :func:`upgrade_rows` reads when their layout is not recorded."""
    return tuple(layout_width(v, n_features, profile_bins) for v in UNRECORDED_LAYOUTS)


def upgrade_rows(rows, n_features: int, profile_bins: int, layout: int | None):
    """Statistics rows ``(N, width)`` in this build's layout. ``layout``: the version the rows were
    written in (``SCORER_LAYOUT``: returned as they are; an earlier key of ``LAYOUTS``: read as that), or
    None when it was not recorded (an earlier build's): then they are read as the layout of
    ``UNRECORDED_LAYOUTS`` whose width they have (widths alone can be ambiguous: at 16 profile bins the
    first and layout 3 coincide). Each number is copied to its new place, the profile's means rounded to
    float32, and the numbers that layout did not keep start at the values a fresh entity starts with (a
    record rate of 0, the prior profile distance, under which the cap holds as it did in those builds
    until the distance has learnt; for a live entity with more than one feature, an empty cross-feature
    regression and the prior tail fit; the residual scale in the feature's own units is taken from the
    normalised one at the entity's next event, ``RAW_SCALE_PENDING``; the level test, whose residual
    layout 6 changed, starts as a new entity's, counting its own events, with an empty covariance), so
    a restored entity keeps all it had learnt.
    ValueError when the width does not fit the layout.

    Not guaranteed: that the upgraded entity scores as if this build had seen its whole past (the
    statistics its layout did not keep start from nothing at the restore)."""
    rows = np.asarray(rows, dtype=np.float64)
    width = sc_size(n_features, profile_bins)
    if layout == SCORER_LAYOUT and rows.ndim == 2 and rows.shape[1] == width:
        return rows
    candidates = UNRECORDED_LAYOUTS if layout is None else (layout,) if layout in LAYOUTS and layout != SCORER_LAYOUT else ()
    means = profile_bins * n_features
    counts = profile_counts_size(profile_bins)
    for version in candidates if rows.ndim == 2 else ():
        if rows.shape[1] != layout_width(version, n_features, profile_bins):
            continue
        pf, qt, per_word = LAYOUTS[version]
        out = np.zeros((rows.shape[0], width))
        out[:, :SC_FEAT] = rows[:, :SC_FEAT]
        live = rows[:, SC_N] > 0
        for f in range(n_features):
            out[:, SC_FEAT + PF * f:SC_FEAT + PF * f + pf] = rows[:, SC_FEAT + pf * f:SC_FEAT + pf * (f + 1)]
            if pf <= FS_PROFILE_ERR:
                out[live, SC_FEAT + PF * f + FS_PROFILE_ERR] = PROFILE_ERR0
        old_p, p = SC_FEAT + pf * n_features, profile_offset(n_features)
        old_words, words = profile_means_size(n_features, profile_bins, per_word), profile_means_size(n_features, profile_bins)
        old_means = np.ascontiguousarray(rows[:, old_p:old_p + old_words])
        packed = np.zeros((rows.shape[0], words * PROFILE_MEANS_PER_WORD), dtype=np.float32)
        packed[:, :means] = (old_means if per_word == 1 else old_means.view(np.float32))[:, :means]
        out[:, p:p + words] = packed.view(np.float64)
        out[:, p + words:p + words + counts] = rows[:, old_p + old_words:old_p + old_words + counts]
        if n_features > 1:
            for f in range(n_features):
                old_q, q = rows.shape[1] - qt * (n_features - f), width - QT_SIZE * (n_features - f)
                keep = min(qt, LV_N)   # the conditional fit and the cross-feature test; not the level test's
                out[:, q:q + keep] = rows[:, old_q:old_q + keep]
                if qt <= QT_RAW_SCALE:
                    out[live, q + QT_RAW_SCALE] = RAW_SCALE_PENDING
                _prior_tail(out, live, q + LV_TAIL, S_RATE0, S_M1)
                if qt <= XC_TAIL:
                    _prior_tail(out, live, q + XC_TAIL, RATE0, 1.0)
        return out
    shape = rows.shape[1] if rows.ndim == 2 else rows.shape
    raise ValueError(f"scorer rows of width {shape} (layout {layout}) match neither this build's layout "
                     f"({width} for {n_features} feature(s), {profile_bins} profile bins, layout {SCORER_LAYOUT}) "
                     f"nor an earlier one it reads")


def _prior_tail(rows, live, k, rate0, m1):
    """``tail_init`` for the ``live`` rows of an upgraded array (its other numbers are 0 already)."""
    rows[live, k + TL_RATE] = rate0
    rows[live, k + TL_M1] = m1
    rows[live, k + TL_M2] = 2.0 * m1 * m1


@device
def quiet_offset(row_len, n_features, f):
    """Where feature ``f``'s block (conditional tail fit, cross-feature test) starts in a row of ``row_len``
    (more than one feature)."""
    return row_len - QT_SIZE * (n_features - f)


@device
def cov_offset(row_len, n_features):
    """Where the level test's covariance block starts in a row of ``row_len`` (more than one feature):
    the covariance's lower triangle, the Cholesky factor's, the diagonal of the inverse (F), the forward
    solve (F), the residuals (F)."""
    return row_len - QT_SIZE * n_features - cov_size_kernel(n_features)


@device
def p_to_score(logp):
    """``log(p + 1e-10) / log(1e-10)`` for ``p = exp(logp)``, clipped to [0, 1] (0.5 at p = 1e-5)."""
    if logp >= 0.0:
        return 0.0  # what the formula gives: exp(0) = 1, and log(1 + 1e-10) / log(1e-10) < 0 clips to 0
    p = math.exp(min(logp, 0.0))
    return min(max(math.log(p + TAIL_FLOOR) / math.log(TAIL_FLOOR), 0.0), 1.0)


@device
def stored_alarm_logp(word):
    """The last alarm's log p-value from its ``SC_ALARM_LOGP`` word. An alarm's log p-value is negative;
    a positive word is the calibrated score that builds before the new-incident rule kept there (their
    checkpoints restore), read back as ``log(p + 1e-10)``, of which that score is a fixed multiple."""
    return word * LOG_TAIL_FLOOR if word > 0.0 else word


@device
def tail_fit(sc, s, k):
    """``(rate, xi, sigma)`` of the peaks-over-threshold fit at ``sc[s, k:]``: exceedance rate, and the
    generalised Pareto shape and scale by the method of moments (shape clipped to [0, XI_MAX])."""
    rate = sc[s, k + TL_RATE]
    m1 = sc[s, k + TL_M1]
    var = sc[s, k + TL_M2] - m1 * m1
    xi = 0.0
    if var > MIN_MS:
        xi = min(max(0.5 * (1.0 - m1 * m1 / var), 0.0), XI_MAX)
    return rate, xi, max(m1 * (1.0 - xi), MIN_MS)


@device
def tail_logp(a, u, sc, s, k):
    """Log tail probability of ``a`` under the peaks-over-threshold fit (threshold ``u``) at
    ``sc[s, k:k + TL_N + 1]``."""
    if a <= u:
        return 0.0
    rate, xi, sigma = tail_fit(sc, s, k)
    y = (a - u) / sigma
    if xi < 1e-6:
        return math.log(rate) - y
    return math.log(rate) - math.log1p(xi * y) / xi


@device
def tail_quantile(logq, u, sc, s, k):
    """The value whose tail log-probability is ``logq`` (the inverse of ``tail_logp``)."""
    rate, xi, sigma = tail_fit(sc, s, k)
    d = max(math.log(rate) - logq, 0.0)
    if xi < 1e-6:
        return u + sigma * d
    return u + sigma * math.expm1(xi * d) / xi


@device
def tail_fold(aw, u, sc, s, k, a_rate, exc_memory, prior_exc):
    """Fold the (winsorised) value ``aw`` into the tail fit (threshold ``u``) at ``sc[s, k:]``; the
    excess moments' prior is worth ``prior_exc`` exceedances."""
    rate = sc[s, k + TL_RATE]
    if aw <= u:
        sc[s, k + TL_RATE] = rate - a_rate * rate
        return
    sc[s, k + TL_RATE] = rate + a_rate * (1.0 - rate)
    a_exc = max(1.0 / (sc[s, k + TL_N] + 1.0 + prior_exc), 1.0 / exc_memory)
    y = aw - u
    sc[s, k + TL_M1] += a_exc * (y - sc[s, k + TL_M1])
    sc[s, k + TL_M2] += a_exc * (y * y - sc[s, k + TL_M2])
    sc[s, k + TL_N] += 1.0


@device
def tail_init(sc, s, k, rate0, m1):
    """A prior tail fit: exceedance rate ``rate0``, exponential excesses of mean ``m1``."""
    sc[s, k + TL_RATE] = rate0
    sc[s, k + TL_M1] = m1
    sc[s, k + TL_M2] = 2.0 * m1 * m1
    sc[s, k + TL_N] = 0.0


@device
def init_features(x, s, sc):
    """Start the per-feature statistics of entity ``s`` at its first event ``x``."""
    for f in range(x.shape[0]):
        k = SC_FEAT + PF * f
        sc[s, k + FS_SCALE] = 0.0
        tail_init(sc, s, k + FS_TAIL, RATE0, 1.0)
        tail_init(sc, s, k + FS_STAIL, S_RATE0, S_M1)
        if x.shape[0] > 1:
            q = quiet_offset(sc.shape[1], x.shape[0], f)
            tail_init(sc, s, q + QT_TAIL, RATE0, 1.0)
            sc[s, q + XC_EM] = 0.0
            sc[s, q + XC_MM] = 0.0
            sc[s, q + XC_SCALE] = 0.0
            tail_init(sc, s, q + XC_TAIL, RATE0, 1.0)
            sc[s, q + QT_RAW_SCALE] = 0.0
            for j in range(LV_N, LV_TAIL):
                sc[s, q + j] = 0.0
            tail_init(sc, s, q + LV_TAIL, S_RATE0, S_M1)
            if f == 0:
                for j in range(cov_offset(sc.shape[1], x.shape[0]), q):
                    sc[s, j] = 0.0
        sc[s, k + FS_SHORT] = 0.0
        sc[s, k + FS_SHORT_SQ] = 0.0
        sc[s, k + FS_PREV] = x[f]
        sc[s, k + FS_RUN] = 0.0
        sc[s, k + FS_CR] = 0.0
        sc[s, k + FS_CC] = 0.0
        sc[s, k + FS_RR] = 0.0
        sc[s, k + FS_RC] = 0.0
        sc[s, k + FS_LO] = x[f]
        sc[s, k + FS_HI] = x[f]
        sc[s, k + FS_MERR] = 0.0
        sc[s, k + FS_PERR] = 0.0
        sc[s, k + FS_RECORDS] = 0.0
        sc[s, k + FS_PROFILE_ERR] = PROFILE_ERR0


@device
def cross_residual(r, sum_r, n_features, f, sc, s):
    """``(rc, m, d, ad, log p)`` of feature ``f``'s cross-feature test (see ``cross_test``); reads only."""
    q = quiet_offset(sc.shape[1], n_features, f)
    rc = min(max(r, -CROSS_CLIP), CROSS_CLIP)
    m = (sum_r - rc) / (n_features - 1.0)
    mm = sc[s, q + XC_MM]
    beta = sc[s, q + XC_EM] / mm if mm > MIN_MS else 0.0
    d = rc - beta * m
    ad = abs(d) / max(sc[s, q + XC_SCALE], CROSS_FLOOR)
    return rc, m, d, ad, tail_logp(ad, TAIL_U, sc, s, q + XC_TAIL)


@device
def cross_test(r, sum_r, lp_others, n_features, f, lp, kf, sc, s, a_long, a_rate, exc_memory, fold_tails):
    """The cross-feature test of feature ``f`` (more than one feature): its residual ``r`` (in fixed
    units, ``fixed_residual``) against the
    mean ``m`` of the other features' residuals (each clipped to ``±CROSS_CLIP``; ``sum_r`` is all
    features'), through the entity's own regression ``beta = E[r m] / E[m^2]``: ``d = r - beta m`` (``r``
    clipped as well, so one feature's huge spike does not spill into the others' ``d``) scored against
    its own scale and tail fit.
    A feature that jumps when the others do not, or fails to follow when they jump, has a large ``|d|``;
    features that always move together do not. The test counts only for the feature(s) whose test is
    the most surprising (``lp_others``: the smallest of the other features' cross-test log p-values):
    with 2 features, one jumping alone makes both ``|d|`` large, and the one that moved is blamed, not
    the one that stayed put; with more, the one that stayed put while the others moved together. Returns the smaller of ``lp`` and the test's log p-value
    and the kind (``spike`` or ``drop`` by the sign of ``d``), and folds the event into the statistics."""
    q = quiet_offset(sc.shape[1], n_features, f)
    rc, m, d, ad, lpx = cross_residual(r, sum_r, n_features, f, sc, s)
    em = sc[s, q + XC_EM]
    mm = sc[s, q + XC_MM]
    if lpx < lp and lpx <= lp_others:
        lp = lpx
        kf = KIND_SPIKE if d > 0.0 else KIND_DROP
    adw = min(ad, tail_quantile(WINSOR_LOGP, TAIL_U, sc, s, q + XC_TAIL)) if ad > TAIL_U else ad
    sc[s, q + XC_EM] = em + a_long * (rc * m - em)
    sc[s, q + XC_MM] = mm + a_long * (m * m - mm)
    sc[s, q + XC_SCALE] += a_long * (abs(d) * min(1.0, adw / max(ad, MIN_MS)) - sc[s, q + XC_SCALE])
    if fold_tails:
        tail_fold(adw, TAIL_U, sc, s, q + XC_TAIL, a_rate, exc_memory, PRIOR_EXC)
    return lp, kf


@device
def level_residual(lres, q, sc, s, kp, a_short):
    """``(c, w, log p)`` of one feature's level test (see ``level_test``) for its residual ``lres``
    (``cond_residuals``): the new short mean, its statistic and log p-value (0 before the long-run mean
    square has a value); reads only."""
    scale = max(sc[s, q + LV_SCALE], kp[KP_SCALE_FLOOR])
    c = sc[s, q + LV_SHORT] + a_short * (min(max(lres / scale, -SHORT_CLIP), SHORT_CLIP) - sc[s, q + LV_SHORT])
    ms = sc[s, q + LV_SHORT_SQ]
    w = 0.0
    lpl = 0.0
    if ms > MIN_MS:
        w = 0.5 * c * c / ms
        lpl = tail_logp(w, S_U, sc, s, q + LV_TAIL)
    return c, w, lpl


@device
def cond_residuals(z, n_features, sc, s):
    """Each feature's normalised value less its least-squares regression on all the others', into the
    covariance block's residuals (``cov_offset``): ``l_f = (P z)_f / P_ff``, ``P`` the inverse of the
    entity's running covariance of the normalised values plus ``COV_RIDGE`` times its mean diagonal.
    The covariance is factorised (Cholesky, ``L``) and ``P_ff`` computed (the squared norm of column f
    of ``L^-1``) once it has ``F + 2`` level-test events behind it, then at every event for the first
    ``COV_REFRESH_SLOPE``, and ever less often, at most every ``COV_REFRESH`` events (O(F^3 / 3)); at
    each event ``P z`` takes a forward and a backward solve with that factor (O(F^2)). All 0 before
    the first factorisation. The schedule depends on the entity's own count only (deterministic)."""
    row = sc.shape[1]
    c0 = cov_offset(row, n_features)
    nt = n_features * (n_features + 1) // 2
    l0 = c0 + nt
    p0 = l0 + nt
    w0 = p0 + n_features
    r0 = w0 + n_features
    seen = sc[s, quiet_offset(row, n_features, 0) + LV_N] - (n_features + 2.0)
    if seen < 0.0:
        for f in range(n_features):
            sc[s, r0 + f] = 0.0
        return
    if cov_refresh_due_kernel(int(seen)):
        tr = 0.0
        for f in range(n_features):
            tr += sc[s, c0 + f * (f + 1) // 2 + f]
        ridge = COV_RIDGE * tr / n_features + MIN_MS
        for j in range(n_features):
            jj = j * (j + 1) // 2
            d = sc[s, c0 + jj + j] + ridge
            for k in range(j):
                d -= sc[s, l0 + jj + k] * sc[s, l0 + jj + k]
            d = math.sqrt(max(d, MIN_MS))
            sc[s, l0 + jj + j] = d
            for i in range(j + 1, n_features):
                ii = i * (i + 1) // 2
                a = sc[s, c0 + ii + j]
                for k in range(j):
                    a -= sc[s, l0 + ii + k] * sc[s, l0 + jj + k]
                sc[s, l0 + ii + j] = a / d
        for f in range(n_features):         # P_ff: L x = e_f (x in the forward solve's place)
            pff = 0.0
            for i in range(f, n_features):
                ii = i * (i + 1) // 2
                a = 1.0 if i == f else 0.0
                for k in range(f, i):
                    a -= sc[s, l0 + ii + k] * sc[s, w0 + k]
                xi = a / sc[s, l0 + ii + i]
                sc[s, w0 + i] = xi
                pff += xi * xi
            sc[s, p0 + f] = pff
    for i in range(n_features):             # L w = z
        ii = i * (i + 1) // 2
        a = float(z[i])
        for k in range(i):
            a -= sc[s, l0 + ii + k] * sc[s, w0 + k]
        sc[s, w0 + i] = a / sc[s, l0 + ii + i]
    for i in range(n_features - 1, -1, -1):  # L^T y = w: y = P z
        a = sc[s, w0 + i]
        for k in range(i + 1, n_features):
            a -= sc[s, l0 + k * (k + 1) // 2 + i] * sc[s, r0 + k]
        sc[s, r0 + i] = a / sc[s, l0 + i * (i + 1) // 2 + i]
    for f in range(n_features):
        sc[s, r0 + f] = sc[s, r0 + f] / sc[s, p0 + f]


@device
def fold_covariance(z, n_features, sc, s, long_w):
    """Take the event's normalised values into the level test's running covariance (rate ``max(1 / (count
    + 1), 1 / long_window)`` on the level test's count before this event)."""
    c0 = cov_offset(sc.shape[1], n_features)
    a = max(1.0 / (sc[s, quiet_offset(sc.shape[1], n_features, 0) + LV_N]), 1.0 / long_w)
    for i in range(n_features):
        ii = i * (i + 1) // 2
        for j in range(i + 1):
            sc[s, c0 + ii + j] += a * (float(z[i]) * float(z[j]) - sc[s, c0 + ii + j])


@device
def level_residual_of(sc, s, n_features, f):
    """Feature ``f``'s level-test residual of this event (after ``cond_residuals``): the block's last F."""
    return sc[s, quiet_offset(sc.shape[1], n_features, 0) - n_features + f]


@device
def level_test(lres, q, lp, kf, lp_others, sc, s, kp, a_short, log_q, exc_memory):
    """The level test of one feature (more than one feature, ``short_window`` > 1): its normalised value
    less its regression on all the other features' values (``lres``, from ``cond_residuals``) over its
    mean absolute value, clipped to ``±SHORT_CLIP``, in a short mean (``short_window``) set against its
    long-run RMS, as the sustained-deviation test's, with its own peaks-over-threshold fit from the
    Gaussian's. Features driven by the same causes keep ``l`` near noise; one whose level leaves that
    relation for a while (its amplitude, shape or frequency changes, it goes flat or drifts, it stays in
    one regime while the others switch) moves the short mean. As the cross-feature test's, it counts
    only for the feature(s) whose test is the most surprising (``lp_others``: the smallest of the other
    features' level-test log p-values): one feature leaving the shared relation moves the others'
    regressions too, and the one that left is blamed. Returns the smaller of ``lp`` and the test's
    log p-value and the kind (``level_shift`` when the test gives it), and folds the event in. The
    test counts its own events (``LV_N``, rates ``max(1 / (count + 1), 1 / long_window)``) and takes
    part once it has ``warmup_events`` behind it. Not guaranteed: a relation that changes
    for good is learnt (memory ``long_window``), as a level shift is by the sustained test."""
    lv_n = sc[s, q + LV_N]
    long_w = kp[KP_LONG]
    a_long = max(1.0 / (lv_n + 1.0), 1.0 / long_w)
    a_rate = max(1.0 / (lv_n + 1.0 + S_PRIOR_EVENTS), 1.0 / long_w)
    c, w, lpl = level_residual(lres, q, sc, s, kp, a_short)
    ms = sc[s, q + LV_SHORT_SQ]
    if ms > MIN_MS:
        if lpl < lp and lpl <= lp_others and lv_n >= kp[KP_WARMUP]:
            lp = lpl
            kf = KIND_SHIFT
        if lv_n >= MIN_SCALE_EVENTS:
            ww = min(w, tail_quantile(log_q, S_U, sc, s, q + LV_TAIL)) if w > S_U else w
            tail_fold(ww, S_U, sc, s, q + LV_TAIL, a_rate, exc_memory, S_PRIOR_EXC)
    sc[s, q + LV_SHORT] = c
    sc[s, q + LV_SHORT_SQ] = ms + a_long * (c * c - ms)
    sc[s, q + LV_SCALE] += a_long * (abs(lres) - sc[s, q + LV_SCALE])
    sc[s, q + LV_N] = lv_n + 1.0
    return lp, kf


@device
def two_smallest(lp, f, min1, min2, f_min1):
    """``(min1, min2, f_min1)`` with feature ``f``'s log p-value ``lp`` taken in: the two smallest so far
    and the feature of the smallest (a test that counts only where no other feature's is more
    surprising compares each feature's with the smallest of the others')."""
    if lp < min1:
        return lp, min1, f
    if lp < min2:
        return min1, lp, f_min1
    return min1, min2, f_min1


@device
def fixed_residual(e, sd, sc, s, q, floor):
    """The residual ``q`` of a normalised error ``e`` against the feature's mean absolute error in its own
    units (``QT_RAW_SCALE`` at ``sc[s, q + ...]``), in the units of the deviation ``sd`` that ``e`` was
    normalised with, at least ``floor``: ``e / max(raw / sd, floor)``."""
    return e / max(sc[s, q + QT_RAW_SCALE] / sd, floor)


@device
def score_event(err, x, sd, z, n, t, s, sc, kp, kind):
    """Score entity ``s``'s event with prediction errors ``err`` (F,) and raw values ``x`` (F,), the
    errors normalised with the deviations ``sd`` (F,) (``observe``: the normaliser's before this event);
    ``z`` holds the normalised values (at least F; ``observe``: the model input, read, not written).

    Returns ``(score, flags)`` and writes each feature's ``KIND_*`` into ``kind`` (F,). ``n`` is the
    entity's event count before this event; ``t`` its event time. An entity's first event has no
    prediction: it scores 0 and only starts the statistics. Events before ``warmup_events`` score 0
    but are folded in.
    """
    n_features = x.shape[0]
    for f in range(n_features):
        kind[f] = KIND_NONE
    if n == 0:
        init_features(x, s, sc)
        return 0.0, 0
    n_seen = sc[s, SC_N]
    scoring = n >= kp[KP_WARMUP] and n_seen >= 2.0
    long_w = kp[KP_LONG]
    a_long = max(1.0 / (n_seen + 1.0), 1.0 / long_w)
    a_rate = max(1.0 / (n_seen + 1.0 + PRIOR_EVENTS), 1.0 / long_w)
    a_srate = max(1.0 / (n_seen + 1.0 + S_PRIOR_EVENTS), 1.0 / long_w)
    a_short = 2.0 / (kp[KP_SHORT] + 1.0)
    use_short = kp[KP_SHORT] > 1.0
    use_flat = kp[KP_FLATLINE] != 0.0
    n_tests = 1.0
    if use_short:
        n_tests += 1.0
    if use_flat:
        n_tests += 1.0
    use_level = n_features > 1 and use_short
    if n_features > 1:
        n_tests += 1.0   # the cross-feature test
    if use_level:
        n_tests += 1.0   # the level test
    log_tests = LOG_TESTS[int(n_tests) - 1]
    log_features = 0.0 if n_features == 1 else math.log(float(n_features))   # log(1) = 0 exactly
    tol = kp[KP_NOVELTY]
    log_gate = math.log(kp[KP_NOVELTY_GATE])
    rec_max = kp[KP_NOVELTY_RECORDS]
    floor = kp[KP_SCALE_FLOOR]
    log_q = WINSOR_LOGP
    decay = 1.0 - 1.0 / long_w
    exc_memory = max(long_w * EXC_MEMORY, 1.0)
    fold_tails = n_seen >= MIN_SCALE_EVENTS
    # features whose point residual is active (p below 1 in 100) at this event, for the conditional fit
    # and the sum of the features' residuals in fixed units, for the cross-feature test
    n_active = 0
    sum_r = 0.0
    lpx_min1 = 0.0
    lpx_min2 = 0.0
    f_min1 = -1
    lpl_min1 = 0.0
    lpl_min2 = 0.0
    fl_min1 = -1
    if n_features > 1:
        for f in range(n_features):
            k = SC_FEAT + PF * f
            qo = quiet_offset(sc.shape[1], n_features, f)
            if sc[s, qo + QT_RAW_SCALE] < 0.0:   # RAW_SCALE_PENDING: the normalised scale, in these units
                sc[s, qo + QT_RAW_SCALE] = sc[s, k + FS_SCALE] * sd[f]
            sum_r += min(max(fixed_residual(err[f], sd[f], sc, s, qo, floor), -CROSS_CLIP), CROSS_CLIP)
            if tail_logp(abs(err[f] / max(sc[s, k + FS_SCALE], floor)), TAIL_U, sc, s, k + FS_TAIL) < LOG_ACTIVE:
                n_active += 1
        if use_level:
            cond_residuals(z, n_features, sc, s)
        for f in range(n_features):   # the two smallest log p-values of each test: each feature's must beat the others'
            qo = quiet_offset(sc.shape[1], n_features, f)
            lpx = cross_residual(fixed_residual(err[f], sd[f], sc, s, qo, floor), sum_r, n_features, f, sc, s)[4]
            lpx_min1, lpx_min2, f_min1 = two_smallest(lpx, f, lpx_min1, lpx_min2, f_min1)
            if use_level:
                lpl = level_residual(level_residual_of(sc, s, n_features, f), qo, sc, s, kp, a_short)[2]
                lpl_min1, lpl_min2, fl_min1 = two_smallest(lpl, f, lpl_min1, lpl_min2, fl_min1)
    best = 0.0
    best_other = 0.0        # the best log p-value with the stuck-value tests left out
    novel = False
    calibrated_blame = False   # a feature crosses the threshold by a calibrated test
    last_arg = math.nan      # the last p_to_score argument of a feature and its score, reused below
    last_score = 0.0
    for f in range(n_features):
        k = SC_FEAT + PF * f
        xf = x[f]
        # a record: beyond the seen range by more than tol of the range; the feature's running rate of
        # records after the warm-up (the warm-up builds the range: its records are not the entity's habit)
        lo = sc[s, k + FS_LO]
        hi = sc[s, k + FS_HI]
        margin = (hi - lo) * tol
        record = tol > 0.0 and hi > lo and (xf > hi + margin or xf < lo - margin)
        records = sc[s, k + FS_RECORDS]
        sc[s, k + FS_RECORDS] = records + a_long * ((1.0 if record and scoring else 0.0) - records)
        sc[s, k + FS_LO] = min(lo, xf)
        sc[s, k + FS_HI] = max(hi, xf)
        # point residual against the entity's own scale
        scale = max(sc[s, k + FS_SCALE], floor)
        r = err[f] / scale
        a = abs(r)
        lp = tail_logp(a, TAIL_U, sc, s, k + FS_TAIL)
        # with no other feature active, the residual (in fixed units) is judged against the fit of such
        # events alone
        quiet = n_features > 1 and n_active - (1 if lp < LOG_ACTIVE else 0) == 0
        qo = 0       # the feature's block at the row's end (more than one feature)
        qr = 0.0
        if n_features > 1:
            qo = quiet_offset(sc.shape[1], n_features, f)
            qr = fixed_residual(err[f], sd[f], sc, s, qo, floor)
        if quiet:
            lp = tail_logp(abs(qr), TAIL_U, sc, s, qo + QT_TAIL)
        kf = KIND_SPIKE if r > 0.0 else KIND_DROP
        if n_features > 1:
            lp_others = lpx_min2 if f == f_min1 else lpx_min1
            lp, kf = cross_test(qr, sum_r, lp_others, n_features, f, lp, kf, sc, s, a_long, a_rate, exc_memory,
                                fold_tails)
        if use_level:
            lp, kf = level_test(level_residual_of(sc, s, n_features, f), qo, lp, kf, lpl_min2 if f == fl_min1 else lpl_min1,
                                sc, s, kp, a_short, log_q, exc_memory)
        # sustained deviation: short mean of the clipped signed residual against its long-run RMS
        if use_short:
            rc = min(max(r, -SHORT_CLIP), SHORT_CLIP)
            c = sc[s, k + FS_SHORT] + a_short * (rc - sc[s, k + FS_SHORT])
            ms = sc[s, k + FS_SHORT_SQ]
            if ms > MIN_MS:
                w = 0.5 * c * c / ms
                lps = tail_logp(w, S_U, sc, s, k + FS_STAIL)
                if lps < lp:
                    lp = lps
                    kf = KIND_SHIFT
                if fold_tails:
                    ww = min(w, tail_quantile(log_q, S_U, sc, s, k + FS_STAIL)) if w > S_U else w
                    tail_fold(ww, S_U, sc, s, k + FS_STAIL, a_srate, exc_memory, S_PRIOR_EXC)
            sc[s, k + FS_SHORT] = c
            sc[s, k + FS_SHORT_SQ] = ms + a_long * (c * c - ms)
        # stuck value: the probability of the current run of repeats under the repeat chain
        run = sc[s, k + FS_RUN]
        cr = sc[s, k + FS_CR] * decay
        cc = sc[s, k + FS_CC] * decay
        rr = sc[s, k + FS_RR] * decay
        rc = sc[s, k + FS_RC] * decay
        lp_flat = 0.0
        if xf == sc[s, k + FS_PREV]:
            if run == 0.0:
                cr += 1.0
            run += 1.0
            lp_flat = (math.log((sc[s, k + FS_CR] + 0.5) / (sc[s, k + FS_CR] + sc[s, k + FS_CC] + 1.0))
                       + (run - 1.0) * math.log((rr + 0.5) / (rr + rc + 1.0)))
        else:
            if run == 0.0:
                cc += 1.0
            else:
                rr += run - 1.0
                rc += 1.0
            run = 0.0
        sc[s, k + FS_RUN] = run
        sc[s, k + FS_CR] = cr
        sc[s, k + FS_CC] = cc
        sc[s, k + FS_RR] = rr
        sc[s, k + FS_RC] = rc
        sc[s, k + FS_PREV] = xf
        if lp + log_tests < best_other:
            best_other = lp + log_tests
        # a run that began before the warm-up ended is the entity's normal (a constant series)
        if use_flat and n - run >= kp[KP_WARMUP] and lp_flat < lp:
            lp = lp_flat
            kf = KIND_FLATLINE
        # novelty: a record where the feature rarely sets records (F features share the rate's budget),
        # or where one of its tests is at least mildly surprising; a walk pushing its edge by ordinary
        # steps is not novel
        is_novel = record and (lp <= log_gate or records * n_features <= rec_max)
        lp += log_tests
        if lp < best:
            best = lp
        if is_novel:
            novel = True
        if scoring:
            last_arg = lp + log_features
            last_score = p_to_score(last_arg)
            if last_score >= kp[KP_THRESHOLD]:
                kind[f] = kf             # a calibrated test names the kind, novel value or not
                calibrated_blame = True
            elif is_novel:
                kind[f] = KIND_NOVELTY
        # fold the (winsorised) residual into the scale and the tail fit; the winsorising quantile
        # is at least TAIL_U, so it is computed only for a residual beyond TAIL_U (the tail fit is
        # not changed before this point)
        aw = min(a, tail_quantile(log_q, TAIL_U, sc, s, k + FS_TAIL)) if a > TAIL_U else a
        shrink = min(1.0, aw / max(a, MIN_MS))
        sc[s, k + FS_SCALE] += a_long * (abs(err[f]) * shrink - sc[s, k + FS_SCALE])
        if n_features > 1:
            sc[s, qo + QT_RAW_SCALE] += a_long * (abs(err[f]) * sd[f] * shrink - sc[s, qo + QT_RAW_SCALE])
        if fold_tails:
            tail_fold(aw, TAIL_U, sc, s, k + FS_TAIL, a_rate, exc_memory, PRIOR_EXC)
            if quiet:
                kq = qo + QT_TAIL
                aq = abs(qr)
                awq = min(aq, tail_quantile(log_q, TAIL_U, sc, s, kq)) if aq > TAIL_U else aq
                tail_fold(awq, TAIL_U, sc, s, kq, a_rate, exc_memory, PRIOR_EXC)
    sc[s, SC_N] = n_seen + 1.0
    if use_level:   # after every feature's level test, which counted this event (LV_N)
        fold_covariance(z, n_features, sc, s, long_w)
    if calibrated_blame and novel:
        for f in range(n_features):   # features that only left their range are not blamed beside them
            if kind[f] == KIND_NOVELTY:
                kind[f] = KIND_NONE
    score = 0.0
    calibrated = 0.0    # the score without the novelty rule
    arg = 0.0           # its log p-value: what a stronger anomaly must beat, unclipped
    if scoring:
        arg = best + log_features
        calibrated = last_score if arg == last_arg else p_to_score(arg)
        score = 1.0 if novel else calibrated
    else:
        for f in range(n_features):
            kind[f] = KIND_NONE
    word = sc[s, SC_ALARMED]
    alarmed = abs(word)
    in_period = alarmed != 0.0 and (n - sc[s, SC_ALARM_N] <= kp[KP_SUPPRESS] or t - sc[s, SC_ALARM_T] < kp[KP_MIN_GAP])
    new_incident = alarmed > NEW_INCIDENT_EVENTS
    # once the incident has ended, the run of unsurprising events after which a novel value is news: the
    # sustained-deviation test's memory (short_window); the word counts on to NEW_INCIDENT_EVENTS + 1 + it
    quiet_novel = NEW_INCIDENT_EVENTS + kp[KP_SHORT]
    best_flat = best < best_other   # the stuck-value test gives the event's p-value
    flags = 0
    if score >= kp[KP_THRESHOLD]:
        flags = FLAG_ANOMALY
        # past the period, an incident that has not ended is held (suppression off: nothing is)
        suppressing = kp[KP_SUPPRESS] > 0.0 or kp[KP_MIN_GAP] > 0.0
        if in_period or (suppressing and alarmed != 0.0 and not new_incident):
            alarm_logp = stored_alarm_logp(sc[s, SC_ALARM_LOGP])
            alarm_score = p_to_score(alarm_logp)
            # clearly stronger: a calibrated score 0.1 higher; a score cannot rise 0.1 above an alarm's of 0.9
            # or more, so then a p-value 10x smaller
            ev_logp = arg
            ev_score = calibrated
            if word < 0.0 and not in_period and best_flat:
                # past the period of an incident that a stuck run began, the stuck tests (whose p-value
                # shrinks at every repeat of the run) are left out: other evidence is judged as usual
                ev_logp = best_other + log_features
                ev_score = p_to_score(ev_logp)
            higher = ev_score >= alarm_score + OVERRIDE_MARGIN
            smaller_p = alarm_score > 1.0 - OVERRIDE_MARGIN and ev_logp <= alarm_logp - LOG_OVERRIDE
            stronger = higher or smaller_p
            if in_period:
                # after a calibrated alarm only a new incident (a continuing one re-alarms not as its score
                # climbs); after a novelty alarm, 0.1 higher at once
                stronger = (higher and (new_incident or alarm_score < kp[KP_THRESHOLD])) or (smaller_p and new_incident)
                # after a calibrated alarm whose incident has ended and the series been back to normal
                # for quiet_novel events in a row, a surprising novel value is a new incident's news
                if novel and alarmed > quiet_novel and alarm_score >= kp[KP_THRESHOLD] and arg <= log_gate:
                    stronger = True
            if not stronger:
                flags = FLAG_SUPPRESSED
    elif in_period:
        flags = FLAG_SUPPRESSED
    if flags == FLAG_ANOMALY:
        # a stuck run that began an incident stays held through the incident's stronger alarms
        sc[s, SC_ALARMED] = -1.0 if best_flat or (word < 0.0 and not new_incident) else 1.0
        sc[s, SC_ALARM_N] = n
        sc[s, SC_ALARM_T] = t
        sc[s, SC_ALARM_LOGP] = min(arg, 0.0)   # p at most 1: a positive word is an earlier build's score
    elif alarmed != 0.0 and alarmed <= quiet_novel:
        # the run of events below the threshold since the alarm; once long enough, the incident has ended.
        # After that, the run of unsurprising events (not novel, calibrated p-value above novelty_gate)
        # counts on to quiet_novel: the series is back to normal (a surprising event restarts that run)
        if not new_incident:
            quiet = alarmed + 1.0 if score < kp[KP_THRESHOLD] else 1.0
        else:
            quiet = alarmed + 1.0 if not novel and arg > log_gate else NEW_INCIDENT_EVENTS + 1.0
        sc[s, SC_ALARMED] = -quiet if word < 0.0 else quiet
    if score >= kp[KP_THRESHOLD]:
        flags |= FLAG_ANOMALOUS
    return score, flags
