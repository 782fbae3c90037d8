"""GRUModel's contract pieces: seeded init, persistence head, state fields, registry, activations."""

from __future__ import annotations

import numba
import numpy as np
import pytest

from rnnstream.models.base import model_class
from rnnstream.models.gru import GRUModel, flops_per_step
from rnnstream.models.gru.activations import exp64, sigmoid32, sigmoid64, tanh32, tanh64
from rnnstream.state.slots import FieldSpec


def test_registered_with_state_field(params):
    assert model_class("gru") is GRUModel
    model = GRUModel(2, 7, params(hidden=24))
    assert model.state_fields() == {"h": FieldSpec((24,), "float32")}


def test_init_is_seeded_shaped_and_persistent(params):
    a, b, c = GRUModel(2, 7, params(16, 1)), GRUModel(2, 7, params(16, 1)), GRUModel(2, 7, params(16, 2))
    shapes = {"w_x": (48, 7), "w_h": (48, 16), "b_x": (48,), "b_h": (48,), "w_o": (2, 23), "b_o": (2,)}
    assert {k: v.shape for k, v in a.weights.items()} == shapes
    assert all(v.dtype == np.float32 for v in a.weights.values())
    for k in a.weights:
        np.testing.assert_array_equal(a.weights[k], b.weights[k])
    assert not np.array_equal(a.weights["w_h"], c.weights["w_h"])
    assert np.abs(a.weights["w_h"]).max() <= 0.25 and np.abs(a.weights["w_h"]).max() > 0.2  # 1/sqrt(16)
    u = np.random.default_rng(0).normal(size=7).astype(np.float32)
    h = np.random.default_rng(1).normal(size=16).astype(np.float32)
    np.testing.assert_array_equal(a.weights["w_o"] @ np.concatenate([h, u]) + a.weights["b_o"],
                                  u[:2])


def test_snapshot_round_trip(params):
    model = GRUModel(1, 6, params(8))
    other = GRUModel(1, 6, params(8, seed=9))
    other.load_snapshot(model.snapshot())
    for k in model.weights:
        np.testing.assert_array_equal(other.weights[k], model.weights[k])


def test_flops_per_step_counts_the_matrix_products():
    base = flops_per_step(32, 6, 1)
    assert base > 2 * 3 * 32 * (32 + 6)
    assert flops_per_step(64, 6, 1) - base > 3 * (2 * 3 * 32 * 32)  # quadratic in H


@numba.njit
def _apply(x, out_t, out_s):
    for i in range(x.shape[0]):
        out_t[i] = tanh32(x[i])
        out_s[i] = sigmoid32(x[i])


def test_activation_accuracy_on_a_dense_grid():
    grid = np.linspace(-30, 30, 1_200_001, dtype=np.float32)
    small = np.geomspace(1e-30, 1.0, 20_000).astype(np.float32)
    x = np.concatenate([grid, small, -small, np.array([np.inf, -np.inf], dtype=np.float32)])
    t = np.empty_like(x)
    s = np.empty_like(x)
    _apply(x, t, s)
    assert t.dtype == np.float32
    exact = np.tanh(x.astype(np.float64))
    err = np.abs(t - exact)
    assert err.max() < 4e-7
    assert np.all(err <= 4e-7 * np.abs(exact) + 1e-37)  # relative, down to tiny arguments
    assert np.all(np.abs(t) <= 1.0)
    assert np.abs(s - 1 / (1 + np.exp(-x.astype(np.float64)))).max() < 2e-7


@numba.njit
def _apply64(x, out_e, out_t, out_s):
    for i in range(x.shape[0]):
        out_e[i] = exp64(x[i])
        out_t[i] = tanh64(x[i])
        out_s[i] = sigmoid64(x[i])


def test_training_activations_accuracy_extremes_and_nan():
    """The BPTT kernels' float64 exp/tanh/sigmoid: ~1e-13 against libm over the whole range, saturated
    (never inf or NaN) at the extremes of float64, NaN in gives NaN out (a diverging fit must show)."""
    x = np.concatenate([np.linspace(-60, 60, 600_001), np.geomspace(1e-300, 1.0, 2000),
                        -np.geomspace(1e-300, 1.0, 2000), [0.0, 1e308, -1e308, np.inf, -np.inf]])
    e, t, s = np.empty_like(x), np.empty_like(x), np.empty_like(x)
    _apply64(x, e, t, s)
    inside = np.abs(x) <= 40
    assert np.max(np.abs(e[inside] / np.exp(x[inside]) - 1)) < 1e-13
    assert np.all(e[x > 40] == e[x == 40][0]) and np.all(e[x < -40] == e[x == -40][0])   # clamped
    assert np.max(np.abs(t - np.tanh(x))) < 1e-13
    with np.errstate(over="ignore"):
        assert np.max(np.abs(s - 1 / (1 + np.exp(-x)))) < 1e-13
    assert np.all(np.isfinite(t)) and np.all(np.abs(t) <= 1.0) and np.all((s >= 0) & (s <= 1))
    nan = np.array([np.nan])
    _apply64(nan, e[:1], t[:1], s[:1])
    assert np.isnan(e[0]) and np.isnan(t[0]) and np.isnan(s[0])


def test_fit_leaves_model_weights_alone(params):
    from types import SimpleNamespace

    model = GRUModel(1, 2, params(4))
    before = {k: v.copy() for k, v in model.weights.items()}
    windows = np.random.default_rng(0).normal(size=(3, 8, 2)).astype(np.float32)
    result = model.fit(model.weights, model.opt_state, windows,
                       SimpleNamespace(steps=3, learning_rate=0.1, clip_norm=1.0, batch_windows=3, loss="absolute"))
    for k in before:
        np.testing.assert_array_equal(model.weights[k], before[k])
    assert result.weights["w_h"] is not model.weights["w_h"]
    with pytest.raises(ValueError, match="windows"):
        model.fit(model.weights, {}, windows[0],
                  SimpleNamespace(steps=1, learning_rate=0.1, clip_norm=1.0, loss="absolute"))


def test_accepts_the_config_parameter_class():
    from rnnstream.config.model_params import GRUParams

    model = GRUModel(1, 6, GRUParams(hidden=16, seed=4))
    assert model.seed == 4 and model.weights["w_h"].shape == (48, 16)
    np.testing.assert_array_equal(model.weights["w_h"], GRUModel(1, 6, GRUParams(hidden=16, seed=4)).weights["w_h"])


def test_scale_head_is_a_one_layer_setting_refused_with_its_yaml_path():
    from rnnstream.config import load_config
    from rnnstream.config.load import ConfigError
    from rnnstream.config.model_params import GRUParams

    yaml_text = """
detectors:
  - name: d
    topics: [t]
    entity: host
    timestamp: {field: ts}
    features: [v]
    model: {type: gru, layers: 2, scale_head: true}
"""
    with pytest.raises(ConfigError, match=r"detectors\[0\]\.model\.scale_head: needs layers: 1"):
        load_config(yaml_text)
    assert load_config(yaml_text.replace("layers: 2", "layers: 1")).detectors[0].model.params.scale_head is True
    with pytest.raises(ValueError, match="scale_head"):
        GRUModel(1, 6, GRUParams(layers=2, scale_head=True))
    model = GRUModel(2, 6, GRUParams(hidden=8, scale_head=True))
    assert model.state_fields()["log_scale"].shape == (2,)
    assert all(not model.weights[k].any() for k in ("w_s", "b_s", "c_s"))
    assert "log_scale" not in GRUModel(2, 6, GRUParams(hidden=8)).state_fields()
