"""The numba step kernel agrees with the independent numpy reference, event by event."""

from __future__ import annotations

import copy

import numpy as np
import pytest

from rnnstream.kernels.params import kernel_params, n_time_features
from rnnstream.models.base import BatchOutput
from rnnstream.models.gru import GRUModel
from rnnstream.models.gru.reference import gru_cell_reference, step_batch_reference

from gru_state import make_state


def random_weights(model: GRUModel, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Non-trivial weights (the initial head is persistence, which would hide head bugs)."""
    return {k: (rng.normal(scale=0.4, size=v.shape)).astype(np.float32) for k, v in model.weights.items()}


@pytest.mark.parametrize("scale_head", [False, True])
@pytest.mark.parametrize("hidden,n_features,time_features", [(8, 1, (True, True, True)), (32, 1, (True, True, True)),
                                                             (5, 3, (False, False, True)), (13, 2, (False, False, False))])
def test_kernel_matches_reference_over_consecutive_batches(params, hidden, n_features, time_features, scale_head):
    rng = np.random.default_rng(hidden * 7 + n_features)
    n_inputs = n_features + n_time_features(*time_features)
    model = GRUModel(n_features, n_inputs, params(hidden, scale_head=scale_head))
    model.weights = random_weights(model, rng)
    kp = kernel_params(*time_features, warmup_events=5, short_window=3, long_window=20, threshold=0.3,
                       suppress_events=4)
    n_slots = 7
    state = make_state(n_slots, n_features, n_inputs, hidden, scale_head=scale_head)
    ref_state = copy.deepcopy(state)
    clock = np.full(n_slots, 1.7e9)
    for batch in range(5):
        n = 40
        slots = rng.integers(0, n_slots, n)  # interleaved entities, repeats within the batch
        gaps = rng.exponential(60.0, n)
        ts = np.empty(n)
        for i, s in enumerate(slots):
            clock[s] += gaps[i]
            ts[i] = clock[s]
        x = rng.normal(size=(n, n_features)) * 3.0 + 10.0
        x[rng.random(n) < 0.05] += 40.0  # spikes, so some events score and flag
        out = BatchOutput.allocate(n, n_features)
        model.step(state, slots, x, ts, kp, out)
        ref = step_batch_reference(model.weights, ref_state, slots, x, ts, kp)
        for name in ("pred", "z", "err", "score"):
            np.testing.assert_allclose(getattr(out, name), ref[name], rtol=1e-5, atol=2e-6,
                                       err_msg=f"batch {batch} output {name}")
        np.testing.assert_array_equal(out.flag, ref["flag"], err_msg=f"batch {batch} flags")
        for name in state:
            np.testing.assert_allclose(state[name], ref_state[name], rtol=1e-5, atol=2e-6,
                                       err_msg=f"batch {batch} state {name}")
    assert np.abs(state["h"]).max() > 0.05  # the hidden state really moved
    assert state["count"].sum() == 5 * 40
    if scale_head:
        assert np.abs(state["log_scale"]).max() > 0.05  # the scale head really predicted


def _run(model, state, slots, x, ts, kp):
    out = BatchOutput.allocate(len(slots), x.shape[1])
    model.step(state, slots, x, ts, kp, out)
    return out


def test_an_untrained_scale_head_scores_exactly_as_without_it(params):
    """The scale head starts at log-scale 0: every output and the shared state are bit for bit those of
    the model without it (so turning it on changes nothing until the first training)."""
    rng = np.random.default_rng(4)
    n, F, D = 300, 2, 7
    slots = rng.integers(0, 3, n)
    ts = 1.7e9 + np.cumsum(rng.exponential(60.0, n))
    x = rng.normal(size=(n, F)) * 3.0
    x[rng.random(n) < 0.03] += 30.0
    kp = kernel_params(warmup_events=5, short_window=3, long_window=20, threshold=0.3)
    plain, scaled = GRUModel(F, D, params(16)), GRUModel(F, D, params(16, scale_head=True))
    for k in plain.weights:
        assert np.array_equal(plain.weights[k], scaled.weights[k])
    s_plain, s_scaled = make_state(3, F, D, 16), make_state(3, F, D, 16, scale_head=True)
    a, b = _run(plain, s_plain, slots, x, ts, kp), _run(scaled, s_scaled, slots, x, ts, kp)
    for name in ("pred", "z", "err", "score", "flag", "kind"):
        assert np.array_equal(getattr(a, name), getattr(b, name)), name
    assert np.any(a.score > 0.3)
    for name in s_plain:
        assert np.array_equal(s_plain[name], s_scaled[name]), name
    assert np.all(s_scaled["log_scale"] == 0.0)


def test_scale_head_sets_the_error_against_the_predicted_scale(params):
    """The same error scores higher where the head predicted a smaller scale than it usually does (and
    so lower where it expected a burst)."""
    rng = np.random.default_rng(8)
    n, F, D = 200, 1, 1
    x = rng.normal(size=(n, F))
    x[150] += 5.0
    ts = 1.7e9 + np.arange(n) * 60.0
    kp = kernel_params(False, False, False, warmup_events=5, short_window=1, long_window=50, flatline=False,
                       novelty_tolerance=0.0)
    scores = []
    for bias in (0.0, 3.0):   # the scorer applies half the log-scale (kernels.observe.HEAD_WEIGHT)
        model = GRUModel(F, D, params(4, scale_head=True))
        model.weights = dict(model.weights, b_s=np.full(F, np.float32(bias)))
        state = make_state(1, F, D, 4, scale_head=True)
        before = _run(model, state, np.zeros(150, dtype=np.int64), x[:150], ts[:150], kp)
        assert np.all(state["log_scale"] == np.float32(bias))
        state["log_scale"][:] = 0.0   # the head expects a quiet event this time...
        scores.append(_run(model, state, np.zeros(1, dtype=np.int64), x[150:151], ts[150:151], kp).score[0])
        assert np.all(np.isfinite(before.score))
    # ...against a running scale learnt under log-scale 3 x 0.5: the spike is 4.5 times larger in its units
    assert scores[1] > 0.9 > 0.3 > scores[0]


def test_cell_reference_matches_formula_in_float64():
    """Guard the reference itself with the GRU equations written out gate by gate."""
    rng = np.random.default_rng(3)
    H, D = 4, 3
    w = {"w_x": rng.normal(size=(3 * H, D)), "w_h": rng.normal(size=(3 * H, H)),
         "b_x": rng.normal(size=3 * H), "b_h": rng.normal(size=3 * H)}
    h, u = rng.normal(size=H), rng.normal(size=D)
    sig = lambda a: 1 / (1 + np.exp(-a))  # noqa: E731
    expected = np.empty(H)
    for j in range(H):
        r = sig(w["w_x"][j] @ u + w["b_x"][j] + w["w_h"][j] @ h + w["b_h"][j])
        z = sig(w["w_x"][H + j] @ u + w["b_x"][H + j] + w["w_h"][H + j] @ h + w["b_h"][H + j])
        n = np.tanh(w["w_x"][2 * H + j] @ u + w["b_x"][2 * H + j] + r * (w["w_h"][2 * H + j] @ h + w["b_h"][2 * H + j]))
        expected[j] = (1 - z) * n + z * h[j]
    np.testing.assert_allclose(gru_cell_reference(w, h, u), expected, rtol=1e-12)


def test_untrained_model_is_persistence(params):
    model = GRUModel(2, 7, params(16))
    state = make_state(3, 2, 7, 16)
    rng = np.random.default_rng(0)
    slots = np.array([0, 1, 0, 2, 0, 1])
    x = rng.normal(size=(6, 2))
    ts = 1.7e9 + np.arange(6.0)
    out = BatchOutput.allocate(6, 2)
    model.step(state, slots, x, ts, kernel_params(), out)
    for s in range(3):
        newest = (state["count"][s] - 1) % state["ring_in"].shape[1]
        np.testing.assert_array_equal(state["pred"][s], state["ring_in"][s, newest, :2])
    # entity 0's third event was predicted as its second normalised value: the error is their difference
    expected = np.sqrt(np.mean((out.z[4] - out.z[2].astype(np.float32).astype(np.float64)) ** 2))
    np.testing.assert_allclose(out.err[4], expected, rtol=1e-5)
    assert out.err[4] > 0.01
    assert np.all(np.isfinite(out.score))


@pytest.mark.parametrize("scale_head", [False, True])
def test_finite_on_extreme_inputs(params, scale_head):
    model = GRUModel(1, 6, params(32, scale_head=scale_head))
    rng = np.random.default_rng(1)
    model.weights = {k: v * 30 + (rng.normal(size=v.shape).astype(np.float32) * 30 if k in ("w_s", "b_s") else 0)
                     for k, v in model.weights.items()}  # saturate every gate, drive the scale head to its clamp
    state = make_state(2, 1, 6, 32, scale_head=scale_head)
    x = np.array([[0.0], [1e30], [-1e30], [5.0], [0.0], [1e-30], [1e308], [-1e308], [1e308], [0.0]])
    out = BatchOutput.allocate(len(x), 1)
    model.step(state, np.array([0, 0, 0, 1, 0, 1, 0, 0, 1, 0]), x, 1.7e9 + np.arange(float(len(x))), kernel_params(), out)
    assert np.all(np.isfinite(state["h"])) and np.all(np.abs(state["h"]) <= 1.0)
    assert np.all(np.isfinite(out.score)) and np.all(np.isfinite(state["pred"]))
    assert np.all(np.isfinite(state["sc"]))
    if scale_head:
        assert np.all(np.abs(state["log_scale"]) <= 12.0) and np.any(state["log_scale"] != 0.0)


def test_step_rejects_short_buffers(params):
    model = GRUModel(1, 6, params(8))
    state = make_state(2, 1, 6, 8)
    with pytest.raises(ValueError, match="capacity 2"):
        model.step(state, np.array([0, 1, 0]), np.zeros((3, 1)), np.arange(3.0), kernel_params(),
                   BatchOutput.allocate(2, 1))
