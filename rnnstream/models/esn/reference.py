"""Plain numpy reference of the ESN step and fit, written from the maths rather than the kernel.

For tests only (slow: one Python iteration per event / sample). The model-independent half of an
event (normalise, score, history ring) calls the shared ``kernels.observe`` / ``kernels.ring``
functions from Python, since they are tested on their own; everything ESN-specific here is numpy in
float64 with the untransposed matrices, in a different loop order from the kernel.
"""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np

from ...kernels.calibrate import FLAG_ANOMALY
from ...kernels.observe import observe
from ...kernels.ring import finish_event
from ..base import BatchOutput


def reference_step(state: Mapping[str, np.ndarray], weights: Mapping[str, np.ndarray], leak: float,
                   slots: np.ndarray, x: np.ndarray, ts: np.ndarray, kp: np.ndarray,
                   out: BatchOutput) -> None:
    """What ``esn_step_batch`` must do, event by event (mutates ``state`` and ``out`` the same way)."""
    w_in = weights["w_in"].astype(np.float64)
    w_res = weights["w_res"].astype(np.float64)
    bias = weights["bias"].astype(np.float64)
    w_out = weights["w_out"].astype(np.float64)
    n_features = x.shape[1]
    u = np.zeros(w_in.shape[1], dtype=np.float32)
    err = np.zeros(n_features)
    msd = np.zeros((2, n_features))
    for i in range(len(slots)):
        s = int(slots[i])
        t = float(ts[i])
        flags = observe(i, np.ascontiguousarray(x[i], dtype=np.float64), t, s, state["count"],
                        state["last_ts"], state["nmean"], state["nvar"], state["pred"], state["sc"],
                        kp, u, err, msd, out.pred, out.z, out.err, out.score, out.flag, out.kind)
        r_old = state["r"][s].astype(np.float64)
        u64 = u.astype(np.float64)
        r_new = (1.0 - leak) * r_old + leak * np.tanh(w_in @ u64 + w_res @ r_old + bias)
        state["r"][s] = r_new.astype(np.float32)
        phi = np.concatenate([state["r"][s].astype(np.float64), u64, [1.0]])
        state["pred"][s] = (w_out @ phi).astype(np.float32)
        finish_event(s, t, u, flags & FLAG_ANOMALY, state["count"], state["last_ts"],
                     state["ring_in"], state["ring_flag"])


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
