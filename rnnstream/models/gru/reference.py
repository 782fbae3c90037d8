"""Plain numpy reference of the GRU batch step, written independently of the numba kernel.

For testing only: slow (Python loop over events), but each line is the textbook formula. The shared
normaliser/scorer/ring (``observe``, ``finish_event``) are called through their pure-Python ``py_func``;
the GRU cell and head are numpy matrix products with numpy's own ``exp``/``tanh``.
"""

from __future__ import annotations

from typing import Mapping

import numpy as np

from ...kernels.observe import observe
from ...kernels.ring import finish_event
from .params import LOGB_MAX


def gru_cell_reference(weights: Mapping[str, np.ndarray], h: np.ndarray, u: np.ndarray) -> np.ndarray:
    """Next hidden state, PyTorch GRU convention, computed in the dtype of ``h`` (weights cast to it)."""
    dt = h.dtype
    w_x, w_h = weights["w_x"].astype(dt), weights["w_h"].astype(dt)
    b_x, b_h = weights["b_x"].astype(dt), weights["b_h"].astype(dt)
    H = h.shape[0]
    gx = w_x @ u.astype(dt) + b_x
    gh = w_h @ h + b_h
    r = 1 / (1 + np.exp(-(gx[:H] + gh[:H])))
    z = 1 / (1 + np.exp(-(gx[H:2 * H] + gh[H:2 * H])))
    n = np.tanh(gx[2 * H:] + r * gh[2 * H:])
    return (1 - z) * n + z * h


def gru_head_reference(weights: Mapping[str, np.ndarray], h: np.ndarray, u: np.ndarray) -> np.ndarray:
    """Prediction of the next normalised features from ``[h; u]``."""
    dt = h.dtype
    return weights["w_o"].astype(dt) @ np.concatenate([h, u.astype(dt)]) + weights["b_o"].astype(dt)


def scale_head_reference(weights: Mapping[str, np.ndarray], h: np.ndarray, u: np.ndarray) -> np.ndarray:
    """The scale head's log-scale of the next event's error from ``[h; u]``, clamped to +-LOGB_MAX
    (``c_s``, the level, is training's alone)."""
    dt = h.dtype
    y = weights["w_s"].astype(dt) @ np.concatenate([h, u.astype(dt)]) + weights["b_s"].astype(dt)
    return np.clip(y, -LOGB_MAX, LOGB_MAX)


def step_batch_reference(weights: Mapping[str, np.ndarray], state: Mapping[str, np.ndarray],
                         slots: np.ndarray, x: np.ndarray, ts: np.ndarray, kp: np.ndarray) -> dict[str, np.ndarray]:
    """Advance the events in order, updating ``state``'s arrays in place; return the per-event outputs.

    With the scale head's weights, ``state["log_scale"]`` holds each entity's predicted log-scale."""
    n, F = x.shape
    D = weights["w_x"].shape[1]
    out = {"pred": np.zeros((n, F)), "z": np.zeros((n, F)), "err": np.zeros(n), "score": np.zeros(n),
           "flag": np.zeros(n, dtype=np.uint8), "kind": np.zeros((n, F), dtype=np.uint8)}
    u = np.zeros(D, dtype=np.float32)
    err = np.zeros(F)
    msd = np.zeros((2, F))
    scaled = "w_s" in weights
    log_scale = state["log_scale"] if scaled else state["pred"][:0]
    for i in range(n):
        s = int(slots[i])
        flags = observe.py_func(i, x[i], ts[i], s, state["count"], state["last_ts"], state["nmean"], state["nvar"],
                                state["pred"], log_scale, state["sc"], kp, u, err, msd,
                                out["pred"], out["z"], out["err"], out["score"], out["flag"], out["kind"])
        h_new = gru_cell_reference(weights, state["h"][s].astype(np.float32), u)
        state["h"][s] = h_new
        state["pred"][s] = gru_head_reference(weights, h_new, u)
        if scaled:
            log_scale[s] = scale_head_reference(weights, h_new, u)
        finish_event.py_func(s, ts[i], u, F, flags & 1, state["count"], state["last_ts"],
                             state["pool_row"], state["ring_in"], state["ring_t"], state["ring_flag"])
    return out
