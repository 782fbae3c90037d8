"""The LSTM's numba step kernel agrees with the independent numpy reference, event by event."""

from __future__ import annotations

import copy

import numpy as np
import pytest

from rnnstream.kernels.params import kernel_params, n_time_features
from rnnstream.models.base import BatchOutput
from rnnstream.models.lstm import LSTMModel
from rnnstream.models.lstm.reference import lstm_cell_reference, step_batch_reference


def random_weights(model, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Non-trivial weights (the initial head is persistence, which would hide head bugs)."""
    return {k: (rng.normal(scale=0.4, size=v.shape)).astype(np.float32) for k, v in model.weights.items()}


def layered(state: dict[str, np.ndarray], layers: int) -> dict[str, np.ndarray]:
    """The reference's view: h and c as (slots, layers, H) (the same memory)."""
    out = dict(state)
    for k in ("h", "c"):
        out[k] = state[k].reshape(state[k].shape[0], layers, -1)
    return out


@pytest.mark.parametrize("hidden,n_features,time_features,layers", [
    (8, 1, (True, True, True), 1), (32, 1, (True, True, True), 1), (5, 3, (False, False, True), 1),
    (13, 2, (False, False, False), 1), (8, 2, (True, True, True), 2), (32, 1, (True, True, True), 3),
    (5, 3, (False, False, True), 3)])
def test_kernel_matches_reference_over_consecutive_batches(params, make_state, hidden, n_features, time_features, layers):
    rng = np.random.default_rng(hidden * 7 + n_features + 100 * layers)
    n_inputs = n_features + n_time_features(*time_features)
    model = LSTMModel(n_features, n_inputs, params(hidden, layers=layers))
    model.weights = random_weights(model, rng)
    kp = kernel_params(*time_features, warmup_events=5, short_window=3, long_window=20, threshold=0.3,
                       suppress_events=4)
    n_slots = 7
    state = make_state(n_slots, n_features, n_inputs, model)
    ref_state = copy.deepcopy(state)
    clock = np.full(n_slots, 1.7e9)
    for batch in range(5):
        n = 40
        slots = rng.integers(0, n_slots, n)
        gaps = rng.exponential(60.0, n)
        ts = np.empty(n)
        for i, s in enumerate(slots):
            clock[s] += gaps[i]
            ts[i] = clock[s]
        x = rng.normal(size=(n, n_features)) * 3.0 + 10.0
        x[rng.random(n) < 0.05] += 40.0
        out = BatchOutput.allocate(n, n_features)
        model.step(state, slots, x, ts, kp, out)
        ref = step_batch_reference(model.weights, layered(ref_state, layers), layers, slots, x, ts, kp)
        for name in ("pred", "z", "err", "score"):
            np.testing.assert_allclose(getattr(out, name), ref[name], rtol=1e-5, atol=2e-6,
                                       err_msg=f"batch {batch} output {name}")
        np.testing.assert_array_equal(out.flag, ref["flag"], err_msg=f"batch {batch} flags")
        for name in state:
            np.testing.assert_allclose(state[name], ref_state[name], rtol=1e-5, atol=2e-6,
                                       err_msg=f"batch {batch} state {name}")
    for k in ("h", "c"):
        top = state[k].reshape(n_slots, layers, hidden)[:, -1]
        assert np.abs(top).max() > 0.05, k   # the top layer's state really moved
    assert state["count"].sum() == 5 * 40


def test_cell_reference_matches_the_equations_in_float64():
    """Guard the reference itself with the LSTM equations written out unit by unit."""
    rng = np.random.default_rng(3)
    H, D = 4, 3
    w = {"w_x": rng.normal(size=(4 * H, D)), "w_h": rng.normal(size=(4 * H, H)), "b": rng.normal(size=4 * H)}
    h, c, u = rng.normal(size=H), rng.normal(size=H), rng.normal(size=D)
    sig = lambda a: 1 / (1 + np.exp(-a))  # noqa: E731
    h_exp, c_exp = np.empty(H), np.empty(H)
    for j in range(H):
        pre = [w["w_x"][q * H + j] @ u + w["w_h"][q * H + j] @ h + w["b"][q * H + j] for q in range(4)]
        i, f, g, o = sig(pre[0]), sig(pre[1]), np.tanh(pre[2]), sig(pre[3])
        c_exp[j] = f * c[j] + i * g
        h_exp[j] = o * np.tanh(c_exp[j])
    h_new, c_new = lstm_cell_reference(w, h, c, u)
    np.testing.assert_allclose(h_new, h_exp, rtol=1e-12)
    np.testing.assert_allclose(c_new, c_exp, rtol=1e-12)


@pytest.mark.parametrize("layers", [1, 2])
def test_untrained_model_is_persistence(params, make_state, layers):
    model = LSTMModel(2, 7, params(16, layers=layers))
    state = make_state(3, 2, 7, model)
    rng = np.random.default_rng(0)
    slots = np.array([0, 1, 0, 2, 0, 1])
    out = BatchOutput.allocate(6, 2)
    model.step(state, slots, rng.normal(size=(6, 2)), 1.7e9 + np.arange(6.0), kernel_params(), out)
    for s in range(3):
        newest = (state["count"][s] - 1) % state["ring_in"].shape[1]
        np.testing.assert_array_equal(state["pred"][s], state["ring_in"][s, newest, :2])
    assert np.abs(state["c"]).max() > 0.01   # the cells ran although the head ignores them for now


@pytest.mark.parametrize("layers", [1, 3])
def test_finite_and_bounded_on_extreme_inputs(params, make_state, layers):
    model = LSTMModel(1, 6, params(32, layers=layers))
    model.weights = {k: v * 30 for k, v in model.weights.items()}  # saturate every gate
    state = make_state(2, 1, 6, model)
    x = np.array([[0.0], [1e30], [-1e30], [5.0], [0.0], [1e-30]] * 20)
    slots = np.array([0, 0, 0, 1, 0, 1] * 20)
    out = BatchOutput.allocate(len(x), 1)
    model.step(state, slots, x, 1.7e9 + np.arange(float(len(x))), kernel_params(), out)
    assert np.all(np.isfinite(state["h"])) and np.all(np.abs(state["h"]) <= 1.0)
    # |c| grows by at most 1 an event (|f| <= 1, |i g| <= 1): bounded by the entity's event count
    assert np.all(np.isfinite(state["c"])) and np.abs(state["c"]).max() <= len(x)
    assert np.all(np.isfinite(out.score)) and np.all(np.isfinite(state["pred"]))


def test_batching_does_not_change_results(params, make_state):
    """The same events in one batch or split into many give the same bytes."""
    model = LSTMModel(1, 6, params(8, layers=2))
    model.weights = random_weights(model, np.random.default_rng(1))
    rng = np.random.default_rng(2)
    n = 90
    slots = rng.integers(0, 4, n)
    ts = 1.7e9 + np.cumsum(rng.exponential(30.0, n))
    x = rng.normal(size=(n, 1))
    whole = make_state(4, 1, 6, model)
    out = BatchOutput.allocate(n, 1)
    model.step(whole, slots, x, ts, kernel_params(), out)
    parts = make_state(4, 1, 6, model)
    scores = []
    for lo, hi in [(0, 1), (1, 30), (30, 31), (31, 90)]:
        o = BatchOutput.allocate(hi - lo, 1)
        model.step(parts, slots[lo:hi], x[lo:hi], ts[lo:hi], kernel_params(), o)
        scores.append(o.score.copy())
    assert np.concatenate(scores).tobytes() == out.score.tobytes()
    assert all(whole[k].tobytes() == parts[k].tobytes() for k in whole)
