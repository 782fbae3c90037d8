"""Plain numpy references of the ESN step and fit, written from the maths rather than the kernel.

For tests only (slow: one Python iteration per event / sample). The model-independent half of an
event (normalise, score, history ring) calls the shared ``kernels.observe`` / ``kernels.ring``
functions from Python, since they are tested on their own; everything ESN-specific is numpy on the
untransposed dense matrices, one event at a time (no grouping, no CSR).

``reference_step`` is the kernel's float32 arithmetic in its documented order (``kernel`` module
docstring), so the kernel must match it bit for bit; ``reference_step_float64`` is the same model in
float64 with the exact ``tanh``, which the float32 kernel must stay close to.
"""

from __future__ import annotations

from typing import Any, Callable, Mapping

import numpy as np

from ...kernels.calibrate import FLAG_ANOMALY, FLAG_LATE
from ...kernels.observe import observe
from ...kernels.ring import finish_event
from ..base import BatchOutput
from ..gru.activations import (_CLIP, _INV_CLIP, _ONE, _P0, _P1, _P2, _P3, _P4, _P5, _P6, _Q0, _Q1, _Q2,
                               _Q3)

_F32 = np.float32


def tanh32(x: np.ndarray) -> np.ndarray:
    """numpy float32 ``models.gru.activations.tanh32``, operation for operation."""
    a = np.minimum(np.maximum(x * _INV_CLIP, -_ONE), _ONE)
    t = a * a
    p = ((((((_P6 * t + _P5) * t + _P4) * t + _P3) * t + _P2) * t + _P1) * t + _P0)
    q = ((_Q3 * t + _Q2) * t + _Q1) * t + _Q0
    return np.minimum(np.maximum(a * p / q, -_ONE), _ONE)


def reservoir_float32(w_in: np.ndarray, w_res: np.ndarray, bias: np.ndarray, leak: float,
                      r: np.ndarray, u: np.ndarray) -> np.ndarray:
    """One float32 reservoir update of state ``r`` (R,) with input ``u`` (D,), in the kernel's order:
    ``bias[j]``, then ``+ w_in[j, k] u[k]`` for k = 0, 1, ..., then ``+ w_res[j, q] r[q]`` for each
    non-zero ``w_res[j, q]`` in increasing q; tanh32; then ``(1 - a) r + a t``."""
    pre = bias.astype(_F32)
    for k in range(u.shape[0]):
        pre = pre + w_in[:, k] * u[k]
    for q in range(r.shape[0]):
        rows = w_res[:, q] != 0
        pre[rows] = pre[rows] + w_res[rows, q] * r[q]
    a = _F32(leak)
    return (_F32(1.0) - a) * r + a * tanh32(pre)


def readout_float32(w_out: np.ndarray, phi: np.ndarray) -> np.ndarray:
    """float32 ``w_out [phi; 1]``: the bias column first, then ``+ w_out[:, c] phi[c]`` in c order."""
    acc = w_out[:, phi.shape[0]].astype(_F32)
    for c in range(phi.shape[0]):
        acc = acc + w_out[:, c] * phi[c]
    return acc


def _run_events(state: Mapping[str, np.ndarray], n_inputs: int, slots: np.ndarray, x: np.ndarray,
                ts: np.ndarray, kp: np.ndarray, out: BatchOutput, advance: Callable[[int, np.ndarray], None]) -> None:
    """The event loop both references share: observe, then ``advance(s, u)`` (the model's update of
    ``state["r"][s]`` and ``state["pred"][s]``), then the history ring; late events are skipped."""
    n_features = x.shape[1]
    u = np.zeros(n_inputs, dtype=_F32)
    err = np.zeros(n_features)
    msd = np.zeros((2, n_features))
    for i in range(len(slots)):
        s = int(slots[i])
        t = float(ts[i])
        flags = observe(i, np.ascontiguousarray(x[i], dtype=np.float64), t, s, state["count"],
                        state["last_ts"], state["nmean"], state["nvar"], state["pred"], state["pred"][:0], state["sc"],
                        kp, u, err, msd, out.pred, out.z, out.err, out.score, out.flag, out.kind)
        if flags & FLAG_LATE:
            continue
        advance(s, u)
        finish_event(s, t, u, x.shape[1], flags & FLAG_ANOMALY, state["count"], state["last_ts"],
                     state["pool_row"], state["ring_in"], state["ring_t"], state["ring_flag"])


