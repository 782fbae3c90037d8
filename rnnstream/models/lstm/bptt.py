"""Loss and gradients of a (stacked) LSTM by truncated BPTT (numba, float64).

The objective is the GRU's (:mod:`rnnstream.models.gru.bptt`: same burn-in, same loss (``training.loss``),
the same head through ``head_error``/``head_backward``), with the head reading the top layer. The
layer stacking, the packing of the weights and the backward walk (top layer down at each step) are
:mod:`rnnstream.models.gru.bptt_stacked`'s. Deterministic; releases the GIL.
"""

from __future__ import annotations

from typing import Mapping

import numpy as np

from ...kernels.jit import device, trainer
from ..gru.activations import sigmoid64, tanh64
from ..gru.bptt import head_backward, head_error
from ..gru.bptt_stacked import stack_loss_and_grad
from .params import RECURRENT


@device
def _lstm_forward(x, hp, cp, w_x, w_h, b, gi, gf, gg, go, tc, hout, cout):
    H = hp.shape[0]
    for j in range(H):
        ai = b[j]
        af = b[H + j]
        ag = b[2 * H + j]
        ao = b[3 * H + j]
        for k in range(x.shape[0]):
            ai += w_x[j, k] * x[k]
            af += w_x[H + j, k] * x[k]
            ag += w_x[2 * H + j, k] * x[k]
            ao += w_x[3 * H + j, k] * x[k]
        for k in range(H):
            ai += w_h[j, k] * hp[k]
            af += w_h[H + j, k] * hp[k]
            ag += w_h[2 * H + j, k] * hp[k]
            ao += w_h[3 * H + j, k] * hp[k]
        gi[j] = sigmoid64(ai)
        gf[j] = sigmoid64(af)
        gg[j] = tanh64(ag)
        go[j] = sigmoid64(ao)
        cout[j] = gf[j] * cp[j] + gi[j] * gg[j]
        tc[j] = tanh64(cout[j])
        hout[j] = go[j] * tc[j]


@device
def _lstm_backward(dh, dc, x, hp, cp, gi, gf, gg, go, tc, w_x, w_h, da, g_w_x, g_w_h, g_b, dh_prev, dx):
    """One layer-step's gradients given ``dh``, ``dc`` (wrt its outputs): into ``g_*``; ``dh_prev`` =
    gradient wrt ``hp`` (overwritten); ``dc`` becomes the gradient wrt ``cp``; ``dx`` += gradient wrt
    ``x`` (skipped when ``dx`` is empty)."""
    H = hp.shape[0]
    for j in range(H):
        dcj = dc[j] + dh[j] * go[j] * (1.0 - tc[j] * tc[j])
        da[j] = dcj * gg[j] * gi[j] * (1.0 - gi[j])
        da[H + j] = dcj * cp[j] * gf[j] * (1.0 - gf[j])
        da[2 * H + j] = dcj * gi[j] * (1.0 - gg[j] * gg[j])
        da[3 * H + j] = dh[j] * tc[j] * go[j] * (1.0 - go[j])
        dc[j] = dcj * gf[j]
        dh_prev[j] = 0.0
    for i in range(4 * H):
        g_b[i] += da[i]
        for k in range(x.shape[0]):
            g_w_x[i, k] += da[i] * x[k]
        for k in range(H):
            g_w_h[i, k] += da[i] * hp[k]
            dh_prev[k] += da[i] * w_h[i, k]
    if dx.shape[0] > 0:
        for i in range(4 * H):
            for k in range(dx.shape[0]):
                dx[k] += da[i] * w_x[i, k]


@trainer
def lstm_bptt(windows, w_x0, w_xu, w_h, b, w_o, b_o, skip, loss_kind, want_grad,
              g_w_x0, g_w_xu, g_w_h, g_b, g_w_o, g_b_o):
    """Loss over ``windows`` (B, T, D); if ``want_grad``, *add* the gradients into the ``g_*`` arrays.

    ``w_x0`` (4H, D) is layer 0's input matrix, ``w_xu`` (L-1, 4H, H) the layers above's; ``w_h``
    (L, 4H, H) and ``b`` (L, 4H) are every layer's.
    """
    B, T, D = windows.shape
    L, _, H = w_h.shape
    F = b_o.shape[0]
    scale = 1.0 / (B * (T - 1 - skip) * F)
    hs = np.zeros((L, T + 1, H))
    cs = np.zeros((L, T + 1, H))
    gi = np.zeros((L, T, H))
    gf = np.zeros((L, T, H))
    gg = np.zeros((L, T, H))
    go = np.zeros((L, T, H))
    tc = np.zeros((L, T, H))
    e = np.zeros((T, F))
    us = np.zeros((T, D))
    dh = np.zeros((L, H))
    dc = np.zeros((L, H))
    dh_prev = np.zeros((L, H))
    da = np.zeros(4 * H)
    no_dx = np.zeros(0)
    sse = 0.0
    for bi in range(B):
        for t in range(T):
            for k in range(D):
                us[t, k] = windows[bi, t, k]
            _lstm_forward(us[t], hs[0, t], cs[0, t], w_x0, w_h[0], b[0], gi[0, t], gf[0, t], gg[0, t], go[0, t],
                          tc[0, t], hs[0, t + 1], cs[0, t + 1])
            for l in range(1, L):
                _lstm_forward(hs[l - 1, t + 1], hs[l, t], cs[l, t], w_xu[l - 1], w_h[l], b[l], gi[l, t], gf[l, t],
                              gg[l, t], go[l, t], tc[l, t], hs[l, t + 1], cs[l, t + 1])
            if skip <= t <= T - 2:
                sse = head_error(hs[L - 1, t + 1], us[t], w_o, b_o, windows[bi, t + 1], e[t], sse, loss_kind)
        if not want_grad:
            continue
        dh[:, :] = 0.0
        dc[:, :] = 0.0
        for t in range(T - 1, -1, -1):
            if skip <= t <= T - 2:
                head_backward(scale, e[t], hs[L - 1, t + 1], us[t], w_o, g_w_o, g_b_o, dh[L - 1], loss_kind)
            for l in range(L - 1, 0, -1):
                _lstm_backward(dh[l], dc[l], hs[l - 1, t + 1], hs[l, t], cs[l, t], gi[l, t], gf[l, t], gg[l, t],
                               go[l, t], tc[l, t], w_xu[l - 1], w_h[l], da, g_w_xu[l - 1], g_w_h[l], g_b[l],
                               dh_prev[l], dh[l - 1])
            _lstm_backward(dh[0], dc[0], us[t], hs[0, t], cs[0, t], gi[0, t], gf[0, t], gg[0, t], go[0, t],
                           tc[0, t], w_x0, w_h[0], da, g_w_x0, g_w_h[0], g_b[0], dh_prev[0], no_dx)
            for l in range(L):
                for k in range(H):
                    dh[l, k] = dh_prev[l, k]
    return sse * scale


def loss_and_grad(weights: Mapping[str, np.ndarray], windows: np.ndarray, layers: int,
                  want_grad: bool = True, loss: str = "absolute") -> tuple[float, dict[str, np.ndarray]]:
    """Loss of ``weights`` (float64 or float32) on ``windows`` (B, T, D) and, if asked, its gradient;
    ``loss`` a key of :data:`rnnstream.models.gru.bptt.LOSSES`."""
    return stack_loss_and_grad(lstm_bptt, RECURRENT, weights, windows, layers, want_grad, loss)
