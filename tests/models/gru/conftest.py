"""Shared helpers of the GRU tests."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from rnnstream.models.base import common_fields
from rnnstream.state.slots import dense_arrays


def make_state(n_slots: int, n_features: int, n_inputs: int, hidden: int, window: int = 16,
               scale_head: bool = False) -> dict[str, np.ndarray]:
    fields = common_fields(n_features, n_inputs, window)
    state = dense_arrays(fields, n_slots)
    state["h"] = np.zeros((n_slots, hidden), dtype=np.float32)
    if scale_head:
        state["log_scale"] = np.zeros((n_slots, n_features), dtype=np.float32)
    return state


@pytest.fixture
def params():
    return lambda hidden=8, seed=0, scale_head=False: SimpleNamespace(hidden=hidden, seed=seed, scale_head=scale_head)
