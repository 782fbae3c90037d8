"""Loss and gradients of a stacked GRU (any number of layers) by truncated BPTT (numba, float64).

The objective is :mod:`.bptt`'s (same burn-in, same loss of the head's predictions, ``training.loss``),
with the head reading the top layer. Layer 0's input is ``u``; layer ``l``'s is layer ``l - 1``'s new
state. Backward, at each step the layers are walked from the top down, so the gradient a layer passes
to its input has reached the layer below before that layer is differentiated. The head's forward and
backward are :mod:`.bptt`'s (``head_error``, ``head_backward``).

Deterministic (fixed summation order, no threads); releases the GIL.
"""

from __future__ import annotations

from typing import Mapping

import numpy as np

from ...kernels.jit import device, trainer
from .activations import sigmoid64, tanh64
from .bptt import LOSSES, burn_in, head_backward, head_error
from .stacked import RECURRENT, layer_names


@device
def _matvec(w, x, out):
    """``out += w @ x`` for a float64 (m, n) ``w``."""
    for i in range(w.shape[0]):
        acc = 0.0
        for k in range(x.shape[0]):
            acc += w[i, k] * x[k]
        out[i] += acc


@device
def _gru_forward(x, hp, w_x, w_h, b_x, b_h, r, z, n, ghn, hout):
    H = hp.shape[0]
    for j in range(H):
        ar = b_x[j] + b_h[j]
        az = b_x[H + j] + b_h[H + j]
        axn = b_x[2 * H + j]
        ahn = b_h[2 * H + j]
        for k in range(x.shape[0]):
            ar += w_x[j, k] * x[k]
            az += w_x[H + j, k] * x[k]
            axn += w_x[2 * H + j, k] * x[k]
        for k in range(H):
            ar += w_h[j, k] * hp[k]
            az += w_h[H + j, k] * hp[k]
            ahn += w_h[2 * H + j, k] * hp[k]
        r[j] = sigmoid64(ar)
        z[j] = sigmoid64(az)
        n[j] = tanh64(axn + r[j] * ahn)
        ghn[j] = ahn
        hout[j] = (1.0 - z[j]) * n[j] + z[j] * hp[j]


@device
def _gru_backward(dh, x, hp, r, z, n, ghn, w_x, w_h, dgx, dgh, g_w_x, g_w_h, g_b_x, g_b_h, dh_prev, dx):
    """Gradients of one layer-step given ``dh`` (wrt its output): into ``g_*``; ``dh_prev`` = gradient
    wrt ``hp`` (overwritten); ``dx`` += gradient wrt ``x`` (skipped when ``dx`` is empty)."""
    H = hp.shape[0]
    for j in range(H):
        dn = dh[j] * (1.0 - z[j])
        dz = dh[j] * (hp[j] - n[j])
        dh_prev[j] = dh[j] * z[j]
        dan = dn * (1.0 - n[j] * n[j])
        dar = dan * ghn[j] * r[j] * (1.0 - r[j])
        daz = dz * z[j] * (1.0 - z[j])
        dgx[j] = dar
        dgx[H + j] = daz
        dgx[2 * H + j] = dan
        dgh[j] = dar
        dgh[H + j] = daz
        dgh[2 * H + j] = dan * r[j]
    for i in range(3 * H):
        g_b_x[i] += dgx[i]
        g_b_h[i] += dgh[i]
        for k in range(x.shape[0]):
            g_w_x[i, k] += dgx[i] * x[k]
        for k in range(H):
            g_w_h[i, k] += dgh[i] * hp[k]
            dh_prev[k] += dgh[i] * w_h[i, k]
    if dx.shape[0] > 0:
        for i in range(3 * H):
            for k in range(dx.shape[0]):
                dx[k] += dgx[i] * w_x[i, k]


