"""Stacked GRU (``layers`` 2, 3): kernel == numpy reference; BPTT == reference == finite differences;
layer 0 of a stack is the single-layer GRU bit for bit."""

from __future__ import annotations

import copy
from types import SimpleNamespace

import numpy as np
import pytest

from rnnstream.models.gru.bptt import LOSSES

from rnnstream.kernels.params import kernel_params, n_time_features
from rnnstream.models.base import BatchOutput
from rnnstream.models.gru import GRUModel
from rnnstream.models.gru.bptt import loss_and_grad as single_loss_and_grad
from rnnstream.models.gru.bptt_stacked import loss_and_grad, stack_names
from rnnstream.models.gru.bptt_stacked_reference import loss_and_grad_reference
from rnnstream.models.gru.stacked import init_stacked_weights
from rnnstream.models.gru.stacked_reference import gru_stack_step_reference
from rnnstream.state.slots import FieldSpec

from models.gradcheck import assert_matches_central_differences

from gru_state import make_state


def model(hidden, layers, n_features=1, n_inputs=6, seed=0):
    return GRUModel(n_features, n_inputs, SimpleNamespace(hidden=hidden, layers=layers, seed=seed))


def stacked_state(n_slots, n_features, n_inputs, hidden, layers):
    state = make_state(n_slots, n_features, n_inputs, hidden)
    state["h"] = np.zeros((n_slots, layers, hidden), dtype=np.float32)
    return state


def test_state_field_weights_and_init():
    m = model(8, 3, 2, 7, seed=4)
    assert m.state_fields() == {"h": FieldSpec((3, 8), "float32")}
    assert model(8, 1).state_fields() == {"h": FieldSpec((8,), "float32")}
    assert set(m.weights) == set(stack_names(3))
    assert m.weights["w_x1"].shape == (24, 8) and m.weights["b_h2"].shape == (24,)
    single = model(8, 1, 2, 7, seed=4)
    for k in single.weights:     # layer 0 and the head as for one layer
        assert single.weights[k].tobytes() == m.weights[k].tobytes(), k
    assert not np.array_equal(m.weights["w_h1"], m.weights["w_h2"])
    assert m.flops_per_step() > single.flops_per_step() + 2 * 2 * 3 * 8 * 16


@pytest.mark.parametrize("hidden,n_features,time_features,layers", [
    (8, 1, (True, True, True), 2), (32, 1, (True, True, True), 3), (5, 3, (False, False, True), 2)])
def test_kernel_matches_reference_over_consecutive_batches(hidden, n_features, time_features, layers):
    rng = np.random.default_rng(hidden + layers)
    n_inputs = n_features + n_time_features(*time_features)
    m = model(hidden, layers, n_features, n_inputs)
    m.weights = {k: rng.normal(scale=0.4, size=v.shape).astype(np.float32) for k, v in m.weights.items()}
    kp = kernel_params(*time_features, warmup_events=5, short_window=3, long_window=20, threshold=0.3,
                       suppress_events=4)
    n_slots = 5
    state = stacked_state(n_slots, n_features, n_inputs, hidden, layers)
    ref_state = copy.deepcopy(state)
    for batch in range(4):
        n = 40
        slots = rng.integers(0, n_slots, n)
        ts = 1.7e9 + batch * 1e4 + np.cumsum(rng.exponential(20.0, n))
        x = rng.normal(size=(n, n_features)) * 3.0 + 10.0
        out = BatchOutput.allocate(n, n_features)
        m.step(state, slots, x, ts, kp, out)
        ref = gru_stack_step_reference(m.weights, ref_state, layers, slots, x, ts, kp)
        for name in ("pred", "z", "err", "score"):   # pred is in the features' units (about 10): 1e-5 absolute
            np.testing.assert_allclose(getattr(out, name), ref[name], rtol=1e-5, atol=1e-5, err_msg=name)
        for name in state:
            np.testing.assert_allclose(state[name], ref_state[name], rtol=1e-5, atol=2e-6, err_msg=name)
    assert np.abs(state["h"][:, -1]).max() > 0.05


