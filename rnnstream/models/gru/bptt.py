"""Loss and gradients of the GRU by back-propagation through time over a batch of windows (numba, float64).

Objective (shared with :mod:`.bptt_reference`): for each window ``u[0..T-1]`` (B, T, D), run the GRU from
``h0 = 0``; at step ``t`` the head predicts ``u[t+1][:F]`` from ``[h_t; u_t]``. The loss is the mean
absolute error (``LOSS_ABSOLUTE``, the default: the median forecast, which bursts and jumps do not pull
away from persistence, measured as the scorer measures residuals) or the mean squared error
(``LOSS_SQUARED``) over windows, features and the steps ``burn_in(T) <= t <= T-2`` (the first
predictions, made from a cold state, are left out). The absolute error's gradient at an error of
exactly 0 is taken as 0. Gradients flow through the whole window and stop at its start
(truncated BPTT with truncation length T).

The kernel releases the GIL, so training can run in a thread beside scoring. Deterministic: a fixed
summation order, no threads.
"""

from __future__ import annotations

import numpy as np

from ...kernels.jit import device, trainer
from .activations import sigmoid64, tanh64

GRAD_ORDER = ("w_x", "w_h", "b_x", "b_h", "w_o", "b_o")
LOSS_ABSOLUTE = 0
LOSS_SQUARED = 1
LOSSES = {"absolute": LOSS_ABSOLUTE, "squared": LOSS_SQUARED}


