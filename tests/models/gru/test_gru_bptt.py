"""BPTT gradients: numba kernel == numpy reference == central finite differences (float64)."""

from __future__ import annotations

import numpy as np
import pytest

from rnnstream.models.gru.bptt import GRAD_ORDER, LOSSES, SCALE_ORDER, burn_in, loss_and_grad, scale_level
from rnnstream.models.gru.bptt_reference import loss_and_grad_reference
from rnnstream.models.gru.params import weight_shapes

from models.gradcheck import assert_matches_central_differences


def random_net(rng, H, D, F, scaled=False):
    return {k: rng.normal(scale=0.5, size=s) for k, s in weight_shapes(H, D, F, scaled).items()}


CASES = [(3, 2, 1), (4, 3, 2), (5, 4, 1), (5, 2, 2)]


@pytest.mark.parametrize("loss", sorted(LOSSES))
@pytest.mark.parametrize("H,D,F", CASES)
def test_gradients_match_central_differences(H, D, F, loss):
    """(The absolute error is not differentiable at 0; random weights never predict a target exactly.)"""
    rng = np.random.default_rng(100 * H + 10 * D + F)
    w = random_net(rng, H, D, F)
    windows = rng.normal(size=(3, 6, D))
    _, grads = loss_and_grad(w, windows, loss=loss)
    assert_matches_central_differences(lambda v: loss_and_grad(v, windows, want_grad=False, loss=loss)[0],
                                       {k: w[k] for k in GRAD_ORDER}, grads)


@pytest.mark.parametrize("loss_name", sorted(LOSSES))
@pytest.mark.parametrize("H,D,F", CASES)
def test_kernel_matches_numpy_reference(H, D, F, loss_name):
    rng = np.random.default_rng(7 * H + D + F)
    w = random_net(rng, H, D, F)
    for T in (2, 6, 13, 40):
        windows = rng.normal(size=(4, T, D)).astype(np.float32)
        loss, grads = loss_and_grad(w, windows, loss=loss_name)
        ref_loss, ref_grads = loss_and_grad_reference(w, windows, loss=loss_name)
        assert loss == pytest.approx(ref_loss, rel=1e-12)
        for name in GRAD_ORDER:
            np.testing.assert_allclose(grads[name], ref_grads[name], rtol=1e-9, atol=1e-13, err_msg=f"T={T} {name}")


def test_burn_in_is_left_out_of_the_loss():
    """With all-zero weights every prediction is 0, so the loss is the mean square of the scored targets."""
    assert burn_in(32) == 8 and burn_in(6) == 1 and burn_in(200) == 8
    rng = np.random.default_rng(5)
    w0 = {k: np.zeros(s) for k, s in weight_shapes(4, 3, 2).items()}
    windows = rng.normal(size=(2, 32, 3))
    windows[:, :9, :2] += 50.0  # targets of the 8 burn-in predictions (and the first input): must not count
    targets = windows[:, 9:, :2]  # u[t+1][:F] for t = 8..30
    loss, grads = loss_and_grad(w0, windows, loss="squared")
    assert loss == pytest.approx(np.mean(targets ** 2), rel=1e-12)
    np.testing.assert_allclose(grads["b_o"], -2 * targets.mean(axis=(0, 1)) / 2, rtol=1e-12)  # / F
    loss, grads = loss_and_grad(w0, windows, loss="absolute")
    assert loss == pytest.approx(np.mean(np.abs(targets)), rel=1e-12)
    np.testing.assert_allclose(grads["b_o"], -np.sign(targets).mean(axis=(0, 1)) / 2, rtol=1e-12)


def test_unknown_loss_is_refused():
    w = {k: np.zeros(s) for k, s in weight_shapes(2, 1, 1).items()}
    with pytest.raises(ValueError, match="unknown loss"):
        loss_and_grad(w, np.zeros((1, 4, 1)), loss="huber")


def test_the_config_offers_exactly_the_kernel_losses():
    import typing

    from rnnstream.config.schema import TrainingConfig

    assert set(typing.get_args(typing.get_type_hints(TrainingConfig)["loss"])) == set(LOSSES)


@pytest.mark.parametrize("scaled", [False, True])
@pytest.mark.parametrize("loss_name", sorted(LOSSES))
def test_compiled_kernel_equals_its_python_form_bit_for_bit(loss_name, scaled):
    """The forward matvecs run over the gate index innermost (vectorised); each sum must keep its
    written order, so the compiled kernel and the same source run as Python agree exactly."""
    from rnnstream.models.gru.bptt import _arrays, bptt_batch

    rng = np.random.default_rng(11)
    H, D, F = 5, 3, 2
    w, _ = _arrays(random_net(rng, H, D, F, scaled))
    names = GRAD_ORDER + SCALE_ORDER
    windows = rng.normal(size=(2, 9, D)).astype(np.float32)
    results = []
    for fn in (bptt_batch, bptt_batch.py_func):
        grads = {k: np.zeros_like(w[k]) for k in names}
        centre = np.zeros((2, w["b_s"].shape[0]))
        loss = fn(windows, *(w[k] for k in GRAD_ORDER), burn_in(9), LOSSES[loss_name], True,
                  *(grads[k] for k in GRAD_ORDER), *(w[k] for k in SCALE_ORDER), *(grads[k] for k in SCALE_ORDER),
                  centre)
        results.append((loss, grads, centre))
    assert results[0][0] == results[1][0]
    assert np.array_equal(results[0][2], results[1][2])
    for name in names:
        assert np.array_equal(results[0][1][name], results[1][1][name]), name


# The scale head (model.scale_head): likelihood loss, its gradients, its neutral start, its centring.