def test_layer_zero_of_a_stack_is_the_single_layer_gru_bit_for_bit():
    rng = np.random.default_rng(9)
    stack, single = model(16, 2), model(16, 1)
    stack.weights = {k: rng.normal(scale=0.4, size=v.shape).astype(np.float32) for k, v in stack.weights.items()}
    single.weights = {k: stack.weights[k] for k in single.weights}
    n = 200
    slots = rng.integers(0, 3, n)
    ts = 1.7e9 + np.cumsum(rng.exponential(20.0, n))
    x = rng.normal(size=(n, 1))
    s2, s1 = stacked_state(3, 1, 6, 16, 2), make_state(3, 1, 6, 16)
    stack.step(s2, slots, x, ts, kernel_params(), BatchOutput.allocate(n, 1))
    single.step(s1, slots, x, ts, kernel_params(), BatchOutput.allocate(n, 1))
    assert s2["h"][:, 0].tobytes() == s1["h"].tobytes()
    assert not np.array_equal(s2["pred"], s1["pred"])     # the head reads the top layer


def random_net(rng, H, D, F, layers):
    return {k: rng.normal(scale=0.5, size=v.shape) for k, v in init_stacked_weights(H, layers, D, F, 0).items()}


@pytest.mark.parametrize("H,D,F,layers", [(3, 2, 1, 2), (4, 3, 2, 3), (2, 2, 2, 2)])
def test_gradients_match_central_differences(H, D, F, layers):
    """On the squared error: the absolute error's gradient is checked against differences on the
    single-layer GRU (tests/models/gru/test_gru_bptt.py), whose head code this shares; here its
    sign sums can be exactly 0 and differences then measure rounding only."""
    rng = np.random.default_rng(100 * H + 10 * D + F + layers)
    w = random_net(rng, H, D, F, layers)
    windows = rng.normal(size=(3, 6, D))
    _, grads = loss_and_grad(w, windows, layers, loss="squared")
    assert set(grads) == set(w)
    assert_matches_central_differences(
        lambda v: loss_and_grad(v, windows, layers, want_grad=False, loss="squared")[0], w, grads)


@pytest.mark.parametrize("loss_name", sorted(LOSSES))
@pytest.mark.parametrize("H,D,F,layers", [(3, 2, 1, 2), (4, 3, 2, 3), (5, 4, 1, 2)])
def test_kernel_matches_numpy_reference(H, D, F, layers, loss_name):
    rng = np.random.default_rng(7 * H + D + F + layers)
    w = random_net(rng, H, D, F, layers)
    for T in (2, 6, 13, 40):
        windows = rng.normal(size=(4, T, D)).astype(np.float32)
        loss, grads = loss_and_grad(w, windows, layers, loss=loss_name)
        ref_loss, ref_grads = loss_and_grad_reference(w, windows, layers, loss=loss_name)
        assert loss == pytest.approx(ref_loss, rel=1e-12)
        for name in w:
            np.testing.assert_allclose(grads[name], ref_grads[name], rtol=1e-9, atol=1e-13, err_msg=f"T={T} {name}")


def test_one_layer_stack_objective_is_the_single_layer_objective():
    rng = np.random.default_rng(4)
    w = random_net(rng, 5, 3, 2, 1)
    windows = rng.normal(size=(4, 20, 3))
    loss, grads = loss_and_grad(w, windows, 1)
    ref_loss, ref_grads = single_loss_and_grad(w, windows)
    assert loss == pytest.approx(ref_loss, rel=1e-13)
    for name in ref_grads:
        np.testing.assert_allclose(grads[name], ref_grads[name], rtol=1e-11, atol=1e-15, err_msg=name)


def test_fit_trains_every_layer():
    m = model(6, 2, 1, 2, seed=3)
    rng = np.random.default_rng(0)
    t = rng.integers(0, 1000, 16)[:, None] + np.arange(40)[None, :]
    windows = np.stack([np.sin(2 * np.pi * t / 17.0), rng.normal(scale=0.1, size=t.shape)], axis=2).astype(np.float32)
    result = m.fit(m.weights, {}, windows, SimpleNamespace(steps=40, learning_rate=1e-2, clip_norm=1.0, loss="absolute",
                                                           batch_windows=8))
    assert result.loss_after < 0.7 * result.loss_before
    for k in m.weights:
        assert result.weights[k].dtype == np.float32
        assert not np.array_equal(result.weights[k], m.weights[k]), k


def test_layer_view_is_a_view_or_refused():
    from rnnstream.models.gru.stacked import layer_view

    h = np.zeros((4, 6), dtype=np.float32)
    view = layer_view(h, 2, 3)
    view[1, 1, 2] = 5.0
    assert h[1, 5] == 5.0          # the kernel's writes land in the slot array
    with pytest.raises(ValueError, match="C-contiguous"):
        layer_view(h[:, ::2], 1, 3)
