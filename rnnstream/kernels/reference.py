"""A plain Python/numpy reference of the shared per-event pieces, for tests only.

Written from the docstrings of :mod:`.features`, :mod:`.calibrate` and :mod:`.ring`, not from their
code, so that a test can run a model kernel and a loop over these functions side by side. Nothing here
is compiled or fast. One :class:`EntityRef` holds what SlotState keeps in one slot row.

Guaranteed: the same semantics as the numba pieces, to float64 rounding (the caller decides the dtype
of the model input ``u`` and of the stored prediction, as a model kernel does), for the documented
scoring parameters. Not guaranteed: speed.
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
class TailFit:
    """A peaks-over-threshold fit beyond ``u`` (see :mod:`.calibrate`); by default the point test's,
    from the Laplace prior."""

    rate: float = C.RATE0
    m1: float = 1.0
    m2: float = 2.0
    n: float = 0.0
    u: float = C.TAIL_U
    prior_exc: float = C.PRIOR_EXC

    @classmethod
    def sustained(cls) -> TailFit:
        """The sustained-deviation test's fit of ``w = z^2 / 2``, from the Gaussian prior."""
        return cls(rate=C.S_RATE0, m1=C.S_M1, m2=2.0 * C.S_M1 * C.S_M1, u=C.S_U, prior_exc=C.S_PRIOR_EXC)

    def gpd(self, xi_max: float = C.XI_MAX) -> tuple[float, float]:
        """Shape in [0, xi_max] and scale of the generalised Pareto tail matching the excess moments."""
        var = self.m2 - self.m1 * self.m1
        xi = min(max(0.5 * (1.0 - self.m1 * self.m1 / var), 0.0), xi_max) if var > C.MIN_MS and xi_max > 0 else 0.0
        return xi, max(self.m1 * (1.0 - xi), C.MIN_MS)

    def logp(self, a: float) -> float:
        """log P(value >= a): 0 up to ``u``, then ``log(rate) + log GPD survival`` of the excess."""
        if a <= self.u:
            return 0.0
        xi, sigma = self.gpd()
        y = (a - self.u) / sigma
        return math.log(self.rate) - (y if xi < 1e-6 else math.log1p(xi * y) / xi)

    def quantile(self, logq: float) -> float:
        """The ``a`` at which :meth:`logp` equals ``logq``."""
        xi, sigma = self.gpd()
        d = max(math.log(self.rate) - logq, 0.0)
        return self.u + (sigma * d if xi < 1e-6 else sigma * math.expm1(xi * d) / xi)

    def fold(self, aw: float, a_rate: float, memory: float) -> None:
        exceed = aw > self.u
        self.rate += a_rate * (float(exceed) - self.rate)
        if exceed:
            a_exc = max(1.0 / (self.n + 1.0 + self.prior_exc), 1.0 / memory)
            self.m1 += a_exc * ((aw - self.u) - self.m1)
            self.m2 += a_exc * ((aw - self.u) ** 2 - self.m2)
            self.n += 1.0

    def as_list(self) -> list[float]:
        return [self.rate, self.m1, self.m2, self.n]


