"""The shared per-event pieces (normalise, score, ring) against the plain reference in kernels.reference.

The naive model's kernel is ``observe`` + ``pred = u[:F]`` + ``finish_event``, so running it beside a
loop over the reference functions checks the shared pieces end to end, state included.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from rnnstream.kernels import reference as ref
from rnnstream.kernels.calibrate import FLAG_ANOMALY, FLAG_LATE, FLAG_SUPPRESSED
from rnnstream.kernels.observe import blend_weight, observe
from rnnstream.kernels.params import KP_LATE, kernel_params, n_time_features
from rnnstream.kernels.ring import finish_event, flags_by_position, unroll_windows
from rnnstream.models.base import BatchOutput, common_fields
from rnnstream.models.naive import NaiveModel
from rnnstream.state.slots import dense_arrays

F, W = 2, 8
RTOL = 1e-5


def _stream(seed: int, n_entities: int = 5, n_events: int = 1500):
    """Interleaved events: e0 constant, e1 steps up at its 120th event, e2 has long gaps, others noise."""
    rng = np.random.default_rng(seed)
    ents = rng.integers(0, n_entities, n_events)
    clock = 1.7e9 + rng.uniform(0, 7 * 86400, n_entities)
    seen = np.zeros(n_entities, dtype=int)
    x = np.empty((n_events, F))
    ts = np.empty(n_events)
    for i, e in enumerate(ents):
        gap = rng.exponential(60.0)
        if e == 2 and rng.random() < 0.1:
            gap += 3 * 86400.0  # a three-day silence
        clock[e] += gap
        ts[i] = clock[e]
        if e == 3 and rng.random() < 0.05:
            ts[i] -= 600.0  # out of order by ten minutes: late beyond the test's 120 s tolerance
        if e == 0:
            x[i] = [3.0, -1.0]
        elif e == 1:
            x[i] = [10.0, 10.0] if seen[e] >= 120 else [1.0, 1.0] + 0.01 * rng.standard_normal(F)
        else:
            x[i] = [e * 10.0, -e] + rng.standard_normal(F) * [1.0, 0.1]
            if rng.random() < 0.01:
                x[i, 0] += 25.0
        seen[e] += 1
    return [f"e{e}" for e in ents], x, ts


def _reference_run(entities, x, ts, kp, refs: dict, n_inputs: int, profile_bins: int = 0, log_scale=None):
    out = {"pred": [], "z": [], "err": [], "score": [], "flag": [], "kind": []}
    for name, xi, t in zip(entities, x, ts):
        ent = refs.setdefault(name, ref.EntityRef(F, n_inputs, W, profile_bins))
        n = ent.count
        if ref.is_late(ent, t, kp):  # refused: no state touched, zero outputs
            for key, value in (("pred", np.zeros(F)), ("z", np.zeros(F)), ("err", 0.0), ("score", 0.0),
                               ("flag", FLAG_LATE), ("kind", np.zeros(F, dtype=np.uint8))):
                out[key].append(value)
            continue
        u64, mean, sd = ref.prepare_input(ent, xi, t, kp)
        u = u64.astype(np.float32)  # the naive model's input scratch is float32
        if n > 0:
            model_err = (u[:F] - ent.pred).astype(np.float64)
            err, pred = ref.blended_errors(ent, u, mean, sd, kp)
            pred = mean + sd * pred
        else:
            model_err, err, pred = np.zeros(F), np.zeros(F), xi.copy()
        err = ref.capped_errors(ent, err, u, kp)
        if n > 0 and log_scale is not None:
            err = ref.model_scaled_errors(err, log_scale[name])
        score, flag, kind = ref.score_event(ent.sc, err, xi, n, t, kp, sd, u)
        ent.pred = u[:F].copy()
        ref.finish_event(ent, t, u, flag & FLAG_ANOMALY)
        out["pred"].append(pred)
        out["z"].append(u[:F].astype(np.float64))
        out["err"].append(math.sqrt(float(np.mean(model_err * model_err))))
        out["score"].append(score)
        out["flag"].append(flag)
        out["kind"].append(kind)
    return {k: np.array(v) for k, v in out.items()}


@pytest.mark.parametrize("time_features", [(True, True, True, 0), (False, False, True, 0), (False, False, False, 0),
                                           (True, False, True, 288), (False, False, False, 7)])
@pytest.mark.parametrize("profile_cap", [0.0, 1.5])
@pytest.mark.parametrize("blend", [0, 20])
def test_naive_kernel_matches_reference(time_features, profile_cap, blend):
    *calendar, bins = time_features
    kp = kernel_params(*calendar, bins, warmup_events=10, short_window=4, long_window=100,
                       suppress_events=5, threshold=0.4, novelty_tolerance=0.2, normaliser_halflife=50.0,
                       profile_cap=profile_cap, persistence_blend=blend)
    kp[KP_LATE] = 120.0
    n_inputs = F + n_time_features(*calendar, bins, F)
    model = NaiveModel(F, n_inputs, None, seed=0)
    fields = common_fields(F, n_inputs, W, bins)
    n_slots = 8
    state = dense_arrays(fields, n_slots)
    slot_of: dict[str, int] = {}
    refs: dict[str, ref.EntityRef] = {}
    entities, x, ts = _stream(seed=sum(calendar) + bins)
    flags_seen = 0
    for lo, hi in [(0, 1), (1, 300), (300, 301), (301, 900), (900, 1500)]:
        ents = entities[lo:hi]
        slots = np.array([slot_of.setdefault(e, len(slot_of)) for e in ents], dtype=np.int64)
        out = BatchOutput.allocate(hi - lo, F)
        model.step(state, slots, x[lo:hi], ts[lo:hi], kp, out)
        want = _reference_run(ents, x[lo:hi], ts[lo:hi], kp, refs, n_inputs, bins)
        for key in ("pred", "z", "err", "score"):
            np.testing.assert_allclose(getattr(out, key), want[key], rtol=RTOL, atol=1e-9, err_msg=key)
        np.testing.assert_array_equal(out.flag, want["flag"])
        np.testing.assert_array_equal(out.kind, want["kind"])
        flags_seen |= np.bitwise_or.reduce(out.flag)
        for name, ent in refs.items():
            s = slot_of[name]
            assert state["count"][s] == ent.count
            assert state["last_ts"][s] == ent.last_ts
            np.testing.assert_allclose(state["nmean"][s], ent.nmean, rtol=RTOL)
            np.testing.assert_allclose(state["nvar"][s], ent.nvar, rtol=RTOL, atol=1e-12)
            np.testing.assert_allclose(state["pred"][s], ent.pred, rtol=RTOL)
            np.testing.assert_allclose(state["sc"][s], ent.sc.as_row(F), rtol=RTOL, atol=1e-12)
            n_hist = min(ent.count, W)
            order = [(ent.count - n_hist + i) % W for i in range(n_hist)]
            history = np.zeros((1, n_hist, n_inputs), dtype=np.float32)
            unroll_windows(np.array([s]), state["count"][[s]], F, kp, state["ring_in"], state["ring_t"], history)
            np.testing.assert_allclose(history[0], ent.ring_in[order], rtol=RTOL, atol=1e-7)
            np.testing.assert_array_equal(flags_by_position(state["ring_flag"][s], W)[order], ent.ring_flag[order])
    # The comparison means something only if the stream raised and suppressed anomalies.
    assert flags_seen & FLAG_ANOMALY and flags_seen & FLAG_SUPPRESSED and flags_seen & FLAG_LATE
    if bins:  # ... and if the profile filled several bins and fed inputs that differ from the value
        assert max(np.count_nonzero(e.sc.prof_n) for e in refs.values()) >= 2
        ring = state["ring_in"][: len(refs)]   # stored inputs: the features, then the two profile inputs
        assert np.any(ring[:, :, F:2 * F] != ring[:, :, :F])


def _observe_run(x, ts, kp, model):
    """``observe`` event by event for one entity, the prediction after each event set by ``model(i, state)``;
    returns the predictions ``observe`` scored against (the blend's, in the features' units)."""
    n_inputs = 1
    state = {k: np.zeros((1, *s.shape), dtype=s.dtype) for k, s in common_fields(1, n_inputs, W).items()}
    out = BatchOutput.allocate(len(ts), 1)
    u, err, msd = np.zeros(n_inputs, dtype=np.float32), np.zeros(1), np.zeros((2, 1))
    for i in range(len(ts)):
        observe(i, x[i], ts[i], 0, state["count"], state["last_ts"], state["nmean"], state["nvar"], state["pred"],
                state["pred"][:0], state["sc"], kp, u, err, msd, out.pred, out.z, out.err, out.score, out.flag, out.kind)
        state["count"][0] += 1
        state["last_ts"][0] = ts[i]
        state["pred"][0] = model(i, state)
    return out.pred[:, 0]


@pytest.mark.parametrize("blend", [0, 50])
def test_blend_scores_a_poor_model_as_persistence_and_a_good_one_as_itself(blend):
    """On a random walk, a model that predicts the running mean is far worse than persistence: with the
    blend the scored prediction moves towards the previous value; an oracle keeps its own prediction."""
    kp = kernel_params(False, False, False, persistence_blend=blend, normaliser_halflife=50.0)
    rng = np.random.default_rng(5)
    n = 600
    x = np.cumsum(rng.standard_normal(n))[:, None] + 100.0
    ts = np.arange(n, dtype=float) * 60.0

    def sd(state):
        return np.maximum(np.sqrt(state["nvar"][0]), 1e-6)

    mean_pred = _observe_run(x, ts, kp, lambda i, st: np.zeros(1))
    oracle = _observe_run(x, ts, kp, lambda i, st: np.clip((x[min(i + 1, n - 1)] - st["nmean"][0]) / sd(st), -10, 10))
    late = slice(200, n)
    off_persist = np.median(np.abs(mean_pred[late] - x[199:n - 1, 0]))
    off_truth = np.median(np.abs(oracle[late] - x[late, 0]))
    step = np.median(np.abs(np.diff(x[:, 0])))
    assert off_truth < 0.01 * step          # the oracle is scored as itself, with the blend or without
    if blend:
        assert off_persist < 1.5 * step     # the poor model mostly as persistence (its weight p^2 / (m^2 + p^2))
    else:
        assert off_persist > 4.0 * step     # without the blend, the poor model's own prediction


def test_blend_weights_two_forecasts_by_their_inverse_squared_errors():
    """Two unbiased forecasts with independent Gaussian errors of deviations 1 and 2: weighted by the
    inverse squares of their mean absolute errors, the blend's mean squared error is the least any
    fixed weights give, 1 / (1 + 1/4) = 0.8; the inverse errors themselves (weights 2/3 and 1/3) give
    0.89."""
    rng = np.random.default_rng(2)
    truth = rng.standard_normal(200_000)
    good, poor = truth + rng.standard_normal(truth.size), truth + 2.0 * rng.standard_normal(truth.size)
    w = blend_weight(np.mean(np.abs(good - truth)), np.mean(np.abs(poor - truth)))
    mse = np.mean((w * good + (1.0 - w) * poor - truth) ** 2)
    assert mse == pytest.approx(0.8, rel=0.02)
    assert blend_weight(1.0, 1.0) == 0.5 and blend_weight(0.0, 0.0) == 0.5 and blend_weight(0.0, 1.0) == 1.0


def test_daily_profile_anticipates_a_daily_jump():
    """After a few days of a square wave, the next-bin input carries the jump before it happens."""
    bins = 48
    kp = kernel_params(False, False, False, bins, warmup_events=5, short_window=2, long_window=50)
    n_inputs = 1 + n_time_features(False, False, False, bins, 1)
    assert n_inputs == 3
    model = NaiveModel(1, n_inputs, None, seed=0)
    state = dense_arrays(common_fields(1, n_inputs, 64, bins), 1)
    step = 600.0
    ts = np.arange(0.0, 5 * 86400.0, step)
    x = np.where((ts % 86400.0 >= 9 * 3600.0) & (ts % 86400.0 < 17 * 3600.0), 10.0, 0.0)[:, None]
    out = BatchOutput.allocate(len(ts), 1)
    inputs = []
    for i in range(len(ts)):
        model.step(state, np.zeros(1, dtype=np.int64), x[i:i + 1], ts[i:i + 1], kp, out)
        inputs.append(state["ring_in"][0, i % 64].copy())   # [value, profile now, profile next]: no calendar
    u = np.array(inputs)
    day4 = int(4 * 86400 / step)
    before_up = day4 + int(9 * 3600 / step) - 1   # 08:50: value low, next event at 09:00 is high
    assert u[before_up, 0] < 0 < u[before_up, 2]
    assert u[before_up, 1] == pytest.approx(u[before_up, 0], abs=1e-3)   # the 08:30 bin is low, like the value
    before_down = day4 + int(17 * 3600 / step) - 1
    assert u[before_down, 0] > 0 > u[before_down, 2]
    # On the first day every bin is new: the profile inputs repeat the value.
    np.testing.assert_allclose(u[1:100, 1], u[1:100, 0], atol=1e-6)


def test_step_change_scores_high_and_constant_stays_quiet():
    kp = kernel_params(False, False, False, warmup_events=50, threshold=0.5, novelty_tolerance=0.0)
    model = NaiveModel(1, 1, None, seed=0)
    state = dense_arrays(common_fields(1, 1, W), 2)
    n = 600
    slots = np.tile([0, 1], n).astype(np.int64)
    ts = np.repeat(np.arange(n, dtype=float), 2)
    rng = np.random.default_rng(3)
    x = np.empty((2 * n, 1))
    x[0::2, 0] = 5.0
    x[1::2, 0] = 1.0 + 0.1 * rng.standard_normal(n)
    x[1::2, 0][400:] += 5.0
    out = BatchOutput.allocate(2 * n, 1)
    model.step(state, slots, x, ts, kp, out)
    # A constant series has no error, and it was constant from its start: never a surprise.
    assert np.all(np.isfinite(out.score)) and np.all(out.score[0::2] == 0.0)
    step_scores = out.score[1::2]
    assert step_scores[400] > 0.5 and np.all(step_scores[20:400] < 0.5)
    assert out.flag[1::2][400] & FLAG_ANOMALY
    assert not np.any(out.flag[0::2])


def _scaled_naive(slots, x, ts, kp, count, last_ts, nmean, nvar, pred, log_scale, sc, pool_row, ring_in, ring_t,
                  ring_flag, u, err, msd, out_pred, out_z, out_err, out_score, out_flag, out_kind):
    """The naive kernel with a model's log-scale per entity (fixed here; a scale head predicts it)."""
    for i in range(slots.shape[0]):
        s = slots[i]
        flags = observe(i, x[i], ts[i], s, count, last_ts, nmean, nvar, pred, log_scale, sc, kp, u, err, msd,
                        out_pred, out_z, out_err, out_score, out_flag, out_kind)
        if flags & FLAG_LATE:
            continue
        for f in range(x.shape[1]):
            pred[s, f] = u[f]
        finish_event(s, ts[i], u, x.shape[1], flags & 1, count, last_ts, pool_row, ring_in, ring_t, ring_flag)


