"""The LSTM's batch step kernel: one numba call advances a micro-batch of events in arrival order.

Per event of entity ``s``: the shared ``observe`` (normalise, error against the previous prediction,
score), then each layer's LSTM cell on ``(h[s, l], c[s, l])`` (layer 0 reads ``u``, layer ``l`` reads
layer ``l - 1``'s new ``h``), the GRU's head (:func:`rnnstream.models.gru.kernel.gru_head`) on the top
layer's ``h`` and ``u``, and the shared ``finish_event``.

Float32 with the GRU's vectorisable tanh/sigmoid; the matrices are passed transposed (``w_xt`` (D, 4H),
``w_ht`` (H, 4H)) for :func:`rnnstream.kernels.simd.matvec_bias`; ``gates = W_x x + b`` then
``+ W_h h`` (two register-blocked products, the first one's result as the second's bias). One call
per micro-batch, nogil, nothing allocated: ``u``, ``err``, ``msd`` and ``gates`` (2, 4H) are caller
scratch.
"""

from __future__ import annotations

from typing import Mapping

import numpy as np

from ...kernels.calibrate import FLAG_LATE
from ...kernels.jit import device, kernel
from ...kernels.observe import observe
from ...kernels.prefetch import AHEAD, prefetch_common, prefetch_row
from ...kernels.ring import finish_event
from ...kernels.simd import matvec_bias
from ..gru.activations import sigmoid32, tanh32
from ..gru.kernel import ACT_FLOPS, gru_head


def kernel_args(weights: Mapping[str, np.ndarray], layers: int) -> tuple[np.ndarray, ...]:
    """``(w_xt, w_ht, b, w_xt_up, w_ht_up, b_up, w_o, b_o)`` contiguous float32; the ``_up`` arrays stack
    layers 1.. along a new first axis (empty for one layer)."""
    f32 = np.float32
    g4, hidden = np.shape(weights["w_h"])

    def up(name: str, transpose: bool, shape: tuple[int, ...]) -> np.ndarray:
        arrs = [np.asarray(weights[f"{name}{l}"], dtype=f32) for l in range(1, layers)]
        if not arrs:
            return np.zeros(shape, dtype=f32)
        return np.ascontiguousarray(np.stack([a.T if transpose else a for a in arrs]))

    return (np.ascontiguousarray(weights["w_x"].T, dtype=f32), np.ascontiguousarray(weights["w_h"].T, dtype=f32),
            np.ascontiguousarray(weights["b"], dtype=f32),
            up("w_x", True, (0, hidden, g4)), up("w_h", True, (0, hidden, g4)), up("b", False, (0, g4)),
            np.ascontiguousarray(weights["w_o"], dtype=f32), np.ascontiguousarray(weights["b_o"], dtype=f32))


def flops_per_step(hidden: int, n_inputs: int, n_features: int, layers: int = 1) -> int:
    """FLOPs of the cells and head of one entity step (multiply-add = 2; activations count ``ACT_FLOPS``)."""
    h, d, f = hidden, n_inputs, n_features
    cells = 0
    for layer in range(layers):
        inp = d if layer == 0 else h
        cells += 2 * 4 * h * (inp + h) + 4 * h   # W_x x + b + W_h h
        cells += 5 * h * ACT_FLOPS + 4 * h       # four gates and tanh(c); c' = f c + i g; h' = o tanh(c')
    return cells + 2 * f * (h + d) + f


@device
def lstm_cell(hs, cs, x, w_xt, w_ht, b, gates):
    """Advance ``(hs, cs)`` in place for input ``x`` (which must not be ``hs``)."""
    nh = hs.shape[0]
    gx = gates[0]
    g = gates[1]
    matvec_bias(w_xt, x, b, gx)
    matvec_bias(w_ht, hs, gx, g)
    for j in range(nh):
        ig = sigmoid32(g[j])
        fg = sigmoid32(g[nh + j])
        cg = tanh32(g[2 * nh + j])
        og = sigmoid32(g[3 * nh + j])
        c = fg * cs[j] + ig * cg
        cs[j] = c
        hs[j] = og * tanh32(c)


@kernel
def lstm_step_batch(slots, x, ts, kp, w_xt, w_ht, b, w_xt_up, w_ht_up, b_up, w_o, b_o,
                    count, last_ts, nmean, nvar, pred, sc, pool_row, ring_in, ring_t, ring_flag, h, c,
                    u, err, msd, gates,
                    out_pred, out_z, out_err, out_score, out_flag, out_kind):
    """Advance events ``(slots[i], x[i], ts[i])``; ``h`` and ``c`` are (slots, layers, H) float32."""
    nl = h.shape[1]
    n = slots.shape[0]
    for i in range(n):
        s = slots[i]
        prefetch_common(i, slots, count, last_ts, nmean, nvar, pred, sc, pool_row, ring_in, ring_t, ring_flag)
        if i + 2 * AHEAD < n:
            prefetch_row(h, slots[i + 2 * AHEAD])
            prefetch_row(c, slots[i + 2 * AHEAD])
        flags = observe(i, x[i], ts[i], s, count, last_ts, nmean, nvar, pred, pred[:0], sc, kp, u, err, msd,
                        out_pred, out_z, out_err, out_score, out_flag, out_kind)
        if flags & FLAG_LATE:
            continue
        lstm_cell(h[s, 0], c[s, 0], u, w_xt, w_ht, b, gates)
        for layer in range(1, nl):
            lstm_cell(h[s, layer], c[s, layer], h[s, layer - 1], w_xt_up[layer - 1], w_ht_up[layer - 1],
                      b_up[layer - 1], gates)
        gru_head(h[s, nl - 1], u, w_o, b_o, pred[s])
        finish_event(s, ts[i], u, x.shape[1], flags & 1, count, last_ts, pool_row, ring_in, ring_t, ring_flag)
