"""LSTMModel's contract pieces: registry, seeded init (forget bias 1, the GRU's head), state fields, fit."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from rnnstream.config.model_params import LSTMParams
from rnnstream.models.base import model_class
from rnnstream.models.gru import GRUModel
from rnnstream.models.lstm import LSTMModel, flops_per_step
from rnnstream.models.gru.kernel import flops_per_step as gru_flops
from rnnstream.state.slots import FieldSpec


def test_registered_with_state_fields(params):
    assert model_class("lstm") is LSTMModel
    assert LSTMModel(2, 7, params(24)).state_fields() == {"h": FieldSpec((24,), "float32"),
                                                          "c": FieldSpec((24,), "float32")}
    assert LSTMModel(2, 7, params(24, layers=3)).state_fields() == {"h": FieldSpec((3, 24), "float32"),
                                                                    "c": FieldSpec((3, 24), "float32")}


def test_init_is_seeded_shaped_forget_biased_and_the_grus_head(params):
    a, b, c = (LSTMModel(2, 7, params(16, s, layers=2)) for s in (1, 1, 2))
    shapes = {"w_x": (64, 7), "w_h": (64, 16), "b": (64,), "w_x1": (64, 16), "w_h1": (64, 16), "b1": (64,),
              "w_o": (2, 23), "b_o": (2,)}
    assert {k: v.shape for k, v in a.weights.items()} == shapes
    assert all(v.dtype == np.float32 for v in a.weights.values())
    for k in a.weights:
        np.testing.assert_array_equal(a.weights[k], b.weights[k])
    assert not np.array_equal(a.weights["w_h"], c.weights["w_h"])
    assert not np.array_equal(a.weights["w_h1"], c.weights["w_h1"])
    for name in ("b", "b1"):
        np.testing.assert_array_equal(a.weights[name][16:32], 1.0)
        assert np.abs(np.delete(a.weights[name], np.s_[16:32])).max() <= 0.25
    gru = GRUModel(2, 7, SimpleNamespace(hidden=16, seed=1))
    for k in ("w_o", "b_o"):
        np.testing.assert_array_equal(a.weights[k], gru.weights[k])


def test_layers_out_of_range_are_refused(params):
    with pytest.raises(ValueError, match="layers"):
        LSTMModel(1, 6, params(8, layers=4))


def test_accepts_the_config_parameter_class():
    model = LSTMModel(1, 6, LSTMParams(hidden=16, layers=2, seed=4))
    assert model.seed == 4 and model.layers == 2 and model.weights["w_h1"].shape == (64, 16)


def test_flops_per_step_within_a_third_more_than_the_grus_matrix_work():
    assert flops_per_step(32, 6, 1) > 2 * 4 * 32 * (32 + 6)
    assert flops_per_step(32, 6, 1, layers=2) - flops_per_step(32, 6, 1) > 2 * 4 * 32 * 64
    assert flops_per_step(32, 6, 1) < 1.5 * gru_flops(32, 6, 1)


@pytest.mark.parametrize("layers", [1, 2])
def test_fit_learns_a_sine_and_is_deterministic(params, sine_windows, layers):
    model = LSTMModel(1, 2, params(12, 3, layers=layers))
    windows = sine_windows
    training = SimpleNamespace(steps=60, learning_rate=1e-2, clip_norm=1.0, batch_windows=16, loss="absolute")
    a = model.fit(model.weights, {}, windows, training)
    b = model.fit(model.weights, {}, windows, training)
    assert a.loss_after < 0.5 * a.loss_before, (a.loss_before, a.loss_after)
    assert a.weights.keys() == model.weights.keys()
    for k in a.weights:
        assert a.weights[k].tobytes() == b.weights[k].tobytes()
        assert a.weights[k].dtype == np.float32
    assert int(a.opt_state["t"]) == 60
