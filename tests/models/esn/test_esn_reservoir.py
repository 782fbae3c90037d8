"""Reservoir initialisation: spectral radius, sparsity, seeding, registration."""

from __future__ import annotations

import numpy as np
import pytest

from rnnstream.models.base import model_class
from rnnstream.models.esn import ESN
from rnnstream.models.esn.reservoir import spectral_radius


@pytest.mark.parametrize("size,radius,sparsity", [(200, 0.9, 0.9), (50, 1.25, 0.5), (16, 0.3, 0.0)])
def test_spectral_radius_equals_the_parameter(make_model, size, radius, sparsity):
    w_res = make_model(1, 6, size=size, spectral_radius=radius, sparsity=sparsity).weights["w_res"]
    assert w_res.dtype == np.float32 and w_res.shape == (size, size)
    assert abs(spectral_radius(w_res) - radius) < 1e-4


def test_sparsity_is_the_fraction_of_zero_weights(make_model):
    w_res = make_model(1, 6, size=300, sparsity=0.9).weights["w_res"]
    zero = np.mean(w_res == 0.0)
    assert abs(zero - 0.9) < 0.01   # 90,000 Bernoulli draws: sd 0.001


def test_shapes_dtypes_and_input_scaling(make_model):
    w = make_model(3, 8, size=30, input_scaling=0.25).weights
    assert {k: v.shape for k, v in w.items()} == {"w_in": (30, 8), "w_res": (30, 30), "bias": (30,),
                                                  "w_out": (3, 30 + 8 + 1)}
    assert all(v.dtype == np.float32 for v in w.values())
    assert np.max(np.abs(w["w_in"])) <= 0.25 and np.max(np.abs(w["w_in"])) > 0.2


def test_same_seed_same_weights(make_model):
    a, b, c = (make_model(2, 7, size=50, seed=s).weights for s in (5, 5, 6))
    for k in a:
        np.testing.assert_array_equal(a[k], b[k])
    assert not np.array_equal(a["w_res"], c["w_res"])


def test_readout_starts_as_persistence(make_model):
    model = make_model(2, 7, size=10)
    rng = np.random.default_rng(0)
    phi = np.concatenate([rng.standard_normal(10), rng.standard_normal(7), [1.0]])
    np.testing.assert_array_equal(model.weights["w_out"] @ phi, phi[10:12])


def test_hopelessly_sparse_reservoir_is_refused(make_model):
    with pytest.raises(ValueError, match="model.params.sparsity"):
        make_model(1, 6, size=8, sparsity=0.999)


def test_registered_as_esn(make_model):
    assert model_class("esn") is ESN
    assert make_model(1, 6, size=8, sparsity=0.5).state_fields()["r"].shape == (8,)