def burn_in(window: int) -> int:
    """Predictions at the start of a window that the loss skips."""
    return min(8, window // 4)


@device
def head_error(h, u, w_o, b_o, target, e, sse, loss_kind):
    """The head's prediction errors ``e[f] = w_o[f] . [h; u] + b_o[f] - target[f]``; returns ``sse`` plus
    their losses (squares or absolute values by ``loss_kind``, added one by one, in feature order).
    Shared with the other recurrent models' BPTT."""
    H = h.shape[0]
    for f in range(b_o.shape[0]):
        y = b_o[f]
        for k in range(H):
            y += w_o[f, k] * h[k]
        for k in range(u.shape[0]):
            y += w_o[f, H + k] * u[k]
        d = y - target[f]
        e[f] = d
        if loss_kind == LOSS_SQUARED:
            sse += d * d
        else:
            sse += abs(d)
    return sse


@device
def head_backward(scale, e, h, u, w_o, g_w_o, g_b_o, dh, loss_kind):
    """Back-propagate the loss term ``scale * sum_f loss(e[f])`` through the head: add into ``g_w_o``,
    ``g_b_o`` and the gradient ``dh`` of the top hidden state."""
    H = h.shape[0]
    for f in range(g_b_o.shape[0]):
        d = e[f]
        if loss_kind == LOSS_SQUARED:
            dy = 2.0 * scale * d
        else:
            dy = scale * ((d > 0.0) - (d < 0.0))
        g_b_o[f] += dy
        for k in range(H):
            g_w_o[f, k] += dy * h[k]
            dh[k] += dy * w_o[f, k]
        for k in range(u.shape[0]):
            g_w_o[f, H + k] += dy * u[k]


@trainer
def bptt_batch(windows, w_x, w_h, b_x, b_h, w_o, b_o, skip, loss_kind, want_grad,
               g_w_x, g_w_h, g_b_x, g_b_h, g_w_o, g_b_o):
    """Return the loss over ``windows``; if ``want_grad``, *add* its gradients into the ``g_*`` arrays.

    Weights and gradients are float64; ``windows`` may be float32. ``skip`` is the burn-in,
    ``loss_kind`` one of ``LOSSES``' values.
    """
    B, T, D = windows.shape
    H = w_h.shape[1]
    F = b_o.shape[0]
    H2 = 2 * H
    H3 = 3 * H
    n_terms = B * (T - 1 - skip) * F
    scale = 1.0 / n_terms
    # Transposed weights: the forward matvecs run over the gate index innermost, so they vectorise
    # while every gate's sum keeps the order of the scalar form (bias, then inputs k = 0..D-1, then
    # hidden k = 0..H-1), and so its exact value.
    w_xt = np.ascontiguousarray(w_x.T)
    w_ht = np.ascontiguousarray(w_h.T)
    acc = np.zeros(H3)
    accn = np.zeros(H)
    hs = np.zeros((T + 1, H))
    rs = np.zeros((T, H))
    zs = np.zeros((T, H))
    ns = np.zeros((T, H))
    ghn = np.zeros((T, H))
    e = np.zeros((T, F))
    u = np.zeros(D)
    dh = np.zeros(H)
    dh_prev = np.zeros(H)
    dgx = np.zeros(3 * H)
    dgh = np.zeros(3 * H)
    sse = 0.0
    for b in range(B):
        for t in range(T):
            for k in range(D):
                u[k] = windows[b, t, k]
            for i in range(H2):
                acc[i] = b_x[i] + b_h[i]
            for i in range(H2, H3):
                acc[i] = b_x[i]
            for i in range(H):
                accn[i] = b_h[H2 + i]
            for k in range(D):
                uk = u[k]
                for i in range(H3):
                    acc[i] += w_xt[k, i] * uk
            for k in range(H):
                hk = hs[t, k]
                for i in range(H2):
                    acc[i] += w_ht[k, i] * hk
                for i in range(H):
                    accn[i] += w_ht[k, H2 + i] * hk
            for j in range(H):
                rs[t, j] = sigmoid64(acc[j])
            for j in range(H):
                zs[t, j] = sigmoid64(acc[H + j])
            for j in range(H):
                ahn = accn[j]
                n = tanh64(acc[H2 + j] + rs[t, j] * ahn)
                ns[t, j] = n
                ghn[t, j] = ahn
                z = zs[t, j]
                hs[t + 1, j] = (1.0 - z) * n + z * hs[t, j]
            if skip <= t <= T - 2:
                sse = head_error(hs[t + 1], u, w_o, b_o, windows[b, t + 1], e[t], sse, loss_kind)
        if not want_grad:
            continue
        dh[:] = 0.0
        for t in range(T - 1, -1, -1):
            for k in range(D):
                u[k] = windows[b, t, k]
            if skip <= t <= T - 2:
                head_backward(scale, e[t], hs[t + 1], u, w_o, g_w_o, g_b_o, dh, loss_kind)
            for j in range(H):
                r = rs[t, j]
                z = zs[t, j]
                n = ns[t, j]
                dn = dh[j] * (1.0 - z)
                dz = dh[j] * (hs[t, j] - n)
                dh_prev[j] = dh[j] * z
                dan = dn * (1.0 - n * n)
                dar = dan * ghn[t, j] * r * (1.0 - r)
                daz = dz * z * (1.0 - z)
                dgx[j] = dar
                dgx[H + j] = daz
                dgx[2 * H + j] = dan
                dgh[j] = dar
                dgh[H + j] = daz
                dgh[2 * H + j] = dan * r
            for i in range(H3):
                dx = dgx[i]
                dhi = dgh[i]
                g_b_x[i] += dx
                g_b_h[i] += dhi
                for k in range(D):
                    g_w_x[i, k] += dx * u[k]
                for k in range(H):
                    g_w_h[i, k] += dhi * hs[t, k]
                    dh_prev[k] += dhi * w_h[i, k]
            for k in range(H):
                dh[k] = dh_prev[k]
    return sse * scale


def loss_and_grad(weights: dict[str, np.ndarray], windows: np.ndarray, want_grad: bool = True,
                  loss: str = "absolute") -> tuple[float, dict[str, np.ndarray]]:
    """Loss of float64 ``weights`` on ``windows`` (B, T, D) and, if asked, its gradient (new arrays).

    ``loss`` is a key of ``LOSSES``."""
    w = {k: np.ascontiguousarray(weights[k], dtype=np.float64) for k in GRAD_ORDER}
    grads = {k: np.zeros_like(w[k]) for k in GRAD_ORDER}
    T = windows.shape[1]
    if T < 2 or windows.shape[0] < 1:
        raise ValueError(f"training windows must be (B >= 1, T >= 2, D), got {windows.shape}")
    if loss not in LOSSES:
        raise ValueError(f"unknown loss {loss!r}; expected one of {sorted(LOSSES)}")
    value = bptt_batch(np.ascontiguousarray(windows), *(w[k] for k in GRAD_ORDER), burn_in(T), LOSSES[loss],
                       want_grad, *(grads[k] for k in GRAD_ORDER))
    return float(value), grads
