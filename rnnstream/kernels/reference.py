"""A plain Python/numpy reference of the shared per-event pieces, for tests only.

Written from the docstrings of :mod:`.features`, :mod:`.calibrate` and :mod:`.ring`, not from their
code, so that a test can run a model kernel and a loop over these functions side by side. Nothing here
is compiled or fast. One :class:`EntityRef` holds what SlotState keeps in one slot row.

Guaranteed: the same semantics as the numba pieces, to float64 rounding (the caller decides the dtype
of the model input ``u`` and of the stored prediction, as a model kernel does), for the documented
scoring parameters. The experimental calibration knobs of :mod:`.params` (``xform``, ``winsor``,
``two_sided``, ...) are not modelled: keep them at their defaults when comparing. Not guaranteed: speed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from . import calibrate as C
from . import params as P

DAY = 86400.0
WEEK_OFFSET_DAYS = 3.0
GAP_SCALE = 10.0
REL_FLOOR = 1e-6
ABS_FLOOR = 1e-9
TAIL_FLOOR = 1e-10
SD_FLOOR = 1e-6
FLAG_ANOMALY = 1
FLAG_SUPPRESSED = 2


@dataclass
class ScorerRef:
    """The scorer's per-entity statistics (the ``sc`` row, by name)."""

    short: float = 0.0
    mean: float = 0.0
    var: float = 0.0
    n: float = 0.0
    alarmed: bool = False
    alarm_n: float = 0.0
    alarm_t: float = 0.0
    lo: list[float] = field(default_factory=list)
    hi: list[float] = field(default_factory=list)
    prof_n: np.ndarray = field(default_factory=lambda: np.zeros(0))          # (B,) values per day bin
    prof: np.ndarray = field(default_factory=lambda: np.zeros((0, 0)))       # (B, F) mean per day bin

    def as_row(self, n_features: int) -> np.ndarray:
        """The same numbers in the layout of ``calibrate.SC_*`` (for comparing with a kernel's ``sc``)."""
        bins = len(self.prof_n)
        row = np.zeros(C.sc_size(n_features, bins))
        row[[C.SC_SHORT, C.SC_MEAN, C.SC_VAR, C.SC_N, C.SC_ALARMED, C.SC_ALARM_N, C.SC_ALARM_T]] = [
            self.short, self.mean, self.var, self.n, float(self.alarmed), self.alarm_n, self.alarm_t]
        for f in range(len(self.lo)):
            row[C.SC_RANGE + 2 * f], row[C.SC_RANGE + 2 * f + 1] = self.lo[f], self.hi[f]
        if bins:
            row[C.profile_offset(n_features):] = np.column_stack([self.prof_n, self.prof]).ravel()
        return row


@dataclass
class EntityRef:
    """Everything one entity's slot holds in the shared fields."""

    n_features: int
    n_inputs: int
    window: int
    profile_bins: int = 0
    in_bin: float = 0.0       # values the latest event's day bin held before it (set by prepare_input)
    count: int = 0
    last_ts: float = 0.0
    nmean: np.ndarray = None  # type: ignore[assignment]
    nvar: np.ndarray = None  # type: ignore[assignment]
    pred: np.ndarray = None  # type: ignore[assignment]
    ring_in: np.ndarray = None  # type: ignore[assignment]
    ring_flag: np.ndarray = None  # type: ignore[assignment]
    sc: ScorerRef = field(default_factory=ScorerRef)

    def __post_init__(self) -> None:
        self.nmean = np.zeros(self.n_features)
        self.nvar = np.zeros(self.n_features)
        self.pred = np.zeros(self.n_features, dtype=np.float32)
        self.ring_in = np.zeros((self.window, self.n_inputs), dtype=np.float32)
        self.ring_flag = np.zeros(self.window, dtype=np.uint8)
        self.sc.prof_n = np.zeros(self.profile_bins)
        self.sc.prof = np.zeros((self.profile_bins, self.n_features))


def is_late(ent: EntityRef, t: float, kp: np.ndarray) -> bool:
    """A late event: older than the entity's previous one by more than the late tolerance."""
    return ent.count > 0 and t < ent.last_ts - kp[P.KP_LATE]


