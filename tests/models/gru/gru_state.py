"""Slot arrays for the GRU tests (a plain module: ``conftest`` is not importable by name, since every
test folder has one and the first imported would win)."""

from __future__ import annotations

import numpy as np

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
