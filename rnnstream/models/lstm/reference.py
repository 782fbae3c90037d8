"""Plain numpy reference of the LSTM batch step (tests only; written apart from the numba kernel).

Textbook LSTM (PyTorch gate order i, f, g, o) with numpy's own ``exp``/``tanh``; the GRU's head
reference; the shared event loop of :mod:`rnnstream.models.gru.stacked_reference`.
"""

from __future__ import annotations

from typing import Mapping

import numpy as np

from ..gru.reference import gru_head_reference
from ..gru.stacked_reference import event_loop_reference, layer_weights
from .params import RECURRENT


def lstm_cell_reference(weights: Mapping[str, np.ndarray], h: np.ndarray, c: np.ndarray, x: np.ndarray
                        ) -> tuple[np.ndarray, np.ndarray]:
    """Next ``(h, c)`` of one layer, in the dtype of ``h`` (weights cast to it)."""
    dt = h.dtype
    H = h.shape[0]
    a = weights["w_x"].astype(dt) @ x.astype(dt) + weights["b"].astype(dt) + weights["w_h"].astype(dt) @ h
    sig = lambda v: 1 / (1 + np.exp(-v))  # noqa: E731
    i, f, g, o = sig(a[:H]), sig(a[H:2 * H]), np.tanh(a[2 * H:3 * H]), sig(a[3 * H:])
    c_new = f * c.astype(dt) + i * g
    return o * np.tanh(c_new), c_new


def step_batch_reference(weights: Mapping[str, np.ndarray], state: Mapping[str, np.ndarray], layers: int,
                         slots: np.ndarray, x: np.ndarray, ts: np.ndarray, kp: np.ndarray) -> dict[str, np.ndarray]:
    """Advance the events in order; ``state["h"]``, ``state["c"]`` are (slots, layers, H), updated in place."""
    per_layer = [layer_weights(weights, l, RECURRENT) for l in range(layers)]

    def advance(s: int, u: np.ndarray) -> np.ndarray:
        inp = u
        for l in range(layers):
            h, c = lstm_cell_reference(per_layer[l], state["h"][s, l].astype(np.float32), state["c"][s, l], inp)
            state["h"][s, l], state["c"][s, l] = h, c
            inp = state["h"][s, l]
        return gru_head_reference(weights, state["h"][s, layers - 1].astype(np.float32), u)

    return event_loop_reference(advance, state, slots, x, ts, kp, per_layer[0]["w_x"].shape[1])