def test_a_model_scale_head_divides_the_scored_errors_as_the_reference_does():
    """``observe`` with a model's log-scales (kernels.observe.scale_by_model) against the reference
    (kernels.reference.model_scaled_errors), and different scores from the same stream without them."""
    from numba import njit

    kernel = njit(_scaled_naive)
    kp = kernel_params(True, True, True, warmup_events=10, short_window=4, long_window=100, suppress_events=5,
                       threshold=0.4, novelty_tolerance=0.2, normaliser_halflife=50.0, persistence_blend=20)
    kp[KP_LATE] = 120.0
    n_inputs = F + n_time_features(True, True, True)
    entities, x, ts = _stream(seed=12)
    names = sorted(set(entities))
    slot_of = {e: k for k, e in enumerate(names)}
    log_scale = np.random.default_rng(2).normal(scale=0.7, size=(len(names), F)).astype(np.float32)
    state = dense_arrays(common_fields(F, n_inputs, W), len(names))
    slots = np.array([slot_of[e] for e in entities], dtype=np.int64)
    out = BatchOutput.allocate(len(slots), F)
    scratch = (np.zeros(n_inputs, dtype=np.float32), np.zeros(F), np.zeros((2, F)))
    kernel(slots, x, ts, kp, state["count"], state["last_ts"], state["nmean"], state["nvar"], state["pred"], log_scale,
           state["sc"], state["pool_row"], state["ring_in"], state["ring_t"], state["ring_flag"], *scratch,
           out.pred, out.z, out.err, out.score, out.flag, out.kind)
    want = _reference_run(entities, x, ts, kp, {}, n_inputs, log_scale={e: log_scale[slot_of[e]] for e in names})
    for key in ("pred", "z", "err", "score"):
        np.testing.assert_allclose(getattr(out, key), want[key], rtol=RTOL, atol=1e-9, err_msg=key)
    np.testing.assert_array_equal(out.flag, want["flag"])
    plain = _reference_run(entities, x, ts, kp, {}, n_inputs)
    assert not np.allclose(plain["score"], want["score"])
