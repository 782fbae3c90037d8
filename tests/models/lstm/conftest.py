"""Shared helpers of the LSTM tests."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from rnnstream.models.base import common_fields
from rnnstream.state.slots import dense_arrays


def _make_state(n_slots: int, n_features: int, n_inputs: int, model, window: int = 16) -> dict[str, np.ndarray]:
    fields = {**common_fields(n_features, n_inputs, window), **model.state_fields()}
    return dense_arrays(fields, n_slots)


@pytest.fixture
def make_state():
    """``make_state(n_slots, n_features, n_inputs, model)``: zeroed common and model slot arrays."""
    return _make_state


@pytest.fixture
def sine_windows():
    """Windows (32, 48, 2) of a noisy sine (period 17 events) with a second, pure-noise input column."""
    rng = np.random.default_rng(0)
    t = rng.integers(0, 1000, 32)[:, None] + np.arange(48)[None, :]
    x = np.sin(2 * np.pi * t / 17.0) * 1.4 + rng.normal(scale=0.05, size=t.shape)
    return np.stack([x, rng.normal(scale=0.1, size=t.shape)], axis=2).astype(np.float32)


@pytest.fixture
def params():
    return lambda hidden=8, seed=0, layers=1: SimpleNamespace(hidden=hidden, seed=seed, layers=layers)
