"""Plain numpy reference of a stacked recurrent step (GRU here, the LSTM reuses the event loop).

For testing only, written apart from the numba kernels: a Python loop over events, numpy matrix
products with numpy's own ``exp``/``tanh``; the shared normaliser/scorer/ring through their
``py_func``.
"""

from __future__ import annotations

from typing import Callable, Mapping

import numpy as np

from ...kernels.observe import observe
from ...kernels.ring import finish_event
from .reference import gru_cell_reference, gru_head_reference
from .stacked import RECURRENT, layer_names


def layer_weights(weights: Mapping[str, np.ndarray], layer: int, recurrent: tuple[str, ...] = RECURRENT
                  ) -> dict[str, np.ndarray]:
    """Layer ``layer``'s recurrent weights under layer 0's names."""
    return {base: weights[name] for base, name in zip(recurrent, layer_names(layer, recurrent))}


def event_loop_reference(advance: Callable[[int, np.ndarray], np.ndarray], state: Mapping[str, np.ndarray],
                         slots: np.ndarray, x: np.ndarray, ts: np.ndarray, kp: np.ndarray,
                         n_inputs: int) -> dict[str, np.ndarray]:
    """Advance the events in order (model inputs of width ``n_inputs``); ``advance(s, u)`` updates
    entity ``s``'s recurrent state in ``state`` and returns the next prediction. Returns the per-event
    outputs."""
    n, F = x.shape
    D = n_inputs
    out = {"pred": np.zeros((n, F)), "z": np.zeros((n, F)), "err": np.zeros(n), "score": np.zeros(n),
           "flag": np.zeros(n, dtype=np.uint8), "kind": np.zeros((n, F), dtype=np.uint8)}
    u = np.zeros(D, dtype=np.float32)
    err = np.zeros(F)
    msd = np.zeros((2, F))
    for i in range(n):
        s = int(slots[i])
        flags = observe.py_func(i, x[i], ts[i], s, state["count"], state["last_ts"], state["nmean"], state["nvar"],
                                state["pred"], state["pred"][:0], state["sc"], kp, u, err, msd,
                                out["pred"], out["z"], out["err"], out["score"], out["flag"], out["kind"])
        state["pred"][s] = advance(s, u)
        finish_event.py_func(s, ts[i], u, F, flags & 1, state["count"], state["last_ts"],
                             state["pool_row"], state["ring_in"], state["ring_t"], state["ring_flag"])
    return out


def gru_stack_step_reference(weights: Mapping[str, np.ndarray], state: Mapping[str, np.ndarray], layers: int,
                             slots: np.ndarray, x: np.ndarray, ts: np.ndarray, kp: np.ndarray) -> dict[str, np.ndarray]:
    """A stacked GRU's batch step; ``state["h"]`` is (slots, layers, H), updated in place."""
    per_layer = [layer_weights(weights, l) for l in range(layers)]

    def advance(s: int, u: np.ndarray) -> np.ndarray:
        inp = u
        for l in range(layers):
            state["h"][s, l] = gru_cell_reference(per_layer[l], state["h"][s, l].astype(np.float32), inp)
            inp = state["h"][s, l]
        return gru_head_reference(weights, state["h"][s, layers - 1].astype(np.float32), u)

    return event_loop_reference(advance, state, slots, x, ts, kp, per_layer[0]["w_x"].shape[1])
