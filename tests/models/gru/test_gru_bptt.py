"""BPTT gradients: numba kernel == numpy reference == central finite differences (float64)."""

from __future__ import annotations

import numpy as np
import pytest

from rnnstream.models.gru.bptt import GRAD_ORDER, LOSSES, burn_in, loss_and_grad
from rnnstream.models.gru.bptt_reference import loss_and_grad_reference
from rnnstream.models.gru.params import weight_shapes

from models.gradcheck import assert_matches_central_differences


def random_net(rng, H, D, F):
    return {k: rng.normal(scale=0.5, size=s) for k, s in weight_shapes(H, D, F).items()}


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


@pytest.mark.parametrize("loss_name", sorted(LOSSES))
def test_compiled_kernel_equals_its_python_form_bit_for_bit(loss_name):
    """The forward matvecs run over the gate index innermost (vectorised); each sum must keep its
    written order, so the compiled kernel and the same source run as Python agree exactly."""
    from rnnstream.models.gru.bptt import bptt_batch

    rng = np.random.default_rng(11)
    H, D, F = 5, 3, 2
    w = random_net(rng, H, D, F)
    windows = rng.normal(size=(2, 9, D)).astype(np.float32)
    results = []
    for fn in (bptt_batch, bptt_batch.py_func):
        grads = {k: np.zeros_like(w[k]) for k in GRAD_ORDER}
        loss = fn(windows, *(w[k] for k in GRAD_ORDER), burn_in(9), LOSSES[loss_name], True, *(grads[k] for k in GRAD_ORDER))
        results.append((loss, grads))
    assert results[0][0] == results[1][0]
    for name in GRAD_ORDER:
        assert np.array_equal(results[0][1][name], results[1][1][name]), name