def reference_step(state: Mapping[str, np.ndarray], weights: Mapping[str, np.ndarray], leak: float,
                   slots: np.ndarray, x: np.ndarray, ts: np.ndarray, kp: np.ndarray,
                   out: BatchOutput) -> None:
    """What ``esn_step_batch`` must do, bit for bit, event by event (mutates ``state`` and ``out``)."""
    w = {k: np.asarray(weights[k], dtype=_F32) for k in ("w_in", "w_res", "bias", "w_out")}

    def advance(s: int, u: np.ndarray) -> None:
        state["r"][s] = reservoir_float32(w["w_in"], w["w_res"], w["bias"], leak, state["r"][s], u)
        state["pred"][s] = readout_float32(w["w_out"], np.concatenate([state["r"][s], u]))

    _run_events(state, w["w_in"].shape[1], slots, x, ts, kp, out, advance)


def reference_step_float64(state: Mapping[str, np.ndarray], weights: Mapping[str, np.ndarray], leak: float,
                           slots: np.ndarray, x: np.ndarray, ts: np.ndarray, kp: np.ndarray,
                           out: BatchOutput) -> None:
    """The model in float64 with the exact tanh (state and prediction still stored as float32)."""
    w_in, w_res, bias, w_out = (weights[k].astype(np.float64) for k in ("w_in", "w_res", "bias", "w_out"))

    def advance(s: int, u: np.ndarray) -> None:
        r_old = state["r"][s].astype(np.float64)
        u64 = u.astype(np.float64)
        r_new = (1.0 - leak) * r_old + leak * np.tanh(w_in @ u64 + w_res @ r_old + bias)
        state["r"][s] = r_new.astype(np.float32)
        phi = np.concatenate([state["r"][s].astype(np.float64), u64, [1.0]])
        state["pred"][s] = (w_out @ phi).astype(np.float32)

    _run_events(state, w_in.shape[1], slots, x, ts, kp, out, advance)


def reference_fit(weights: Mapping[str, np.ndarray], opt_state: Mapping[str, np.ndarray],
                  windows: np.ndarray, params: Any, n_features: int) -> dict[str, Any]:
    """The readout update, one sample at a time: returns ``w_out``, ``A``, ``b``, ``count``, losses."""
    w_in = weights["w_in"].astype(np.float64)
    w_res = weights["w_res"].astype(np.float64)
    bias = weights["bias"].astype(np.float64)
    leak = float(params.leak_rate)
    n_win, n_steps, n_in = windows.shape
    n = w_res.shape[0] + n_in + 1
    skip = min(n_steps // 4, 16)
    feats, targets = [], []
    for b in range(n_win):
        r = np.zeros(w_res.shape[0])
        for t in range(n_steps):
            u = windows[b, t].astype(np.float64)
            r = (1.0 - leak) * r + leak * np.tanh(w_in @ u + w_res @ r + bias)
            if skip <= t < n_steps - 1:
                feats.append(np.concatenate([r, u, [1.0]]))
                targets.append(windows[b, t + 1, :n_features].astype(np.float64))
    a = np.array(opt_state.get("A", np.zeros((n, n))), dtype=np.float64)
    bb = np.array(opt_state.get("b", np.zeros((n, n_features))), dtype=np.float64)
    a *= float(params.forgetting) ** len(feats)
    bb *= float(params.forgetting) ** len(feats)
    for phi, y in zip(feats, targets):
        a += np.outer(phi, phi)
        bb += np.outer(phi, y)
    lam = float(params.ridge) * np.trace(a) / n
    w_new = np.linalg.solve(a + lam * np.eye(n), bb).T

    def loss(w: np.ndarray) -> float:
        return float(np.mean([(w.astype(np.float64) @ p - y) ** 2 for p, y in zip(feats, targets)]))

    return {"w_out": w_new, "A": a, "b": bb,
            "count": int(opt_state.get("count", 0)) + len(feats),
            "loss_before": loss(weights["w_out"]), "loss_after": loss(w_new)}
