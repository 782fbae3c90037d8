"""``fit`` learns, is deterministic, leaves its inputs alone; Adam and clipping behave as specified."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from rnnstream.models.gru import GRUModel
from rnnstream.models.gru.adam import BETA1, BETA2, EPS, adam_step, adam_update, clip_by_global_norm, init_state
from rnnstream.models.gru.train import fit


def training(**kw):
    base = dict(steps=60, learning_rate=1e-2, clip_norm=1.0, batch_windows=16, loss="absolute")
    base.update(kw)
    return SimpleNamespace(**base)


def sine_windows(n_windows=32, T=48, noise=0.05, seed=0):
    """Windows of a noisy sine (period 17 events) with a second, pure-noise input column."""
    rng = np.random.default_rng(seed)
    starts = rng.integers(0, 1000, n_windows)
    t = starts[:, None] + np.arange(T)[None, :]
    x = np.sin(2 * np.pi * t / 17.0) * 1.4 + rng.normal(scale=noise, size=t.shape)
    return np.stack([x, rng.normal(scale=0.1, size=t.shape)], axis=2).astype(np.float32)


@pytest.fixture
def model():
    return GRUModel(1, 2, SimpleNamespace(hidden=12, seed=3))


def test_loss_falls_on_a_learnable_series(model):
    windows = sine_windows()
    result = model.fit(model.weights, {}, windows, training())
    assert result.loss_after < 0.5 * result.loss_before, (result.loss_before, result.loss_after)
    assert {k: v.dtype for k, v in result.weights.items()} == {k: np.dtype(np.float32) for k in model.weights}
    assert int(result.opt_state["t"]) == 60
    # training again from there continues (the optimiser state is adopted) and keeps improving
    again = model.fit(result.weights, result.opt_state, windows, training(steps=20))
    assert int(again.opt_state["t"]) == 80
    assert again.loss_after < result.loss_after


def test_fit_is_deterministic_and_pure(model):
    windows = sine_windows(n_windows=20)
    weights = {k: v.copy() for k, v in model.weights.items()}
    opt = {k: v.copy() for k, v in init_state({k: v.astype(np.float64) for k, v in weights.items()}).items()}
    opt["t"] = np.array(5, dtype=np.int64)
    opt_copy = {k: v.copy() for k, v in opt.items()}
    windows_copy = windows.copy()
    a = fit(weights, opt, windows, training(steps=15, batch_windows=7))
    b = fit(weights, opt, windows, training(steps=15, batch_windows=7))
    for k in weights:
        np.testing.assert_array_equal(weights[k], model.weights[k])
        np.testing.assert_array_equal(a.weights[k], b.weights[k])
        assert not np.shares_memory(a.weights[k], weights[k])
    for k in opt:
        np.testing.assert_array_equal(opt[k], opt_copy[k])
        np.testing.assert_array_equal(a.opt_state[k], b.opt_state[k])
    np.testing.assert_array_equal(windows, windows_copy)
    assert a.loss_after == b.loss_after and a.loss_before == b.loss_before
    assert any(not np.array_equal(a.weights[k], weights[k]) for k in weights)


def test_divergence_returns_the_input_weights(model):
    windows = sine_windows(n_windows=4)
    windows[0, 5, 0] = np.inf
    result = model.fit(model.weights, {}, windows, training(steps=3))
    assert result.info["diverged"]
    for k in model.weights:
        np.testing.assert_array_equal(result.weights[k], model.weights[k])


def test_clip_by_global_norm():
    g = {"a": np.array([3.0, 0.0]), "b": np.array([[4.0]])}
    assert clip_by_global_norm(g, 1.0) == pytest.approx(5.0)
    np.testing.assert_allclose(g["a"], [0.6, 0.0])
    np.testing.assert_allclose(g["b"], [[0.8]])
    assert clip_by_global_norm(g, 10.0) == pytest.approx(1.0)
    np.testing.assert_allclose(g["b"], [[0.8]])


def test_adam_first_step_moves_each_weight_by_lr_against_its_gradient_sign():
    p = {"w": np.array([1.0, -2.0, 0.5])}
    s = init_state(p)
    adam_step(p, {"w": np.array([0.3, -1e-3, 50.0])}, s, lr=0.1)
    np.testing.assert_allclose(p["w"], [0.9, -1.9, 0.4], rtol=1e-6)
    assert int(s["t"]) == 1


def test_adam_update_rounds_as_numpy_whole_array_operations_and_whatever_the_arrays_are_cut_into():
    rng = np.random.default_rng(7)
    shape = (6, 5)
    g = rng.standard_normal(shape) * 10.0 ** rng.integers(-12, 12, shape)
    p, m, v = (rng.standard_normal(shape) for _ in range(3))
    v = np.abs(v) * 1e-6
    t, lr = 3, 7.5e-3
    # the formula as numpy evaluates it, operation by operation
    c1, c2 = 1.0 - BETA1 ** t, 1.0 - BETA2 ** t
    m_ref = m * BETA1
    m_ref += (1.0 - BETA1) * g
    v_ref = v * BETA2
    v_ref += (1.0 - BETA2) * g * g
    p_ref = p - lr * (m_ref / c1) / (np.sqrt(v_ref / c2) + EPS)
    whole = [a.copy() for a in (p, m, v)]
    adam_update(whole[0], g, whole[1], whole[2], t, lr)
    rows = [a.copy() for a in (p, m, v)]
    for r in range(shape[0]):   # row by row: each element gets the same bits
        adam_update(rows[0][r], g[r], rows[1][r], rows[2][r], t, lr)
    for got in (whole, rows):
        for a, ref in zip(got, (p_ref, m_ref, v_ref)):
            assert np.array_equal(a, ref)
    with pytest.raises(ValueError):
        adam_update(p[:, ::2].copy(), g[:, ::2], m[:, ::2], v[:, ::2], t, lr)   # not contiguous: would be lost


def jump_windows(seed, n_windows=8, T=64):
    """A flat level with rare large jumps (a service switching modes) and a little noise."""
    rng = np.random.default_rng(seed)
    jumps = np.where(rng.random((n_windows, T)) < 0.05, rng.normal(0, 3, (n_windows, T)), 0.0)
    level = np.cumsum(jumps, axis=1) + 0.01 * rng.standard_normal((n_windows, T))
    return level[:, :, None].astype(np.float32)


def test_absolute_loss_keeps_persistence_on_rare_jumps():
    """Persistence is the median forecast of a level with unpredictable jumps. Trained on the absolute
    error the model stays there; on the squared error it chases the jumps and its typical error grows."""
    from rnnstream.models.gru.bptt import loss_and_grad
    from rnnstream.models.gru.params import init_weights

    w0 = init_weights(8, 1, 1, 0)
    held_out = jump_windows(2)
    mae = lambda w: loss_and_grad(w, held_out, want_grad=False, loss="absolute")[0]  # noqa: E731
    persistence = mae(w0)
    trained = {loss: mae(fit(w0, {}, jump_windows(1), training(steps=100, learning_rate=3e-3, batch_windows=8,
                                                               loss=loss)).weights)
               for loss in ("absolute", "squared")}
    assert trained["absolute"] <= 1.05 * persistence
    assert trained["squared"] >= 1.5 * persistence
