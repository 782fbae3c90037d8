"""The GRU's batch step kernel: one numba call advances a micro-batch of events in arrival order.

Per event ``i`` of entity ``s = slots[i]``: ``observe`` (shared: normalise, error against the
prediction made at the entity's previous event, score), then the GRU cell on ``h[s]`` with input ``u``,
the head's prediction of the next normalised features into ``pred[s]``, and ``finish_event`` (history
ring, event count). Events of one entity must appear in time order; entities may interleave freely.

The cell runs in float32, with the vectorisable rational tanh/sigmoid of :mod:`.activations`. The
input and recurrent matrices are passed *transposed* (``w_xt`` (D, 3H), ``w_ht`` (H, 3H), see
:func:`transposed`) so the matrix-vector products run over contiguous rows
(:func:`rnnstream.kernels.simd.matvec_bias`: register-blocked, in a fixed summation order whatever the
vector width; ``fastmath`` stays off). Nothing is allocated inside the call: ``u`` (D,) float32,
``err`` (F,) float64, ``msd`` (2, F) float64, ``gates`` (2, 3H) float32 and ``hnew`` (H,) float32 are
caller scratch.
"""

from __future__ import annotations

from typing import Mapping

import numpy as np

from ...kernels.jit import device, fixed_tuple, kernel
from ...kernels.calibrate import FLAG_LATE
from ...kernels.observe import observe
from ...kernels.params import KP_SIZE
from ...kernels.ring import finish_event
from ...kernels.prefetch import AHEAD, prefetch_common, prefetch_row
from ...kernels.simd import matvec_bias
from .activations import sigmoid32, tanh32
from .params import LOGB_MAX

ONE = np.float32(1.0)
LOGB_MAX32 = np.float32(LOGB_MAX)
ACT_FLOPS = 20  # one tanh32 / sigmoid32: clamp, 9 multiply-adds, division, clamp (+ sigmoid's affine)


def transposed(weights: Mapping[str, np.ndarray]) -> tuple[np.ndarray, ...]:
    """The kernel's weight arguments ``(w_xt, w_ht, b_x, b_h, w_o, b_o, w_s, b_s)``, contiguous float32;
    the scale head's ``w_s`` (F, H+D) and ``b_s`` (F,) are empty (0 rows) when the weights have none."""
    f32 = np.float32
    if "w_s" in weights:
        w_s = np.ascontiguousarray(weights["w_s"], dtype=f32)
        b_s = np.ascontiguousarray(weights["b_s"], dtype=f32)
    else:
        w_s = np.zeros((0, weights["w_o"].shape[1]), dtype=f32)
        b_s = np.zeros(0, dtype=f32)
    return (np.ascontiguousarray(weights["w_x"].T, dtype=f32), np.ascontiguousarray(weights["w_h"].T, dtype=f32),
            np.ascontiguousarray(weights["b_x"], dtype=f32), np.ascontiguousarray(weights["b_h"], dtype=f32),
            np.ascontiguousarray(weights["w_o"], dtype=f32), np.ascontiguousarray(weights["b_o"], dtype=f32),
            w_s, b_s)


def flops_per_step(hidden: int, n_inputs: int, n_features: int, scale_head: bool = False) -> int:
    """Floating-point operations of one cell + head step (multiply-add = 2; exp/tanh/div count 1).

    Covers the model's own work only, not the shared normaliser and scorer.
    """
    h, d, f = hidden, n_inputs, n_features
    matvec = 2 * 3 * h * (d + h)          # W_x u and W_h h
    bias = 2 * 3 * h                      # + b_x, + b_h
    gates = 2 * h * 1 + 2 * h * 3 + 3 * h + h * 4  # r, z: add, sigmoid; n: add, mul, add; h' blend
    act = 3 * h * ACT_FLOPS
    head = 2 * f * (h + d) + f
    return matvec + bias + gates + act + head * (2 if scale_head else 1)


