"""The ESN's batch step: one numba loop over a micro-batch of events in arrival order.

Per event ``i`` of entity ``s = slots[i]``: the shared ``observe`` (normalise, score the prediction
made at the entity's previous event), then the reservoir update

    r' = (1 - a) r + a tanh(w_in u + w_res r + bias)

then the next prediction ``pred[s] = w_out [r'; u; 1]``, then the shared ``finish_event`` (history
ring, event count). Sums accumulate in float64; ``r`` and ``pred`` are stored as float32.

The reservoir matrix is used dense (fine for R <= ~500; the cost grows as R^2). Measured on the benchmark machine (2 cores, AVX-512), us per event of the reservoir update
alone, 10k random entities: R=200/sparsity 0.9: dense column-blocked 6.3, CSR row loop 10.5
(7.2 with 4 accumulators), CSC scatter 7.3, dense row loop 39.8; R=500/0.9: dense 30.5, CSR 31.2;
R=200/0.5: dense 6.0, CSR 21.1. CSR only wins at extreme sparsity (R=500/0.99: 8.6 vs 36), so the
kernel stays dense. Nothing is allocated inside: ``u``, ``err``, ``msd`` and ``pre`` are scratch.
"""

from __future__ import annotations

import math

import numpy as np

from ...kernels.calibrate import FLAG_ANOMALY, FLAG_LATE
from ...kernels.jit import device, kernel
from ...kernels.observe import observe
from ...kernels.prefetch import AHEAD, prefetch_common, prefetch_row
from ...kernels.ring import finish_event


@device
def reservoir_update(s, u, r, w_in_t, w_res_t, bias, leak, pre):
    """Advance row ``s`` of ``r`` with input ``u``; ``pre`` is (R,) float64 scratch.

    Takes the *transposed* weights (``w_in_t`` (D, R), ``w_res_t`` (R, R), C-contiguous) so that the
    matrix-vector products are column updates ``pre[:] += w[:, q] r[q]`` over contiguous memory, four
    columns at a time: these vectorise without reassociating a reduction (numba runs without fastmath).
    """
    n_res = r.shape[1]
    for j in range(n_res):
        pre[j] = bias[j]
    for k in range(u.shape[0]):
        uk = np.float64(u[k])
        for j in range(n_res):
            pre[j] += np.float64(w_in_t[k, j]) * uk
    q = 0
    while q + 3 < n_res:
        r0 = np.float64(r[s, q])
        r1 = np.float64(r[s, q + 1])
        r2 = np.float64(r[s, q + 2])
        r3 = np.float64(r[s, q + 3])
        for j in range(n_res):
            pre[j] += ((np.float64(w_res_t[q, j]) * r0 + np.float64(w_res_t[q + 1, j]) * r1)
                       + (np.float64(w_res_t[q + 2, j]) * r2 + np.float64(w_res_t[q + 3, j]) * r3))
        q += 4
    while q < n_res:
        rq = np.float64(r[s, q])
        for j in range(n_res):
            pre[j] += np.float64(w_res_t[q, j]) * rq
        q += 1
    for j in range(n_res):
        r[s, j] = (1.0 - leak) * r[s, j] + leak * math.tanh(pre[j])


@device
def readout(s, u, r, w_out, pred):
    """``pred[s] = w_out [r[s]; u; 1]`` with the stored (float32) reservoir state."""
    n_res = r.shape[1]
    n_in = u.shape[0]
    for f in range(pred.shape[1]):
        acc = np.float64(w_out[f, n_res + n_in])
        for j in range(n_res):
            acc += np.float64(w_out[f, j]) * np.float64(r[s, j])
        for k in range(n_in):
            acc += np.float64(w_out[f, n_res + k]) * np.float64(u[k])
        pred[s, f] = acc


@kernel
def esn_step_batch(slots, x, ts, kp,
                   count, last_ts, nmean, nvar, pred, sc, ring_in, ring_flag, r,
                   w_in_t, w_res_t, bias, w_out, leak,
                   u, err, msd, pre,
                   out_pred, out_z, out_err, out_score, out_flag, out_kind):
    """Advance events ``(slots[i], x[i], ts[i])`` for ``i < len(slots)``; fill the ``out_*`` rows.

    Shapes: ``x`` (N, F) float64, ``ts`` (N,) float64 seconds, per-slot arrays as in
    ``models.base.common_fields`` plus ``r`` (C, R) float32; ``u`` (D,) float32, ``err`` (F,) float64,
    ``msd`` (2, F) float64, ``pre`` (R,) float64; ``w_in_t`` (D, R) and ``w_res_t`` (R, R) are the
    transposed, C-contiguous input and reservoir matrices (``ESN`` caches them). Events of one entity must appear in time order.
    """
    n = slots.shape[0]
    for i in range(n):
        s = slots[i]
        t = ts[i]
        prefetch_common(i, slots, count, last_ts, nmean, nvar, pred, sc, ring_in, ring_flag)
        if i + 2 * AHEAD < n:
            prefetch_row(r, slots[i + 2 * AHEAD])
        flags = observe(i, x[i], t, s, count, last_ts, nmean, nvar, pred, sc, kp, u, err, msd,
                        out_pred, out_z, out_err, out_score, out_flag, out_kind)
        if flags & FLAG_LATE:
            continue
        reservoir_update(s, u, r, w_in_t, w_res_t, bias, leak, pre)
        readout(s, u, r, w_out, pred)
        finish_event(s, t, u, flags & FLAG_ANOMALY, count, last_ts, ring_in, ring_flag)