@dataclass
class FeatureStats:
    """One feature's scorer statistics (see :mod:`.calibrate`)."""

    scale: float = 0.0
    tail: TailFit = field(default_factory=TailFit)
    short: float = 0.0
    short_sq: float = 0.0
    prev: float = 0.0
    run: float = 0.0
    cr: float = 0.0
    cc: float = 0.0
    rr: float = 0.0
    rc: float = 0.0
    lo: float = 0.0
    hi: float = 0.0
    model_mae: float = 0.0    # running mean absolute error of the model's prediction (the blend)
    persist_mae: float = 0.0  # ... and of persistence
    short_tail: TailFit = field(default_factory=TailFit.sustained)
    quiet_tail: TailFit = field(default_factory=TailFit)   # |r| at events with no other feature active
    records: float = 0.0      # running rate of records (values beyond the range by novelty_tolerance) after the warm-up
    profile_err: float = C.PROFILE_ERR0   # running distance of the normalised value from its time-of-day mean
    cross_em: float = 0.0     # cross-feature test: running mean of r m (m: the other features' mean r),
    cross_mm: float = 0.0     # ... of m^2,
    cross_scale: float = 0.0  # ... of |d|, d = r - beta m
    cross_tail: TailFit = field(default_factory=TailFit)   # |d| / its scale
    raw_scale: float = 0.0    # mean absolute error in the feature's own units (with more than one feature)
    lv_n: float = 0.0         # level test (with more than one feature): its event count,
    lv_scale: float = 0.0     # ... running mean of |l|, l = z less its regression on the other features,
    lv_short: float = 0.0     # ... short mean of l / its scale, clipped,
    lv_short_sq: float = 0.0  # ... its long-run mean square,
    lv_tail: TailFit = field(default_factory=TailFit.sustained)   # ... and the tail fit of w = short^2 / (2 mean square)

    def as_list(self) -> list[float]:
        return [self.scale, *self.tail.as_list(), self.short, self.short_sq, self.prev, self.run, self.cr, self.cc,
                self.rr, self.rc, self.lo, self.hi, self.model_mae, self.persist_mae, *self.short_tail.as_list(), self.records,
                self.profile_err]


