"""The ESN's batch step: one numba loop over a micro-batch of events in arrival order.

Per event ``i`` of entity ``s = slots[i]``: the shared ``observe`` (normalise, score the prediction
made at the entity's previous event), then the reservoir update

    r' = (1 - a) r + a tanh(w_in u + w_res r + bias)

then the next prediction ``pred[s] = w_out [r'; u; 1]``, then the shared ``finish_event`` (history
ring, event count). Everything model-specific is float32, with the rational ``tanh32`` of
``models.gru.activations`` (within 4e-7 of tanh).

The reservoir update and readout of an event are deferred: up to ``GROUP`` events of *different*
entities are staged as the columns of ``z`` (R + D, GROUP) = ``[r; u]`` and advanced together, each
product term one vector operation over the group (:mod:`rnnstream.kernels.lanes`), the reservoir
stored as CSR so that it costs its non-zeros only. The group is advanced when it is full, before an
event of an entity already in it is observed (that event needs the entity's new prediction), and at
the end of the call, so every event sees exactly the state it would see one at a time. A lane's
arithmetic does not depend on the other lanes, so the results are bit-identical however the events
fall into groups (batching, arrival order of other entities); ``reference.reference_step`` is the
plain numpy statement of them.

Terms of reservoir row ``j`` are summed as ``reservoir_csr`` stores them: ``bias[j]``, then the input
terms ``w_in[j, k] u[k]`` in ``k`` order, then the non-zero ``w_res[j, q] r[q]`` in ``q`` order; the
readout ``w_out[f, R + D]``, then ``w_out[f, c] [r'; u][c]`` in ``c`` order. Measured (R=200, sparsity
0.9, 10k random entities, ``benchmarks/bench_esn_step.py``): see docs/performance.md.
Nothing is allocated inside: ``u``, ``err``, ``msd``, ``z``, ``pre``, ``pacc``, ``ob`` and ``members``
are caller scratch.
"""

from __future__ import annotations

import numpy as np

from ...kernels.calibrate import FLAG_ANOMALY, FLAG_LATE
from ...kernels.jit import device, kernel
from ...kernels.lanes import csr_lanes, dense_lanes
from ...kernels.observe import observe
from ...kernels.prefetch import AHEAD, prefetch_common, prefetch_row
from ...kernels.ring import finish_event
from ..gru.activations import tanh32

GROUP = 16  # entities advanced together: one 512-bit vector (two 256-bit) a term; 32 measured no faster


def reservoir_csr(w_in: np.ndarray, w_res: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(ptr, col, val)``: the rows of ``[w_res | w_in]`` acting on ``z = [r; u]`` as CSR.

    Row ``j`` holds every input weight ``w_in[j, k]`` (column ``R + k``, zero or not: the inputs are
    dense), then the non-zero ``w_res[j, q]`` (column ``q``) in increasing ``q``.
    """
    n_res, n_in = w_in.shape
    nz = w_res != 0
    counts = n_in + nz.sum(axis=1)
    ptr = np.zeros(n_res + 1, dtype=np.int64)
    np.cumsum(counts, out=ptr[1:])
    col = np.empty(int(ptr[-1]), dtype=np.int32)
    val = np.empty(int(ptr[-1]), dtype=np.float32)
    for j in range(n_res):
        q = np.flatnonzero(nz[j])
        col[ptr[j]:ptr[j + 1]] = np.concatenate([n_res + np.arange(n_in), q])
        val[ptr[j]:ptr[j + 1]] = np.concatenate([w_in[j], w_res[j, q]])
    return ptr, col, val


@device
def in_group(s, members, g):
    """Whether entity ``s`` is among the ``g`` staged entities."""
    for e in range(g):
        if members[e] == s:
            return True
    return False


@device
def stage(g, s, u, r, z, members):
    """Column ``g`` of ``z`` := ``[r[s]; u]``: entity ``s`` joins the group."""
    n_res = r.shape[1]
    for j in range(n_res):
        z[j, g] = r[s, j]
    for k in range(u.shape[0]):
        z[n_res + k, g] = u[k]
    members[g] = s


@device
def advance(g, r, pred, ptr, col, val, bias, w_out, leak, z, pre, pacc, ob, members):
    """Reservoir update and readout of the ``g`` staged entities; writes their ``r`` and ``pred`` rows."""
    n_res = r.shape[1]
    keep = np.float32(1.0) - leak
    csr_lanes(ptr, col, val, bias, z, pre)
    for j in range(n_res):
        for e in range(z.shape[1]):
            z[j, e] = keep * z[j, e] + leak * tanh32(pre[j, e])
    dense_lanes(w_out, ob, z, pacc)
    for e in range(g):
        s = members[e]
        for j in range(n_res):
            r[s, j] = z[j, e]
        for f in range(pred.shape[1]):
            pred[s, f] = pacc[f, e]


@kernel
def esn_step_batch(slots, x, ts, kp,
                   count, last_ts, nmean, nvar, pred, sc, pool_row, ring_in, ring_t, ring_flag, r,
                   ptr, col, val, bias, w_out, leak,
                   u, err, msd, z, pre, pacc, ob, members,
                   out_pred, out_z, out_err, out_score, out_flag, out_kind):
    """Advance events ``(slots[i], x[i], ts[i])`` for ``i < len(slots)``; fill the ``out_*`` rows.

    Shapes: ``x`` (N, F) float64, ``ts`` (N,) float64 seconds, per-slot arrays as in
    ``models.base.common_fields`` plus ``r`` (C, R) float32; ``(ptr, col, val)`` from
    ``reservoir_csr``, ``bias`` (R,) and ``w_out`` (F, R + D + 1) float32, ``leak`` float32; scratch
    ``u`` (D,) float32, ``err`` (F,) and ``msd`` (2, F) float64, ``z`` (R + D, G), ``pre`` (R, G),
    ``pacc`` (F, G), ``ob`` (F,) float32 and ``members`` (G,) int64, G a multiple of 16.
    Events of one entity must appear in time order.
    """
    n = slots.shape[0]
    n_res = r.shape[1]
    for f in range(ob.shape[0]):
        ob[f] = w_out[f, n_res + u.shape[0]]
    g = 0
    for i in range(n + 1):
        # one call site for the group's update (it is inlined): when full, before a second event of
        # one of its entities, and at the end
        if g > 0 and (i == n or g == z.shape[1] or in_group(slots[i], members, g)):
            advance(g, r, pred, ptr, col, val, bias, w_out, leak, z, pre, pacc, ob, members)
            g = 0
        if i == n:
            break
        s = slots[i]
        t = ts[i]
        prefetch_common(i, slots, count, last_ts, nmean, nvar, pred, sc, pool_row, ring_in, ring_t, ring_flag)
        if i + 2 * AHEAD < n:
            prefetch_row(r, slots[i + 2 * AHEAD])
        flags = observe(i, x[i], t, s, count, last_ts, nmean, nvar, pred, pred[:0], sc, kp, u, err, msd,
                        out_pred, out_z, out_err, out_score, out_flag, out_kind)
        if flags & FLAG_LATE:
            continue
        stage(g, s, u, r, z, members)
        g += 1
        finish_event(s, t, u, x.shape[1], flags & FLAG_ANOMALY, count, last_ts, pool_row, ring_in, ring_t, ring_flag)
