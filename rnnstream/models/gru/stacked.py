"""Stacked GRU (``model.layers`` 2 or 3): layer ``l`` reads layer ``l - 1``'s new hidden state.

Layer 0 has the single-layer GRU's weights (``w_x``, ``w_h``, ``b_x``, ``b_h``, initialised exactly as
for one layer from the same seed) and the head reads the *top* layer's state and ``u``. Layer
``l >= 1`` has ``w_x<l>`` (3H, H), ``w_h<l>`` (3H, H), ``b_x<l>``, ``b_h<l>``. Per entity the state
field ``h`` is (layers, H). ``layers: 1`` is :mod:`.kernel` itself, untouched (this module is only used
above one layer).

The step kernel runs each layer through the single-layer cell (:func:`.kernel.gru_cell`) and the
head through :func:`.kernel.gru_head`, so a stack's layer 0 computes bit for bit what a single layer
computes. Same discipline as :mod:`.kernel`: one call per micro-batch, nogil, nothing allocated.
"""

from __future__ import annotations

import math
from typing import Mapping

import numpy as np

from ...kernels.calibrate import FLAG_LATE
from ...kernels.jit import kernel
from ...kernels.observe import observe
from ...kernels.prefetch import AHEAD, prefetch_common, prefetch_row
from ...kernels.ring import finish_event
from .kernel import flops_per_step as kernel_flops, gru_cell, gru_head
from .params import init_weights

GATES = 3
RECURRENT = ("w_x", "w_h", "b_x", "b_h")   # one layer's recurrent weights; the rest is the head


def layer_names(layer: int, names: tuple[str, ...] = RECURRENT) -> tuple[str, ...]:
    """Names of layer ``layer``'s recurrent weights (layer 0 keeps the single-layer names)."""
    return names if layer == 0 else tuple(f"{n}{layer}" for n in names)


def upper_layer_weights(hidden: int, layers: int, seed: int, gates: int, names: tuple[str, ...]
                        ) -> dict[str, np.ndarray]:
    """Layers 1.. of a stack: uniform(-1/sqrt(H), 1/sqrt(H)) from a generator seeded by ``(seed, l)``.

    ``names`` are layer 0's names of (input matrix, recurrent matrix, biases...): matrices get shape
    (gates H, H), biases (gates H,).
    """
    bound = 1.0 / math.sqrt(hidden)
    out = {}
    for layer in range(1, layers):
        rng = np.random.default_rng([seed, layer])
        for base, name in zip(names, layer_names(layer, names)):
            shape = (gates * hidden, hidden) if base.startswith("w_") else (gates * hidden,)
            out[name] = rng.uniform(-bound, bound, shape).astype(np.float32)
    return out


def init_stacked_weights(hidden: int, layers: int, n_inputs: int, n_features: int, seed: int) -> dict[str, np.ndarray]:
    """Layer 0 and the head exactly as :func:`.params.init_weights`, then the layers above."""
    weights = init_weights(hidden, n_inputs, n_features, seed)
    weights.update(upper_layer_weights(hidden, layers, seed, GATES, RECURRENT))
    return weights


def layer_view(a: np.ndarray, layers: int, hidden: int) -> np.ndarray:
    """A state field of (slots, H) or (slots, layers, H) as a (slots, layers, H) *view* (the kernel
    writes through it); refuses an array that would need a copy."""
    if not a.flags.c_contiguous:
        raise ValueError(f"recurrent state must be C-contiguous, got an array with strides {a.strides}")
    return a.reshape(a.shape[0], layers, hidden)


def stacked_args(weights: Mapping[str, np.ndarray], layers: int) -> tuple[np.ndarray, ...]:
    """The stacked kernel's weight arguments ``(w_xt, w_ht, b_x, b_h, w_xt_up, w_ht_up, b_x_up, b_h_up,
    w_o, b_o)``, contiguous float32; the ``_up`` arrays stack layers 1.. along a new first axis."""
    f32 = np.float32

    def up(name: str, transpose: bool) -> np.ndarray:
        arrs = [np.asarray(weights[f"{name}{l}"], dtype=f32) for l in range(1, layers)]
        return np.ascontiguousarray(np.stack([a.T if transpose else a for a in arrs]))

    return (np.ascontiguousarray(weights["w_x"].T, dtype=f32), np.ascontiguousarray(weights["w_h"].T, dtype=f32),
            np.ascontiguousarray(weights["b_x"], dtype=f32), np.ascontiguousarray(weights["b_h"], dtype=f32),
            up("w_x", True), up("w_h", True), up("b_x", False), up("b_h", False),
            np.ascontiguousarray(weights["w_o"], dtype=f32), np.ascontiguousarray(weights["b_o"], dtype=f32))


@kernel
def gru_stack_step_batch(slots, x, ts, kp, w_xt, w_ht, b_x, b_h, w_xt_up, w_ht_up, b_x_up, b_h_up, w_o, b_o,
                         count, last_ts, nmean, nvar, pred, sc, pool_row, ring_in, ring_t, ring_flag, h,
                         u, err, msd, gates, hnew,
                         out_pred, out_z, out_err, out_score, out_flag, out_kind):
    """As :func:`.kernel.gru_step_batch`, with ``h`` (slots, layers, H): every layer advances in turn."""
    nh = hnew.shape[0]
    nl = h.shape[1]
    n = slots.shape[0]
    for i in range(n):
        s = slots[i]
        prefetch_common(i, slots, count, last_ts, nmean, nvar, pred, sc, pool_row, ring_in, ring_t, ring_flag)
        if i + 2 * AHEAD < n:
            prefetch_row(h, slots[i + 2 * AHEAD])
        flags = observe(i, x[i], ts[i], s, count, last_ts, nmean, nvar, pred, pred[:0], sc, kp, u, err, msd,
                        out_pred, out_z, out_err, out_score, out_flag, out_kind)
        if flags & FLAG_LATE:
            continue
        hs = h[s, 0]
        gru_cell(hs, u, w_xt, w_ht, b_x, b_h, gates, hnew)
        for k in range(nh):
            hs[k] = hnew[k]
        for layer in range(1, nl):
            hs = h[s, layer]
            gru_cell(hs, h[s, layer - 1], w_xt_up[layer - 1], w_ht_up[layer - 1], b_x_up[layer - 1],
                     b_h_up[layer - 1], gates, hnew)
            for k in range(nh):
                hs[k] = hnew[k]
        gru_head(h[s, nl - 1], u, w_o, b_o, pred[s])
        finish_event(s, ts[i], u, x.shape[1], flags & 1, count, last_ts, pool_row, ring_in, ring_t, ring_flag)



def flops_per_step(hidden: int, n_inputs: int, n_features: int, layers: int = 1) -> int:
    """:func:`.kernel.flops_per_step` plus the cells of the layers above the first (input H, no head)."""
    return kernel_flops(hidden, n_inputs, n_features) + (layers - 1) * kernel_flops(hidden, hidden, 0)