def prepare_input(ent: EntityRef, x: np.ndarray, t: float, kp: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(u, mean, sd)``: the model input (float64) and the statistics ``x`` was normalised with.

    Updates the entity's normaliser (exponential mean/variance with a count-based warm start).
    """
    n = ent.count
    alpha = max(1.0 / (n + 1.0), math.log(2.0) / kp[P.KP_HALFLIFE])
    zclip = kp[P.KP_ZCLIP]
    mean = ent.nmean.copy()
    sd = np.array([max(math.sqrt(v), REL_FLOOR * abs(m) + ABS_FLOOR) for m, v in zip(ent.nmean, ent.nvar)])
    z = np.zeros(ent.n_features)
    if n > 0:
        z = np.clip((x - mean) / sd, -zclip, zclip)
    d = x - mean
    ent.nvar = (1.0 - alpha) * (ent.nvar + alpha * d * d)
    ent.nmean = mean + alpha * d
    time_feats: list[float] = []
    if kp[P.KP_TOD]:
        a = 2.0 * math.pi * ((t % DAY) / DAY)
        time_feats += [math.sin(a), math.cos(a)]
    if kp[P.KP_DOW]:
        a = 2.0 * math.pi * (((t / DAY + WEEK_OFFSET_DAYS) % 7.0) / 7.0)
        time_feats += [math.sin(a), math.cos(a)]
    if kp[P.KP_GAP]:
        gap = max(t - ent.last_ts, 0.0) if n > 0 else 0.0
        time_feats.append(math.log1p(gap) / GAP_SCALE)
    if kp[P.KP_PROFILE_BINS]:
        time_feats += list(daily_profile(ent, x, z, t, mean, sd, kp))
    return np.concatenate([z, time_feats]), mean, sd


def daily_profile(ent: EntityRef, x: np.ndarray, z: np.ndarray, t: float, mean: np.ndarray, sd: np.ndarray,
                  kp: np.ndarray) -> np.ndarray:
    """Profile inputs (current bin, then expected next bin, per feature); folds ``x`` into its bin."""
    bins, zclip, sc = int(kp[P.KP_PROFILE_BINS]), kp[P.KP_ZCLIP], ent.sc

    def bin_of(when: float) -> int:
        return min(int((when % DAY) / DAY * bins), bins - 1)

    gap = max(t - ent.last_ts, 0.0) if ent.count > 0 else 0.0
    cur, nxt = bin_of(t), bin_of(t + gap)
    ent.in_bin = float(sc.prof_n[cur])
    p_cur = np.clip((sc.prof[cur] - mean) / sd, -zclip, zclip) if sc.prof_n[cur] > 0 else z.copy()
    weight = max(1.0 / (sc.prof_n[cur] + 1.0), kp[P.KP_PROFILE_RATE])
    sc.prof[cur] += weight * (x - sc.prof[cur])
    sc.prof_n[cur] += 1.0
    p_next = np.clip((sc.prof[nxt] - mean) / sd, -zclip, zclip) if sc.prof_n[nxt] > 0 else p_cur.copy()
    return np.concatenate([p_cur, p_next])


def tail_score(z: float) -> float:
    """``log(q + 1e-10) / log(1e-10)`` of the Gaussian upper tail ``q`` at ``z``, clipped to [0, 1]."""
    q = 0.5 * math.erfc(z / math.sqrt(2.0))
    return min(max(math.log(q + TAIL_FLOOR) / math.log(TAIL_FLOOR), 0.0), 1.0)


def novelty(sc: ScorerRef, x: np.ndarray, n: int, kp: np.ndarray) -> float:
    """1.0 when a feature leaves the seen range by more than ``tol * range``; widens the range."""
    if n == 0:
        sc.lo, sc.hi = [float(v) for v in x], [float(v) for v in x]
        return 0.0
    tol, hit = kp[P.KP_NOVELTY], 0.0
    for f, v in enumerate(x):
        lo, hi = sc.lo[f], sc.hi[f]
        if tol > 0 and hi > lo and (v > hi + (hi - lo) * tol or v < lo - (hi - lo) * tol):
            hit = 1.0
        sc.lo[f], sc.hi[f] = min(lo, v), max(hi, v)
    return hit


def capped_error(ent: EntityRef, err: np.ndarray, u: np.ndarray, kp: np.ndarray) -> float:
    """The error ``observe`` scores: the RMS of ``err``, at most ``profile_cap`` times the RMS distance
    of the value ``u[:F]`` from its bin's profile ``u[-2F:-F]`` once the bin holds ``1 / rate`` values."""
    e = math.sqrt(float(np.mean(np.square(err))))
    F = ent.n_features
    if kp[P.KP_PROFILE_CAP] > 0 and kp[P.KP_PROFILE_BINS] and ent.in_bin * kp[P.KP_PROFILE_RATE] >= 1.0:
        dev = np.asarray(u[:F], dtype=np.float64) - np.asarray(u[len(u) - 2 * F:len(u) - F], dtype=np.float64)
        e = min(e, kp[P.KP_PROFILE_CAP] * math.sqrt(float(np.mean(dev * dev))))
    return e


def score_event(sc: ScorerRef, err: np.ndarray, x: np.ndarray, n: int, t: float, kp: np.ndarray,
                e: float | None = None) -> tuple[float, int]:
    """``(score, flags)`` of one event; updates ``sc``. ``n`` is the entity's count before the event.

    ``e`` replaces the RMS of ``err`` as the error scored (see :func:`capped_error`).
    """
    novel = novelty(sc, x, n, kp)
    if n == 0:
        return 0.0, 0
    if e is None:
        e = math.sqrt(float(np.mean(np.square(err))))
    a_short = max(1.0 / (sc.n + 1.0), 2.0 / (kp[P.KP_SHORT] + 1.0))
    sc.short += a_short * (e - sc.short)
    score = 0.0
    if n >= kp[P.KP_WARMUP] and sc.n >= 2:
        z = (sc.short - sc.mean) / max(math.sqrt(sc.var), SD_FLOOR)
        score = max(tail_score(z), novel)
    # The long-run statistics exclude the current event while scoring it: update afterwards.
    a_long = max(1.0 / (sc.n + 1.0), 1.0 / kp[P.KP_LONG])
    d = sc.short - sc.mean
    sc.mean += a_long * d
    sc.var = (1.0 - a_long) * (sc.var + a_long * d * d)
    sc.n += 1.0
    if sc.alarmed and (n - sc.alarm_n <= kp[P.KP_SUPPRESS] or t - sc.alarm_t < kp[P.KP_MIN_GAP]):
        return score, FLAG_SUPPRESSED
    if score >= kp[P.KP_THRESHOLD]:
        sc.alarmed, sc.alarm_n, sc.alarm_t = True, float(n), float(t)
        return score, FLAG_ANOMALY
    return score, 0


def finish_event(ent: EntityRef, t: float, u: np.ndarray, flag: int) -> None:
    """Append ``u`` and ``flag`` at ring position ``count % W``, then count the event and keep ``t``."""
    p = ent.count % ent.window
    ent.ring_in[p] = u
    ent.ring_flag[p] = flag
    ent.count += 1
    ent.last_ts = t
