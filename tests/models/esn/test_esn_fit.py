"""Readout training: agreement with the reference, exact recovery, forgetting, loss on a sine."""

from __future__ import annotations

import copy

import numpy as np
import pytest

from rnnstream.models.esn import ESN
from rnnstream.models.esn.readout import mse, samples


def linear_windows(model: ESN, w_star: np.ndarray, n_windows: int, n_steps: int,
                   seed: int) -> np.ndarray:
    """Windows whose next features are exactly ``w_star [r_t; u_t; 1]`` (up to float32 rounding);
    the other inputs are random."""
    w = {k: v.astype(np.float64) for k, v in model.weights.items()}
    leak = model.params.leak_rate
    f = model.n_features
    rng = np.random.default_rng(seed)
    out = rng.uniform(-1.0, 1.0, (n_windows, n_steps, model.n_inputs)).astype(np.float32)
    for b in range(n_windows):
        r = np.zeros(model.size)
        for t in range(n_steps - 1):
            u = out[b, t].astype(np.float64)
            r = (1.0 - leak) * r + leak * np.tanh(w["w_in"] @ u + w["w_res"] @ r + w["bias"])
            out[b, t + 1, :f] = w_star @ np.concatenate([r, u, [1.0]])
    return out


def random_readout(model: ESN, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    w = rng.normal(0.0, 0.5 / np.sqrt(model.n_phi), (model.n_features, model.n_phi))
    w[:, model.size:model.size + model.n_features] += 0.5 * np.eye(model.n_features)
    return w


def test_fit_matches_the_reference_over_two_fits(make_model):
    from rnnstream.models.esn.reference import reference_fit
    model = make_model(2, 5, size=24, forgetting=0.995, ridge=1e-3)
    rng = np.random.default_rng(0)
    weights, opt = model.weights, model.opt_state
    for k in range(2):
        windows = rng.standard_normal((6, 20, 5)).astype(np.float32)
        got = model.fit(weights, opt, windows, None)
        ref = reference_fit(weights, opt, windows, model.params, 2)
        np.testing.assert_allclose(got.opt_state["A"], ref["A"], rtol=1e-10, atol=1e-10)
        np.testing.assert_allclose(got.opt_state["b"], ref["b"], rtol=1e-10, atol=1e-10)
        np.testing.assert_allclose(got.weights["w_out"], ref["w_out"], rtol=1e-5, atol=1e-6)
        assert int(got.opt_state["count"]) == ref["count"] == (k + 1) * 6 * (20 - 1 - 5)
        assert got.loss_before == pytest.approx(ref["loss_before"], rel=1e-9)
        assert got.loss_after == pytest.approx(ref["loss_after"], rel=1e-5)
        weights, opt = got.weights, got.opt_state


def test_fit_recovers_an_exact_linear_readout(make_model):
    model = make_model(2, 4, size=30, ridge=1e-12, forgetting=1.0)
    w_star = random_readout(model, 1)
    windows = linear_windows(model, w_star, 8, 60, seed=2)
    result = model.fit(model.weights, model.opt_state, windows, None)
    assert result.loss_before > 1e-2
    assert result.loss_after < 1e-10
    held_out = linear_windows(model, w_star, 4, 60, seed=3)
    phi, y = samples(model.weights, held_out, model.params.leak_rate, 2)
    assert mse(result.weights["w_out"], phi, y) < 1e-10 * np.mean(y * y) + 1e-12


def test_forgetting_moves_the_readout_to_the_new_regime(make_model):
    def final_error(forgetting: float) -> float:
        model = make_model(1, 3, size=20, ridge=1e-9, forgetting=forgetting)
        regime_a = linear_windows(model, random_readout(model, 10), 4, 30, seed=11)
        w_b = random_readout(model, 20)
        regime_b = linear_windows(model, w_b, 4, 30, seed=12)
        weights, opt = model.weights, model.opt_state
        result = model.fit(weights, opt, regime_a, None)
        weights, opt = result.weights, result.opt_state
        for _ in range(100):
            result = model.fit(weights, opt, regime_b, None)
            weights, opt = result.weights, result.opt_state
        held_out = linear_windows(model, w_b, 4, 30, seed=13)
        phi, y = samples(model.weights, held_out, model.params.leak_rate, 1)
        return mse(weights["w_out"], phi, y) / float(np.mean(y * y))

    # 4 windows * (30 - 1 - 7) = 88 samples per fit: 0.999**88 ~ 0.916 per fit, so after 100 fits
    # regime A weighs ~1.5e-4 of one fit against regime B's ~12; without forgetting, 1 against 100.
    forgetting_err = final_error(0.999)
    remembering_err = final_error(1.0)
    assert forgetting_err < 1e-6
    assert remembering_err > 100 * forgetting_err


def noisy_sine_windows(n_windows: int, n_steps: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    starts = rng.integers(0, 10_000, n_windows)
    t = starts[:, None] + np.arange(n_steps)[None, :]
    z = np.sqrt(2.0) * np.sin(2 * np.pi * t / 25.0) + 0.1 * rng.standard_normal(t.shape)
    tod = 2 * np.pi * (t % 100) / 100.0
    return np.stack([z, np.sin(tod), np.cos(tod)], axis=2).astype(np.float32)


def test_loss_falls_on_a_noisy_sine(make_model):
    model = make_model(1, 3, size=100)
    first = model.fit(model.weights, model.opt_state, noisy_sine_windows(32, 64, 0), None)
    assert first.loss_after < 0.5 * first.loss_before
    second = model.fit(first.weights, first.opt_state, noisy_sine_windows(32, 64, 1), None)
    # The readout from the first batch already beats persistence on unseen data.
    persistence = model.fit(model.weights, model.opt_state, noisy_sine_windows(32, 64, 1), None)
    assert second.loss_before < 0.5 * persistence.loss_before
    assert second.loss_after <= second.loss_before * 1.05
    assert second.loss_after < 0.05   # noise variance is 0.01: near the floor


def test_fit_is_deterministic_and_does_not_touch_its_inputs(make_model):
    model = make_model(2, 7, size=32, forgetting=0.99)
    windows = np.random.default_rng(3).standard_normal((5, 24, 7)).astype(np.float32)
    warm = model.fit(model.weights, model.opt_state, windows, None)
    weights, opt = warm.weights, warm.opt_state
    before = (copy.deepcopy(weights), copy.deepcopy(opt), windows.copy())
    a = model.fit(weights, opt, windows[::-1].copy(), None)
    b = model.fit(weights, opt, windows[::-1].copy(), None)
    for k in a.weights:
        np.testing.assert_array_equal(a.weights[k], b.weights[k])
    for k in a.opt_state:
        np.testing.assert_array_equal(a.opt_state[k], b.opt_state[k])
    for k in weights:
        np.testing.assert_array_equal(weights[k], before[0][k])
        assert not np.shares_memory(a.weights[k], weights[k])
    for k in opt:
        np.testing.assert_array_equal(opt[k], before[1][k])
        assert not np.shares_memory(a.opt_state[k], opt[k])
    np.testing.assert_array_equal(windows, before[2])
    for k in ("w_in", "w_res", "bias"):
        np.testing.assert_array_equal(a.weights[k], model.weights[k])
    assert a.weights["w_out"].dtype == np.float32


@pytest.mark.parametrize("shape", [(0, 10, 7), (4, 1, 7), (4, 10, 6), (10, 7)])
def test_fit_rejects_malformed_windows(make_model, shape):
    model = make_model(2, 7, size=16)
    with pytest.raises(ValueError, match="windows of shape"):
        model.fit(model.weights, model.opt_state, np.zeros(shape, dtype=np.float32), None)