@trainer
def gru_stack_bptt(windows, w_x0, w_xu, w_h, b_x, b_h, w_o, b_o, skip, loss_kind, want_grad,
                   g_w_x0, g_w_xu, g_w_h, g_b_x, g_b_h, g_w_o, g_b_o):
    """Loss over ``windows`` (B, T, D); if ``want_grad``, *add* the gradients into the ``g_*`` arrays.

    ``w_x0`` (3H, D) is layer 0's input matrix, ``w_xu`` (L-1, 3H, H) the layers above's;
    ``w_h`` (L, 3H, H), ``b_x`` and ``b_h`` (L, 3H) are every layer's.
    """
    B, T, D = windows.shape
    L, _, H = w_h.shape
    F = b_o.shape[0]
    scale = 1.0 / (B * (T - 1 - skip) * F)
    hs = np.zeros((L, T + 1, H))
    rs = np.zeros((L, T, H))
    zs = np.zeros((L, T, H))
    ns = np.zeros((L, T, H))
    ghn = np.zeros((L, T, H))
    e = np.zeros((T, F))
    us = np.zeros((T, D))
    dh = np.zeros((L, H))
    dh_prev = np.zeros((L, H))
    dgx = np.zeros(3 * H)
    dgh = np.zeros(3 * H)
    no_dx = np.zeros(0)
    sse = 0.0
    for b in range(B):
        for t in range(T):
            for k in range(D):
                us[t, k] = windows[b, t, k]
            _gru_forward(us[t], hs[0, t], w_x0, w_h[0], b_x[0], b_h[0], rs[0, t], zs[0, t], ns[0, t],
                         ghn[0, t], hs[0, t + 1])
            for l in range(1, L):
                _gru_forward(hs[l - 1, t + 1], hs[l, t], w_xu[l - 1], w_h[l], b_x[l], b_h[l], rs[l, t], zs[l, t],
                             ns[l, t], ghn[l, t], hs[l, t + 1])
            if skip <= t <= T - 2:
                sse = head_error(hs[L - 1, t + 1], us[t], w_o, b_o, windows[b, t + 1], e[t], sse, loss_kind)
        if not want_grad:
            continue
        dh[:, :] = 0.0
        for t in range(T - 1, -1, -1):
            if skip <= t <= T - 2:
                head_backward(scale, e[t], hs[L - 1, t + 1], us[t], w_o, g_w_o, g_b_o, dh[L - 1], loss_kind)
            for l in range(L - 1, 0, -1):
                _gru_backward(dh[l], hs[l - 1, t + 1], hs[l, t], rs[l, t], zs[l, t], ns[l, t], ghn[l, t],
                              w_xu[l - 1], w_h[l], dgx, dgh, g_w_xu[l - 1], g_w_h[l], g_b_x[l], g_b_h[l],
                              dh_prev[l], dh[l - 1])
            _gru_backward(dh[0], us[t], hs[0, t], rs[0, t], zs[0, t], ns[0, t], ghn[0, t], w_x0, w_h[0],
                          dgx, dgh, g_w_x0, g_w_h[0], g_b_x[0], g_b_h[0], dh_prev[0], no_dx)
            for l in range(L):
                for k in range(H):
                    dh[l, k] = dh_prev[l, k]
    return sse * scale


def stack_names(layers: int, recurrent: tuple[str, ...] = RECURRENT) -> tuple[str, ...]:
    """Every weight name of a stack: each layer's recurrent weights, then the head's."""
    return tuple(n for l in range(layers) for n in layer_names(l, recurrent)) + ("w_o", "b_o")


def pack(weights: Mapping[str, np.ndarray], layers: int, recurrent: tuple[str, ...]) -> list[np.ndarray]:
    """``[w_x0, w_xu, w_h, <biases stacked (L, gates H)>..., w_o, b_o]`` as contiguous float64 arrays."""
    f64 = np.float64

    def stacked(base: str, first: int) -> np.ndarray:
        return np.ascontiguousarray(np.stack([np.asarray(weights[layer_names(l, (base,))[0]], dtype=f64)
                                              for l in range(first, layers)]))

    w_x0 = np.ascontiguousarray(weights[recurrent[0]], dtype=f64)
    w_xu = (stacked(recurrent[0], 1) if layers > 1
            else np.zeros((0, w_x0.shape[0], np.shape(weights[recurrent[1]])[1])))
    return ([w_x0, w_xu] + [stacked(base, 0) for base in recurrent[1:]]
            + [np.ascontiguousarray(weights[k], dtype=f64) for k in ("w_o", "b_o")])


def unpack(arrays: list[np.ndarray], layers: int, recurrent: tuple[str, ...]) -> dict[str, np.ndarray]:
    """Inverse of :func:`pack`: arrays back to named weights (copies)."""
    out = {recurrent[0]: arrays[0].copy()}
    for l in range(1, layers):
        out[layer_names(l, recurrent[:1])[0]] = arrays[1][l - 1].copy()
    for base, arr in zip(recurrent[1:], arrays[2:-2]):
        for l in range(layers):
            out[layer_names(l, (base,))[0]] = arr[l].copy()
    out["w_o"], out["b_o"] = arrays[-2].copy(), arrays[-1].copy()
    return out


def stack_loss_and_grad(batch_kernel, recurrent: tuple[str, ...], weights: Mapping[str, np.ndarray],
                        windows: np.ndarray, layers: int, want_grad: bool = True, loss: str = "absolute"
                        ) -> tuple[float, dict[str, np.ndarray]]:
    """Loss of ``weights`` (a stack of ``layers``) on ``windows`` and, if asked, its gradient, through
    ``batch_kernel`` (:func:`gru_stack_bptt` or the LSTM's, called with :func:`pack`'s arrays)."""
    T = windows.shape[1]
    if windows.ndim != 3 or T < 2 or windows.shape[0] < 1:
        raise ValueError(f"training windows must be (B >= 1, T >= 2, D), got {windows.shape}")
    if loss not in LOSSES:
        raise ValueError(f"unknown loss {loss!r}; expected one of {sorted(LOSSES)}")
    w = pack(weights, layers, recurrent)
    g = [np.zeros_like(a) for a in w]
    value = batch_kernel(np.ascontiguousarray(windows), *w, burn_in(T), LOSSES[loss], want_grad, *g)
    return float(value), unpack(g, layers, recurrent)


def loss_and_grad(weights: Mapping[str, np.ndarray], windows: np.ndarray, layers: int,
                  want_grad: bool = True, loss: str = "absolute") -> tuple[float, dict[str, np.ndarray]]:
    """:func:`stack_loss_and_grad` for the GRU."""
    return stack_loss_and_grad(gru_stack_bptt, RECURRENT, weights, windows, layers, want_grad, loss)
