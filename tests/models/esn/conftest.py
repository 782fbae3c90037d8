"""Shared fixtures of the ESN tests: small models, slot arrays, kernel parameters."""

from __future__ import annotations

import dataclasses
from typing import Callable

import numpy as np
import pytest

from rnnstream.config.model_params import ESNParams
from rnnstream.kernels.params import kernel_params, n_time_features
from rnnstream.models.base import BatchOutput, common_fields
from rnnstream.models.esn import ESN
from rnnstream.state.slots import dense_arrays


@pytest.fixture
def make_model() -> Callable[..., ESN]:
    """``make_model(n_features, n_inputs, **params)`` with ESNParams defaults for the rest."""
    def make(n_features: int = 2, n_inputs: int = 7, **params) -> ESN:
        return ESN(n_features, n_inputs, dataclasses.replace(ESNParams(), **params))
    return make


@pytest.fixture
def make_state() -> Callable[..., dict[str, np.ndarray]]:
    """``make_state(model, n_slots, window)``: zeroed slot arrays for ``model`` (common + model fields)."""
    def make(model: ESN, n_slots: int, window: int = 16) -> dict[str, np.ndarray]:
        fields = {**common_fields(model.n_features, model.n_inputs, window), **model.state_fields()}
        return dense_arrays(fields, n_slots)
    return make


@pytest.fixture
def kp() -> np.ndarray:
    """All five time features on (D = F + 5), scoring from the 5th event with a low
    threshold, so that short test series raise anomalies and exercise suppression."""
    assert n_time_features(True, True, True) == 5
    return kernel_params(warmup_events=5, short_window=3, long_window=50, suppress_events=3,
                         threshold=0.1)


@pytest.fixture
def random_batches() -> Callable[..., list[tuple[np.ndarray, np.ndarray, np.ndarray]]]:
    """``random_batches(n_batches, n_events, n_slots, n_features, seed)``: interleaved events of
    random slots, per-slot increasing timestamps, with occasional spikes."""
    def make(n_batches: int, n_events: int, n_slots: int, n_features: int, seed: int = 0):
        rng = np.random.default_rng(seed)
        clock = np.full(n_slots, 1.7e9) + rng.uniform(0, 86400 * 7, n_slots)
        out = []
        for _ in range(n_batches):
            slots = rng.integers(0, n_slots, n_events)
            ts = np.empty(n_events)
            for i, s in enumerate(slots):
                clock[s] += rng.exponential(300.0)
                ts[i] = clock[s]
            x = 5.0 + np.sin(ts / 3600.0)[:, None] + 0.3 * rng.standard_normal((n_events, n_features))
            spikes = rng.random(n_events) < 0.02
            x[spikes] += 20.0
            out.append((slots.astype(np.int64), x, ts))
        return out
    return make


@pytest.fixture
def new_output() -> Callable[[int, int], BatchOutput]:
    return BatchOutput.allocate
