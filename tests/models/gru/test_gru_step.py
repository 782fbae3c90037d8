"""The numba step kernel agrees with the independent numpy reference, event by event."""

from __future__ import annotations

import copy

import numpy as np
import pytest

from rnnstream.kernels.params import kernel_params, n_time_features
from rnnstream.models.base import BatchOutput
from rnnstream.models.gru import GRUModel
from rnnstream.models.gru.reference import gru_cell_reference, step_batch_reference

from conftest import make_state


def random_weights(model: GRUModel, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Non-trivial weights (the initial head is persistence, which would hide head bugs)."""
    return {k: (rng.normal(scale=0.4, size=v.shape)).astype(np.float32) for k, v in model.weights.items()}


@pytest.mark.parametrize("hidden,n_features,time_features", [(8, 1, (True, True, True)), (32, 1, (True, True, True)),
                                                             (5, 3, (False, False, True)), (13, 2, (False, False, False))])
def test_kernel_matches_reference_over_consecutive_batches(params, hidden, n_features, time_features):
    rng = np.random.default_rng(hidden * 7 + n_features)
    n_inputs = n_features + n_time_features(*time_features)
    model = GRUModel(n_features, n_inputs, params(hidden))
    model.weights = random_weights(model, rng)
    kp = kernel_params(*time_features, warmup_events=5, short_window=3, long_window=20, threshold=0.3,
                       suppress_events=4)
    n_slots = 7
    state = make_state(n_slots, n_features, n_inputs, hidden)
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


def test_finite_on_extreme_inputs(params):
    model = GRUModel(1, 6, params(32))
    model.weights = {k: v * 30 for k, v in model.weights.items()}  # saturate every gate
    state = make_state(2, 1, 6, 32)
    x = np.array([[0.0], [1e30], [-1e30], [5.0], [0.0], [1e-30]])
    out = BatchOutput.allocate(6, 1)
    model.step(state, np.array([0, 0, 0, 1, 0, 1]), x, 1.7e9 + np.arange(6.0), kernel_params(), out)
    assert np.all(np.isfinite(state["h"])) and np.all(np.abs(state["h"]) <= 1.0)
    assert np.all(np.isfinite(out.score)) and np.all(np.isfinite(state["pred"]))


def test_step_rejects_short_buffers(params):
    model = GRUModel(1, 6, params(8))
    state = make_state(2, 1, 6, 8)
    with pytest.raises(ValueError, match="capacity 2"):
        model.step(state, np.array([0, 1, 0]), np.zeros((3, 1)), np.arange(3.0), kernel_params(),
                   BatchOutput.allocate(2, 1))
