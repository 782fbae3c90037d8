"""LSTM BPTT gradients: numba kernel == numpy reference == central finite differences (float64)."""

from __future__ import annotations

import numpy as np
import pytest

from rnnstream.models.gru.bptt import LOSSES

from rnnstream.models.gru.bptt_stacked import stack_names
from rnnstream.models.lstm.bptt import loss_and_grad
from rnnstream.models.lstm.bptt_reference import loss_and_grad_reference
from rnnstream.models.lstm.params import RECURRENT, init_weights

from models.gradcheck import assert_matches_central_differences


def random_net(rng, H, D, F, layers):
    return {k: rng.normal(scale=0.5, size=v.shape) for k, v in init_weights(H, layers, D, F, 0).items()}


CASES = [(3, 2, 1, 1), (4, 3, 2, 1), (3, 2, 1, 2), (4, 3, 2, 3), (2, 2, 2, 2)]


@pytest.mark.parametrize("H,D,F,layers", CASES)
def test_gradients_match_central_differences(H, D, F, layers):
    """On the squared error: the absolute error's gradient is checked against differences on the
    single-layer GRU (tests/models/gru/test_gru_bptt.py), whose head code this shares; here its
    sign sums can be exactly 0 and differences then measure rounding only."""
    rng = np.random.default_rng(100 * H + 10 * D + F + 1000 * layers)
    w = random_net(rng, H, D, F, layers)
    windows = rng.normal(size=(3, 6, D))
    _, grads = loss_and_grad(w, windows, layers, loss="squared")
    assert set(grads) == set(w) == set(stack_names(layers, RECURRENT))
    assert_matches_central_differences(
        lambda v: loss_and_grad(v, windows, layers, want_grad=False, loss="squared")[0], w, grads)


@pytest.mark.parametrize("loss_name", sorted(LOSSES))
@pytest.mark.parametrize("H,D,F,layers", CASES)
def test_kernel_matches_numpy_reference(H, D, F, layers, loss_name):
    rng = np.random.default_rng(7 * H + D + F + 50 * layers)
    w = random_net(rng, H, D, F, layers)
    for T in (2, 6, 13, 40):
        windows = rng.normal(size=(4, T, D)).astype(np.float32)
        loss, grads = loss_and_grad(w, windows, layers, loss=loss_name)
        ref_loss, ref_grads = loss_and_grad_reference(w, windows, layers, loss=loss_name)
        assert loss == pytest.approx(ref_loss, rel=1e-12)
        for name in w:
            np.testing.assert_allclose(grads[name], ref_grads[name], rtol=1e-9, atol=1e-13, err_msg=f"T={T} {name}")


def test_refuses_a_window_too_short():
    w = init_weights(3, 1, 2, 1, 0)
    with pytest.raises(ValueError, match="windows"):
        loss_and_grad(w, np.zeros((2, 1, 2)), 1)