@dataclass
class ScorerRef:
    """The scorer's per-entity statistics (the ``sc`` row, by name)."""

    n: float = 0.0
    alarmed: bool = False
    quiet_run: float = 0.0    # events in a row below the threshold since the last alarm up to NEW_INCIDENT_EVENTS, then
                              # unsurprising ones in a row (at most NEW_INCIDENT_EVENTS + short_window)
    alarm_n: float = 0.0
    alarm_t: float = 0.0
    alarm_logp: float = 0.0   # the calibrated log p-value of the last alarm
    alarm_flat: bool = False  # that p-value was the stuck-value test's
    feats: list[FeatureStats] = field(default_factory=list)
    prof_n: np.ndarray = field(default_factory=lambda: np.zeros(0))          # (B,) values per day bin
    prof: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), dtype=np.float32))  # (B, F) mean per day bin
    # the level test's running covariance of the normalised values (F, F; more than one feature) and the
    # regression: the Cholesky factor (lower) and the inverse's diagonal, refreshed when
    # calibrate.cov_refresh_due; the last event's forward solve and residuals
    cov: np.ndarray = field(default_factory=lambda: np.zeros((0, 0)))
    chol: np.ndarray = field(default_factory=lambda: np.zeros((0, 0)))
    pdiag: np.ndarray = field(default_factory=lambda: np.zeros(0))
    fwd: np.ndarray = field(default_factory=lambda: np.zeros(0))
    lres: np.ndarray = field(default_factory=lambda: np.zeros(0))

    def as_row(self, n_features: int) -> np.ndarray:
        """The same numbers in the layout of ``calibrate.SC_*`` (for comparing with a kernel's ``sc``)."""
        bins = len(self.prof_n)
        row = np.zeros(C.sc_size(n_features, bins))
        row[[C.SC_N, C.SC_ALARMED, C.SC_ALARM_N, C.SC_ALARM_T, C.SC_ALARM_LOGP]] = [
            self.n, (1.0 + self.quiet_run) * (-1.0 if self.alarm_flat else 1.0) if self.alarmed else 0.0,
            self.alarm_n, self.alarm_t, self.alarm_logp]
        for f, st in enumerate(self.feats):
            row[C.SC_FEAT + C.PF * f:C.SC_FEAT + C.PF * (f + 1)] = st.as_list()
            if n_features > 1:
                q = C.quiet_offset(len(row), n_features, f)
                row[q + C.QT_TAIL:q + C.QT_TAIL + 4] = st.quiet_tail.as_list()
                row[[q + C.XC_EM, q + C.XC_MM, q + C.XC_SCALE]] = [st.cross_em, st.cross_mm, st.cross_scale]
                row[q + C.XC_TAIL:q + C.XC_TAIL + 4] = st.cross_tail.as_list()
                row[q + C.QT_RAW_SCALE] = st.raw_scale
                row[q + C.LV_N:q + C.LV_TAIL] = [st.lv_n, st.lv_scale, st.lv_short, st.lv_short_sq]
                row[q + C.LV_TAIL:q + C.LV_TAIL + 4] = st.lv_tail.as_list()
        if n_features > 1 and self.cov.size:
            c0, low = C.cov_offset(len(row), n_features), np.tril_indices(n_features)
            nt = len(low[0])
            row[c0:c0 + nt] = self.cov[low]
            row[c0 + nt:c0 + 2 * nt] = self.chol[low]
            row[c0 + 2 * nt:c0 + 2 * nt + n_features] = self.pdiag
            row[c0 + 2 * nt + n_features:c0 + 2 * nt + 2 * n_features] = self.fwd
            row[c0 + 2 * nt + 2 * n_features:c0 + 2 * nt + 3 * n_features] = self.lres
        if bins:
            means = C.profile_offset(n_features) + C.profile_means_size(n_features, bins)
            packed = np.zeros((means - C.profile_offset(n_features)) * C.PROFILE_MEANS_PER_WORD, dtype=np.float32)
            packed[:self.prof.size] = self.prof.ravel()
            row[C.profile_offset(n_features):means] = packed.view(np.float64)
            for b, n in enumerate(np.minimum(self.prof_n, C.PROFILE_COUNT_MAX).astype(int)):
                row[means + b // C.PROFILE_COUNTS_PER_WORD] += n * 2.0 ** (C.PROFILE_COUNT_BITS * (b % C.PROFILE_COUNTS_PER_WORD))
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
        self.sc.prof = np.zeros((self.profile_bins, self.n_features), dtype=np.float32)


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
    m = sc.prof[cur].astype(np.float64)
    sc.prof[cur] = np.clip(m + weight * (x - m), -C.PROFILE_MEAN_MAX, C.PROFILE_MEAN_MAX).astype(np.float32)
    sc.prof_n[cur] += 1.0
    p_next = np.clip((sc.prof[nxt] - mean) / sd, -zclip, zclip) if sc.prof_n[nxt] > 0 else p_cur.copy()
    return np.concatenate([p_cur, p_next])


def p_to_score(logp: float) -> float:
    """``log(p + 1e-10) / log(1e-10)`` of ``p = exp(logp)``, clipped to [0, 1]."""
    p = math.exp(min(logp, 0.0))
    return min(max(math.log(p + TAIL_FLOOR) / math.log(TAIL_FLOOR), 0.0), 1.0)


def blended_errors(ent: EntityRef, u: np.ndarray, mean: np.ndarray, sd: np.ndarray,
                   kp: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(error, prediction)`` that ``observe`` scores for an entity past its first event: with
    ``persistence_blend`` B > 0, per feature, the model's prediction ``ent.pred`` and persistence (the
    previous raw value normalised with ``mean``/``sd`` and clipped) weighted ``w = p^2 / (m^2 + p^2)``
    and ``1 - w`` (0.5 while both are 0), ``m`` and ``p`` their running mean absolute
    errors before this event (the model's in float32), which then take in this event's errors with weight
    ``max(1 / (errors folded + 1), 1 / B)``. Without it, the model's own prediction. Normalised units."""
    F = ent.n_features
    model = ent.pred.astype(np.float64)
    z = np.asarray(u[:F], dtype=np.float64)
    model_err = (np.asarray(u[:F], dtype=np.float32) - ent.pred.astype(np.float32)).astype(np.float64)
    blend = kp[P.KP_BLEND]
    if blend <= 0:
        return model_err, model
    a = max(1.0 / (ent.sc.n + 1.0), 1.0 / blend)
    pred, err = np.zeros(F), np.zeros(F)
    for f, st in enumerate(ent.sc.feats):
        persist = min(max((st.prev - mean[f]) / sd[f], -kp[P.KP_ZCLIP]), kp[P.KP_ZCLIP])
        m2, p2 = st.model_mae * st.model_mae, st.persist_mae * st.persist_mae
        w = 0.5 if m2 + p2 < 1e-24 else p2 / (m2 + p2)
        st.model_mae += a * (abs(model_err[f]) - st.model_mae)
        st.persist_mae += a * (abs(z[f] - persist) - st.persist_mae)
        pred[f] = w * model[f] + (1.0 - w) * persist
        err[f] = w * model_err[f] + (1.0 - w) * (z[f] - persist)
    return err, pred


def capped_errors(ent: EntityRef, err: np.ndarray, u: np.ndarray, kp: np.ndarray) -> np.ndarray:
    """The errors ``observe`` scores: each at most ``profile_cap`` times the distance of the value
    ``u[f]`` from its bin's profile ``u[-2F + f]``, once the bin holds ``1 / rate`` values, for a feature
    whose running distance from its profile is at most ``PROFILE_GATE``; that distance then takes in this
    one (any value whose bin held one before; memory ``PROFILE_ERR_EVENTS``)."""
    err = np.asarray(err, dtype=np.float64).copy()
    F = ent.n_features
    if kp[P.KP_PROFILE_CAP] > 0 and kp[P.KP_PROFILE_BINS] and ent.in_bin > 0:
        u32 = np.asarray(u, dtype=np.float32)
        dist = np.abs(u32[:F] - u32[len(u) - 2 * F:len(u) - F]).astype(np.float64)
        ready = ent.in_bin * kp[P.KP_PROFILE_RATE] >= 1.0
        for f, st in enumerate(ent.sc.feats):
            if ready and st.profile_err <= C.PROFILE_GATE:
                limit = kp[P.KP_PROFILE_CAP] * dist[f]
                err[f] = min(max(err[f], -limit), limit)
            st.profile_err += (dist[f] - st.profile_err) / C.PROFILE_ERR_EVENTS
    return err


def model_scaled_errors(err: np.ndarray, log_scale: np.ndarray | None) -> np.ndarray:
    """The errors ``observe`` scores with a model's scale head: divided by
    ``exp(HEAD_WEIGHT * log_scale)``, the log-scale the model predicted at the entity's previous event;
    unchanged without a head (``None``)."""
    from .observe import HEAD_WEIGHT

    if log_scale is None:
        return err
    return np.asarray(err, dtype=np.float64) / np.exp(HEAD_WEIGHT * np.asarray(log_scale, dtype=np.float64))


def cross_residual(st: FeatureStats, r: float, sum_r: float, F: int) -> tuple[float, float, float, float, float]:
    """``(rc, m, d, ad, log p)`` of the cross-feature test (see ``calibrate.cross_test``)."""
    rc = min(max(r, -C.CROSS_CLIP), C.CROSS_CLIP)
    m = (sum_r - rc) / (F - 1.0)
    beta = st.cross_em / st.cross_mm if st.cross_mm > C.MIN_MS else 0.0
    d = rc - beta * m
    ad = abs(d) / max(st.cross_scale, C.CROSS_FLOOR)
    return rc, m, d, ad, st.cross_tail.logp(ad)


def cross_test(st: FeatureStats, r: float, sum_r: float, lp_others: float, F: int, lp: float, kind: int,
               a_long: float, a_rate: float, memory: float, fold: bool) -> tuple[float, int]:
    """The cross-feature test (see ``calibrate.cross_test``): ``d = r - beta m`` against its own tail,
    counted only where no other feature's is more surprising (``lp_others``)."""
    rc, m, d, ad, lpx = cross_residual(st, r, sum_r, F)
    if lpx < lp and lpx <= lp_others:
        lp, kind = lpx, (C.KIND_SPIKE if d > 0 else C.KIND_DROP)
    adw = min(ad, st.cross_tail.quantile(C.WINSOR_LOGP)) if ad > C.TAIL_U else ad
    st.cross_em += a_long * (rc * m - st.cross_em)
    st.cross_mm += a_long * (m * m - st.cross_mm)
    st.cross_scale += a_long * (abs(d) * min(1.0, adw / max(ad, C.MIN_MS)) - st.cross_scale)
    if fold:
        st.cross_tail.fold(adw, a_rate, memory)
    return lp, kind


def cond_residuals(sc: ScorerRef, z: np.ndarray) -> None:
    """Each feature's normalised value less its least-squares regression on the others' (see
    ``calibrate.cond_residuals``), into ``sc.lres``: ``(P z)_f / P_ff`` with ``P`` the inverse of the
    covariance plus the ridge, by the textbook Cholesky factorisation (refreshed with ``P``'s diagonal
    when ``calibrate.cov_refresh_due``) and triangular solves."""
    F = len(z)
    seen = sc.feats[0].lv_n - (F + 2.0)
    if seen < 0:
        sc.lres[:] = 0.0
        return
    L, w, y = sc.chol, sc.fwd, sc.lres
    if C.cov_refresh_due(int(seen)):
        tr = 0.0
        for f in range(F):
            tr += sc.cov[f, f]
        a = sc.cov + np.diag(np.full(F, C.COV_RIDGE * tr / F + C.MIN_MS))
        for j in range(F):
            d = a[j, j]
            for k in range(j):
                d -= L[j, k] * L[j, k]
            L[j, j] = d = math.sqrt(max(d, C.MIN_MS))
            for i in range(j + 1, F):
                v = a[i, j]
                for k in range(j):
                    v -= L[i, k] * L[j, k]
                L[i, j] = v / d
        for f in range(F):                  # P_ff = |L^-1 e_f|^2
            pff = 0.0
            for i in range(f, F):
                v = 1.0 if i == f else 0.0
                for k in range(f, i):
                    v -= L[i, k] * w[k]
                w[i] = v / L[i, i]
                pff += w[i] * w[i]
            sc.pdiag[f] = pff
    for i in range(F):                      # L w = z
        v = float(z[i])
        for k in range(i):
            v -= L[i, k] * w[k]
        w[i] = v / L[i, i]
    for i in range(F - 1, -1, -1):          # L^T y = w: y = P z
        v = w[i]
        for k in range(i + 1, F):
            v -= L[k, i] * y[k]
        y[i] = v / L[i, i]
    y /= sc.pdiag


def level_residual(st: FeatureStats, lres: float, kp: np.ndarray) -> tuple[float, float, float]:
    """``(c, w, log p)`` of the level test for its residual ``lres`` (see ``calibrate.level_residual``)."""
    scale = max(st.lv_scale, kp[P.KP_SCALE_FLOOR])
    c = st.lv_short + 2.0 / (kp[P.KP_SHORT] + 1.0) * (min(max(lres / scale, -C.SHORT_CLIP), C.SHORT_CLIP) - st.lv_short)
    if st.lv_short_sq <= C.MIN_MS:
        return c, 0.0, 0.0
    w = 0.5 * c * c / st.lv_short_sq
    return c, w, st.lv_tail.logp(w)


def level_test(st: FeatureStats, lres: float, lp: float, kind: int, lp_others: float,
               kp: np.ndarray, memory: float) -> tuple[float, int]:
    """The level test (see ``calibrate.level_test``): the residual ``lres`` of the value's regression on
    the other features', its clipped short mean against its long-run RMS, on its own count, counted
    where no other feature's is more surprising (``lp_others``)."""
    long_w = kp[P.KP_LONG]
    a_long = max(1.0 / (st.lv_n + 1.0), 1.0 / long_w)
    a_rate = max(1.0 / (st.lv_n + 1.0 + C.S_PRIOR_EVENTS), 1.0 / long_w)
    c, w, lpl = level_residual(st, lres, kp)
    if st.lv_short_sq > C.MIN_MS:
        if lpl < lp and lpl <= lp_others and st.lv_n >= kp[P.KP_WARMUP]:
            lp, kind = lpl, C.KIND_SHIFT
        if st.lv_n >= C.MIN_SCALE_EVENTS:
            st.lv_tail.fold(min(w, st.lv_tail.quantile(C.WINSOR_LOGP)) if w > C.S_U else w, a_rate, memory)
    st.lv_short, st.lv_short_sq = c, st.lv_short_sq + a_long * (c * c - st.lv_short_sq)
    st.lv_scale += a_long * (abs(lres) - st.lv_scale)
    st.lv_n += 1.0
    return lp, kind


def score_event(sc: ScorerRef, err: np.ndarray, x: np.ndarray, n: int, t: float,
                kp: np.ndarray, sd: np.ndarray | None = None,
                z: np.ndarray | None = None) -> tuple[float, int, np.ndarray]:
    """``(score, flags, kinds)`` of one event; updates ``sc``. ``n`` is the entity's count before it;
    ``sd`` the deviations the errors were normalised with (None: ones); ``z`` the normalised values
    (None: zeros)."""
    F = len(x)
    sd = np.ones(F) if sd is None else np.asarray(sd, dtype=np.float64)
    z = np.zeros(F) if z is None else np.asarray(z, dtype=np.float64)[:F]
    kinds = np.zeros(F, dtype=np.uint8)
    if n == 0:
        sc.feats = [FeatureStats(prev=float(v), lo=float(v), hi=float(v)) for v in x]
        sc.cov = np.zeros((0, 0))
        return 0.0, 0, kinds
    scoring = n >= kp[P.KP_WARMUP] and sc.n >= 2
    long_w, thr = kp[P.KP_LONG], kp[P.KP_THRESHOLD]
    a_long = max(1.0 / (sc.n + 1.0), 1.0 / long_w)
    a_rate = max(1.0 / (sc.n + 1.0 + C.PRIOR_EVENTS), 1.0 / long_w)
    a_srate = max(1.0 / (sc.n + 1.0 + C.S_PRIOR_EVENTS), 1.0 / long_w)
    use_short, use_flat = kp[P.KP_SHORT] > 1, kp[P.KP_FLATLINE] != 0
    use_level = F > 1 and use_short
    log_tests = math.log(1 + use_short + use_flat + (F > 1) + use_level)
    if use_level:
        if sc.cov.shape != (F, F):
            sc.cov, sc.chol, sc.pdiag = np.zeros((F, F)), np.zeros((F, F)), np.zeros(F)
            sc.fwd, sc.lres = np.zeros(F), np.zeros(F)
        cond_residuals(sc, z)
    levels = [level_residual(st, float(sc.lres[f]), kp)[2] for f, st in enumerate(sc.feats)] if use_level else []
    log_q = C.WINSOR_LOGP
    decay = 1.0 - 1.0 / long_w
    memory = max(long_w * C.EXC_MEMORY, 1.0)
    best, best_other, novel = 0.0, 0.0, False
    tol = kp[P.KP_NOVELTY]
    rs = [err[f] / max(st.scale, kp[P.KP_SCALE_FLOOR]) for f, st in enumerate(sc.feats)]
    active = [st.tail.logp(abs(rf)) < C.LOG_ACTIVE for rf, st in zip(rs, sc.feats)]
    # the conditional fit and the cross-feature test: residuals against the scale in the feature's own units
    qs = [0.0] * F
    if F > 1:
        for f, st in enumerate(sc.feats):
            if st.raw_scale < 0:   # pending after an upgrade: the normalised scale in these units
                st.raw_scale = st.scale * sd[f]
            qs[f] = err[f] / max(st.raw_scale / sd[f], kp[P.KP_SCALE_FLOOR])
    sum_r = 0.0
    for qf in qs:
        sum_r += min(max(qf, -C.CROSS_CLIP), C.CROSS_CLIP)
    cross = [cross_residual(st, qf, sum_r, F)[4] for qf, st in zip(qs, sc.feats)] if F > 1 else []
    for f, st in enumerate(sc.feats):
        v = float(x[f])
        record = tol > 0 and st.hi > st.lo and (v > st.hi + (st.hi - st.lo) * tol or v < st.lo - (st.hi - st.lo) * tol)
        records = st.records   # how often this feature set records after the warm-up, before this event
        st.records += a_long * (float(record and scoring) - st.records)
        st.lo, st.hi = min(st.lo, v), max(st.hi, v)
        r = err[f] / max(st.scale, kp[P.KP_SCALE_FLOOR])
        a = abs(r)
        lp, kind = st.tail.logp(a), (C.KIND_SPIKE if r > 0 else C.KIND_DROP)
        quiet = F > 1 and sum(active) - active[f] == 0
        if quiet:
            lp = st.quiet_tail.logp(abs(qs[f]))
        if F > 1:
            lp_others = min(v for g, v in enumerate(cross) if g != f)
            lp, kind = cross_test(st, qs[f], sum_r, lp_others, F, lp, kind, a_long, a_rate, memory, sc.n >= C.MIN_SCALE_EVENTS)
        if use_level:
            lp, kind = level_test(st, float(sc.lres[f]), lp, kind, min(v for g, v in enumerate(levels) if g != f),
                                  kp, memory)
        a_cap = st.tail.quantile(log_q)
        a_cap_quiet = st.quiet_tail.quantile(log_q)
        if use_short:
            c = st.short + 2.0 / (kp[P.KP_SHORT] + 1.0) * (min(max(r, -C.SHORT_CLIP), C.SHORT_CLIP) - st.short)
            if st.short_sq > C.MIN_MS:
                w = 0.5 * c * c / st.short_sq
                lps = st.short_tail.logp(w)
                if lps < lp:
                    lp, kind = lps, C.KIND_SHIFT
                if sc.n >= C.MIN_SCALE_EVENTS:
                    st.short_tail.fold(min(w, st.short_tail.quantile(log_q)) if w > C.S_U else w, a_srate, memory)
            st.short, st.short_sq = c, st.short_sq + a_long * (c * c - st.short_sq)
        # repeat chain: the run's probability uses the transition counts from before the event
        lp_flat = 0.0
        cr0, cc0 = st.cr, st.cc
        st.cr, st.cc, st.rr, st.rc = st.cr * decay, st.cc * decay, st.rr * decay, st.rc * decay
        if v == st.prev:
            if st.run == 0:
                st.cr += 1.0
            st.run += 1.0
            lp_flat = (math.log((cr0 + 0.5) / (cr0 + cc0 + 1.0))
                       + (st.run - 1) * math.log((st.rr + 0.5) / (st.rr + st.rc + 1.0)))
        else:
            if st.run == 0:
                st.cc += 1.0
            else:
                st.rr += st.run - 1.0
                st.rc += 1.0
            st.run = 0.0
        st.prev = v
        best_other = min(best_other, lp + log_tests)   # the stuck tests left out
        if use_flat and n - st.run >= kp[P.KP_WARMUP] and lp_flat < lp:
            lp, kind = lp_flat, C.KIND_FLATLINE
        # a record is novel where the feature rarely sets records (the F features share the rate's
        # budget), or where one of its tests is at least mildly surprising: a walk pushing its edge by
        # ordinary steps is not
        is_novel = record and (lp <= math.log(kp[P.KP_NOVELTY_GATE]) or records * F <= kp[P.KP_NOVELTY_RECORDS])
        lp += log_tests
        best = min(best, lp)
        novel = novel or is_novel
        if scoring and p_to_score(lp + math.log(F)) >= thr:
            kinds[f] = kind
        elif scoring and is_novel:
            kinds[f] = C.KIND_NOVELTY
        aw = min(a, a_cap)
        st.scale += a_long * (abs(err[f]) * min(1.0, aw / max(a, C.MIN_MS)) - st.scale)
        if F > 1:
            st.raw_scale += a_long * (abs(err[f]) * sd[f] * min(1.0, aw / max(a, C.MIN_MS)) - st.raw_scale)
        if sc.n >= C.MIN_SCALE_EVENTS:
            st.tail.fold(aw, a_rate, memory)
            if quiet:
                st.quiet_tail.fold(min(abs(qs[f]), a_cap_quiet), a_rate, memory)
    sc.n += 1.0
    if use_level:   # the covariance takes the event in after every feature's level test counted it
        a = max(1.0 / sc.feats[0].lv_n, 1.0 / long_w)
        for i in range(F):
            for j in range(i + 1):
                sc.cov[i, j] += a * (float(z[i]) * float(z[j]) - sc.cov[i, j])
                sc.cov[j, i] = sc.cov[i, j]
    if ((kinds != 0) & (kinds != C.KIND_NOVELTY)).any():   # beside a calibrated kind, novelty alone is not blamed
        kinds[kinds == C.KIND_NOVELTY] = 0
    logp = best + math.log(F) if scoring else 0.0
    calibrated = p_to_score(logp) if scoring else 0.0
    score = (1.0 if novel else calibrated) if scoring else 0.0
    if not scoring:
        kinds[:] = 0
    in_period = sc.alarmed and (n - sc.alarm_n <= kp[P.KP_SUPPRESS] or t - sc.alarm_t < kp[P.KP_MIN_GAP])
    # an anomaly is held while its period lasts or, past it, while its incident continues (fewer than
    # NEW_INCIDENT_EVENTS in a row below the threshold since the alarm). A held anomaly is published if
    # clearly stronger than the alarm: a calibrated score OVERRIDE_MARGIN higher or, after an alarm scoring
    # above 1 - OVERRIDE_MARGIN, a p-value 10x smaller; in the period after a calibrated alarm only in a new
    # incident; past it, not when a stuck run began the incident and the stuck test gives the event's p-value
    alarm_score = p_to_score(sc.alarm_logp)
    new_incident = sc.quiet_run >= C.NEW_INCIDENT_EVENTS
    quiet_novel = C.NEW_INCIDENT_EVENTS + kp[P.KP_SHORT]   # the incident ended, then short_window normal events
    suppressing = kp[P.KP_SUPPRESS] > 0.0 or kp[P.KP_MIN_GAP] > 0.0
    held = in_period or (suppressing and sc.alarmed and not new_incident)
    best_flat = best < best_other
    ev_logp = logp
    if sc.alarm_flat and not in_period and best_flat:
        ev_logp = best_other + math.log(F)   # the stuck tests left out
    ev_score = p_to_score(ev_logp) if scoring else 0.0
    higher = ev_score >= alarm_score + C.OVERRIDE_MARGIN
    smaller_p = alarm_score > 1.0 - C.OVERRIDE_MARGIN and ev_logp <= sc.alarm_logp - math.log(10.0)
    stronger = higher or smaller_p
    if in_period:
        stronger = (higher and (new_incident or alarm_score < thr)) or (smaller_p and new_incident)
        if novel and sc.quiet_run >= quiet_novel and alarm_score >= thr and logp <= math.log(kp[P.KP_NOVELTY_GATE]):
            stronger = True   # a calibrated alarm's incident ended long since: a novel value is news
    if score >= thr and not (held and not stronger):
        sc.alarm_flat = best_flat or (sc.alarm_flat and sc.alarmed and not new_incident)
        sc.alarmed, sc.quiet_run, sc.alarm_n, sc.alarm_t, sc.alarm_logp = True, 0.0, float(n), float(t), min(logp, 0.0)
        return score, FLAG_ANOMALY | C.FLAG_ANOMALOUS, kinds
    if sc.alarmed and sc.quiet_run < quiet_novel:
        if not new_incident:   # events in a row below the threshold, until the incident has ended
            sc.quiet_run = sc.quiet_run + 1.0 if score < thr else 0.0
        else:                  # then unsurprising ones in a row: the series is back to normal
            normal = not novel and logp > math.log(kp[P.KP_NOVELTY_GATE])
            sc.quiet_run = sc.quiet_run + 1.0 if normal else C.NEW_INCIDENT_EVENTS
    return score, ((FLAG_SUPPRESSED if in_period or (held and score >= thr) else 0)
                   | (C.FLAG_ANOMALOUS if score >= thr else 0)), kinds


def finish_event(ent: EntityRef, t: float, u: np.ndarray, flag: int) -> None:
    """Append ``u`` and ``flag`` at ring position ``count % W``, then count the event and keep ``t``."""
    p = ent.count % ent.window
    ent.ring_in[p] = u
    ent.ring_flag[p] = flag
    ent.count += 1
    ent.last_ts = t