@device
def gru_cell(hs, u, w_xt, w_ht, b_x, b_h, gates, hnew):
    """Write the next hidden state for previous state ``hs`` and input ``u`` into ``hnew``."""
    nh = hnew.shape[0]
    gx = gates[0]
    gh = gates[1]
    matvec_bias(w_xt, u, b_x, gx)
    matvec_bias(w_ht, hs, b_h, gh)
    for j in range(nh):
        r = sigmoid32(gx[j] + gh[j])
        z = sigmoid32(gx[nh + j] + gh[nh + j])
        n = tanh32(gx[2 * nh + j] + r * gh[2 * nh + j])
        hnew[j] = (ONE - z) * n + z * hs[j]


@device
def gru_head(hnew, u, w_o, b_o, out):
    """``out[f] = b_o[f] + w_o[f] . [hnew; u]`` (four interleaved partial sums: short dependency chains)."""
    nh = hnew.shape[0]
    for f in range(b_o.shape[0]):
        wf = w_o[f]
        a0 = np.float32(0.0)
        a1 = np.float32(0.0)
        a2 = np.float32(0.0)
        a3 = np.float32(0.0)
        k = 0
        while k + 4 <= nh:
            a0 += wf[k] * hnew[k]
            a1 += wf[k + 1] * hnew[k + 1]
            a2 += wf[k + 2] * hnew[k + 2]
            a3 += wf[k + 3] * hnew[k + 3]
            k += 4
        while k < nh:
            a0 += wf[k] * hnew[k]
            k += 1
        for k in range(u.shape[0]):
            a1 += wf[nh + k] * u[k]
        out[f] = b_o[f] + ((a0 + a1) + (a2 + a3))


@kernel
def gru_step_batch(slots, x, ts, kp, w_xt, w_ht, b_x, b_h, w_o, b_o, w_s, b_s,
                   count, last_ts, nmean, nvar, pred, log_scale, sc, pool_row, ring_in, ring_t, ring_flag, h,
                   u, err, msd, gates, hnew,
                   out_pred, out_z, out_err, out_score, out_flag, out_kind):
    """Advance events ``(slots[i], x[i], ts[i])`` for ``i < len(slots)``; fill the ``out_*`` rows.

    With the scale head (``b_s`` not empty; ``log_scale`` then has a row per slot, else none), the
    head's log-scale of the next event's error, clamped to ``+-LOGB_MAX``, goes into
    ``log_scale[s]`` beside the prediction, and ``observe`` scores the next event's error against it."""
    nh = hnew.shape[0]
    n = slots.shape[0]
    kpt = fixed_tuple(kp, KP_SIZE)   # the parameters as values, not reloaded per event (kernels.jit)
    for i in range(n):
        s = slots[i]
        prefetch_common(i, slots, count, last_ts, nmean, nvar, pred, sc, pool_row, ring_in, ring_t, ring_flag)
        if i + 2 * AHEAD < n:
            prefetch_row(h, slots[i + 2 * AHEAD])
        flags = observe(i, x[i], ts[i], s, count, last_ts, nmean, nvar, pred, log_scale, sc, kpt, u, err, msd,
                        out_pred, out_z, out_err, out_score, out_flag, out_kind)
        if flags & FLAG_LATE:
            continue
        hs = h[s]
        gru_cell(hs, u, w_xt, w_ht, b_x, b_h, gates, hnew)
        for k in range(nh):
            hs[k] = hnew[k]
        gru_head(hnew, u, w_o, b_o, pred[s])
        if b_s.shape[0] > 0:
            ls = log_scale[s]
            gru_head(hnew, u, w_s, b_s, ls)
            for f in range(ls.shape[0]):
                ls[f] = min(max(ls[f], -LOGB_MAX32), LOGB_MAX32)
        finish_event(s, ts[i], u, x.shape[1], flags & 1, count, last_ts, pool_row, ring_in, ring_t, ring_flag)