@pytest.mark.parametrize("loss", sorted(LOSSES))
@pytest.mark.parametrize("H,D,F", CASES)
def test_scale_head_gradients_match_central_differences(H, D, F, loss):
    rng = np.random.default_rng(300 + 100 * H + 10 * D + F)
    w = random_net(rng, H, D, F, scaled=True)
    windows = rng.normal(size=(3, 6, D))
    _, grads = loss_and_grad(w, windows, loss=loss)
    assert set(grads) == set(GRAD_ORDER + SCALE_ORDER)
    assert_matches_central_differences(lambda v: loss_and_grad(v, windows, want_grad=False, loss=loss)[0],
                                       {k: w[k] for k in GRAD_ORDER + SCALE_ORDER}, grads)


@pytest.mark.parametrize("loss_name", sorted(LOSSES))
@pytest.mark.parametrize("H,D,F", CASES)
def test_scale_head_kernel_matches_numpy_reference(H, D, F, loss_name):
    rng = np.random.default_rng(17 * H + D + F)
    w = random_net(rng, H, D, F, scaled=True)
    w["b_s"][0] = 30.0   # feature 0's log-scale beyond the clamp: no gradient through it
    for T in (2, 6, 13, 40):
        windows = rng.normal(size=(4, T, D)).astype(np.float32)
        loss, grads = loss_and_grad(w, windows, loss=loss_name)
        ref_loss, ref_grads = loss_and_grad_reference(w, windows, loss=loss_name)
        assert loss == pytest.approx(ref_loss, rel=1e-12)
        for name in GRAD_ORDER + SCALE_ORDER:
            np.testing.assert_allclose(grads[name], ref_grads[name], rtol=1e-9, atol=1e-13, err_msg=f"T={T} {name}")
        assert np.all(grads["w_s"][0] == 0.0) and grads["b_s"][0] == 0.0


@pytest.mark.parametrize("loss_name", sorted(LOSSES))
def test_a_zero_scale_head_trains_the_rest_exactly_as_without_it(loss_name):
    """At log-scale 0 the likelihood is the plain loss, value and gradient: turning the head on does not
    change what the mean head learns from its first step."""
    rng = np.random.default_rng(23)
    H, D, F = 4, 3, 2
    w = random_net(rng, H, D, F)
    scaled = dict(w, **{k: np.zeros(s) for k, s in weight_shapes(H, D, F, True).items() if k in SCALE_ORDER})
    windows = rng.normal(size=(3, 12, D))
    loss, grads = loss_and_grad(w, windows, loss=loss_name)
    loss_s, grads_s = loss_and_grad(scaled, windows, loss=loss_name)
    assert loss_s == loss
    for name in GRAD_ORDER:
        assert np.array_equal(grads[name], grads_s[name]), name
    assert np.any(grads_s["b_s"] != 0.0)   # ...while the scale head itself does learn


def test_scale_head_learns_a_larger_scale_where_errors_are_larger():
    """A target whose noise is 10 times larger when the last input is positive: after training, the
    head's log-scale there is higher by about log(10)."""
    from types import SimpleNamespace

    from rnnstream.models.gru.params import init_weights
    from rnnstream.models.gru.train import fit

    rng = np.random.default_rng(3)
    B, T = 32, 24
    flag = rng.integers(0, 2, size=(B, T)).astype(float)
    noise = rng.laplace(size=(B, T)) * np.where(np.roll(flag, 1, axis=1) > 0, 1.0, 0.1)
    windows = np.stack([noise, flag], axis=2).astype(np.float32)
    w = init_weights(4, 2, 1, 0, scale_head=True)
    training = SimpleNamespace(steps=400, batch_windows=B, clip_norm=10.0, learning_rate=0.03, loss="absolute")
    res = fit(w, {}, windows, training, names=GRAD_ORDER + SCALE_ORDER)
    assert res.loss_after < res.loss_before
    ones, zeros = windows.copy(), windows.copy()
    ones[:, :, 1], zeros[:, :, 1] = 1.0, 0.0
    gap = scale_level(res.weights, ones)[0] - scale_level(res.weights, zeros)[0]
    assert gap[0] == pytest.approx(np.log(10.0), abs=0.4)


@pytest.mark.parametrize("loss_name", sorted(LOSSES))
def test_scale_level_centres_the_head_and_minimises_the_loss_over_the_level(loss_name):
    rng = np.random.default_rng(29)
    H, D, F = 4, 3, 2
    w = random_net(rng, H, D, F, scaled=True)
    windows = rng.normal(size=(3, 12, D))
    centre, level = scale_level(w, windows, loss_name)
    # moving the centre from b_s into c_s changes neither the loss nor the optimal total level
    shifted = dict(w, b_s=w["b_s"] - centre, c_s=w["c_s"] + centre)
    assert loss_and_grad(shifted, windows, want_grad=False, loss=loss_name)[0] == pytest.approx(
        loss_and_grad(w, windows, want_grad=False, loss=loss_name)[0], rel=1e-12)
    centre2, level2 = scale_level(shifted, windows, loss_name)
    np.testing.assert_allclose(centre2, 0.0, atol=1e-12)
    np.testing.assert_allclose(level2, level + centre, rtol=1e-9)
    # the closed-form level is where the loss's gradient by c_s vanishes
    best = dict(w, c_s=level)
    _, grads = loss_and_grad(best, windows, loss=loss_name)
    np.testing.assert_allclose(grads["c_s"], 0.0, atol=1e-12)
    for delta in (-0.1, 0.1):
        assert loss_and_grad(dict(w, c_s=level + delta), windows, want_grad=False, loss=loss_name)[0] > \
            loss_and_grad(best, windows, want_grad=False, loss=loss_name)[0]
    with pytest.raises(ValueError, match="scale head"):
        scale_level({k: v for k, v in w.items() if k not in SCALE_ORDER}, windows)
