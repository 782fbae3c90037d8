"""Loss and gradients of the GRU by back-propagation through time over a batch of windows (numba, float64).

Objective (shared with :mod:`.bptt_reference`): for each window ``u[0..T-1]`` (B, T, D), run the GRU from
``h0 = 0``; at step ``t`` the head predicts ``u[t+1][:F]`` from ``[h_t; u_t]``. The loss is the mean
absolute error (``LOSS_ABSOLUTE``, the default: the median forecast, which bursts and jumps do not pull
away from persistence, measured as the scorer measures residuals) or the mean squared error
(``LOSS_SQUARED``) over windows, features and the steps ``burn_in(T) <= t <= T-2`` (the first
predictions, made from a cold state, are left out). The absolute error's gradient at an error of
exactly 0 is taken as 0. Gradients flow through the whole window and stop at its start
(truncated BPTT with truncation length T).

**Scale head** (optional; ``w_s`` (F, H+D), ``b_s`` (F,), ``c_s`` (F,) non-empty): a second linear head
on the same ``[h_t; u_t]`` predicts each feature's log-scale ``l = c_s + b_s + w_s . [h; u]``, clamped
to ``[-LOGB_MAX, LOGB_MAX]``, and the loss becomes the negative log-likelihood of the error ``e``
under a Laplace law of scale ``b = exp(l)`` for the absolute error (``|e| / b + log b``, up to a
constant) or twice that of a Gaussian of standard deviation ``b`` for the squared error
(``e^2 / b^2 + 2 log b``); both equal the plain loss at ``l = 0``, gradient included, so a zero scale
head trains the mean head exactly as without it (the prediction's gradient is divided by ``b``
(``b^2``) where the head expects a larger error, as DeepAR's likelihood does). ``c_s`` is the
level the scorer does not use: the step kernel applies ``b_s + w_s . [h; u]`` only (see
:func:`scale_level`). Outside the clamp the log-scale's gradient is 0.

The kernel releases the GIL, so training can run in a thread beside scoring. Deterministic: a fixed
summation order, no threads.
"""

from __future__ import annotations

import math
from typing import Mapping

import numpy as np

from ...kernels.jit import device, trainer
from .activations import sigmoid64, tanh64
from .params import LOGB_MAX, SCALE_NAMES

GRAD_ORDER = ("w_x", "w_h", "b_x", "b_h", "w_o", "b_o")
SCALE_ORDER = SCALE_NAMES   # the scale head's weights, present only when it is on
LOSS_ABSOLUTE = 0
LOSS_SQUARED = 1
LOSSES = {"absolute": LOSS_ABSOLUTE, "squared": LOSS_SQUARED}


def burn_in(window: int) -> int:
    """Predictions at the start of a window that the loss skips."""
    return min(8, window // 4)


@device
def head_row(w, b, f, h, u):
    """``b[f] + w[f] . [h; u]``, summed in that order (a linear head's output ``f``)."""
    H = h.shape[0]
    y = b[f]
    for k in range(H):
        y += w[f, k] * h[k]
    for k in range(u.shape[0]):
        y += w[f, H + k] * u[k]
    return y


@device
def row_backward(dy, f, h, u, w, g_w, dh):
    """Back-propagate ``dy``, the gradient of :func:`head_row`'s output ``f``, into ``g_w[f]`` and ``dh``."""
    H = h.shape[0]
    for k in range(H):
        g_w[f, k] += dy * h[k]
        dh[k] += dy * w[f, k]
    for k in range(u.shape[0]):
        g_w[f, H + k] += dy * u[k]


@device
def head_error(h, u, w_o, b_o, target, e, sse, loss_kind):
    """The head's prediction errors ``e[f] = w_o[f] . [h; u] + b_o[f] - target[f]``; returns ``sse`` plus
    their losses (squares or absolute values by ``loss_kind``, added one by one, in feature order).
    Shared with the other recurrent models' BPTT."""
    for f in range(b_o.shape[0]):
        d = head_row(w_o, b_o, f, h, u) - target[f]
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
    for f in range(g_b_o.shape[0]):
        d = e[f]
        if loss_kind == LOSS_SQUARED:
            dy = 2.0 * scale * d
        else:
            dy = scale * ((d > 0.0) - (d < 0.0))
        g_b_o[f] += dy
        row_backward(dy, f, h, u, w_o, g_w_o, dh)


@device
def scale_head_loss(h, u, w_s, b_s, c_s, e, ls, sse, loss_kind, stats):
    """The scale head's log-scales ``ls[f] = c_s[f] + b_s[f] + w_s[f] . [h; u]`` (unclamped) for the
    errors ``e``; returns ``sse`` plus the likelihood terms (see the module docstring). Adds the applied
    log-scale ``g = ls[f] - c_s[f]`` (clamped) into ``stats[0, f]`` and the error measured in its units
    (``|e| exp(-g)``, or ``e^2 exp(-2 g)`` for the squared error) into ``stats[1, f]``."""
    for f in range(b_s.shape[0]):
        y = head_row(w_s, b_s, f, h, u)
        g = min(max(y, -LOGB_MAX), LOGB_MAX)
        y += c_s[f]
        ls[f] = y
        lc = min(max(y, -LOGB_MAX), LOGB_MAX)
        d = e[f]
        stats[0, f] += g
        if loss_kind == LOSS_SQUARED:
            sse += d * d * math.exp(-2.0 * lc) + 2.0 * lc
            stats[1, f] += d * d * math.exp(-2.0 * g)
        else:
            sse += abs(d) * math.exp(-lc) + lc
            stats[1, f] += abs(d) * math.exp(-g)
    return sse


@device
def scale_head_backward(scale, e, ls, h, u, w_s, g_w_s, g_b_s, g_c_s, dh, half_de, loss_kind):
    """Back-propagate ``scale`` times the likelihood terms through the scale head (into ``g_w_s``,
    ``g_b_s``, ``g_c_s``, ``dh``) and write half of each term's derivative by its error into
    ``half_de``: :func:`head_backward` with ``LOSS_SQUARED`` then carries ``2 * half_de`` through the
    mean head."""
    for f in range(g_b_s.shape[0]):
        d = e[f]
        y = ls[f]
        inside = -LOGB_MAX < y < LOGB_MAX
        lc = min(max(y, -LOGB_MAX), LOGB_MAX)
        if loss_kind == LOSS_SQUARED:
            q = math.exp(-2.0 * lc)
            half_de[f] = d * q
            dl = (2.0 - 2.0 * d * d * q) * scale
        else:
            q = math.exp(-lc)
            half_de[f] = 0.5 * ((d > 0.0) - (d < 0.0)) * q
            dl = (1.0 - abs(d) * q) * scale
        if not inside:
            continue
        g_c_s[f] += dl
        g_b_s[f] += dl
        row_backward(dl, f, h, u, w_s, g_w_s, dh)


@device
def add_outer_products4(g, d, x, t):
    """``g[k, i] += d[s, i] * x[s, k]`` for the steps ``s = t, t - 1, t - 2, t - 3`` in that order, the
    four terms of each element added one by one (``g`` (K, N) a transposed weight gradient, ``d`` the
    gate gradients by step, ``x`` the inputs or hidden states by step)."""
    for k in range(g.shape[0]):
        x0 = x[t, k]
        x1 = x[t - 1, k]
        x2 = x[t - 2, k]
        x3 = x[t - 3, k]
        for i in range(g.shape[1]):
            a = g[k, i] + d[t, i] * x0
            a = a + d[t - 1, i] * x1
            a = a + d[t - 2, i] * x2
            g[k, i] = a + d[t - 3, i] * x3


@trainer
def bptt_batch(windows, w_x, w_h, b_x, b_h, w_o, b_o, skip, loss_kind, want_grad,
               g_w_x, g_w_h, g_b_x, g_b_h, g_w_o, g_b_o,
               w_s, b_s, c_s, g_w_s, g_b_s, g_c_s, stats):
    """Return the loss over ``windows``; if ``want_grad``, *add* its gradients into the ``g_*`` arrays.

    Weights and gradients are float64; ``windows`` may be float32. ``skip`` is the burn-in,
    ``loss_kind`` one of ``LOSSES``' values. The scale head is on when ``b_s`` is not empty (all its
    arrays have F rows then, 0 otherwise); ``stats`` (2, F) then receives sums over the scored steps
    (see :func:`scale_head_loss`).
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
    # hidden k = 0..H-1), and so its exact value. ``acc`` holds the sums of a step as [n's input part |
    # r | z | n's hidden part], so that the input terms (w_xt's columns in the order n, r, z) and the
    # hidden terms (w_h's rows r, z, n) each run as one loop over 3H gates; the terms of four inputs
    # (hidden units) are added in one pass, still one by one in their order.
    H4 = 4 * H
    w_xt = np.empty((D, H3))
    for k in range(D):
        for i in range(H):
            w_xt[k, i] = w_x[H2 + i, k]
        for i in range(H2):
            w_xt[k, H + i] = w_x[i, k]
    w_ht = np.ascontiguousarray(w_h.T)
    bias = np.empty(H4)
    for i in range(H):
        bias[i] = b_x[H2 + i]
        bias[H3 + i] = b_h[H2 + i]
    for i in range(H2):
        bias[H + i] = b_x[i] + b_h[i]
    acc = np.zeros(H4)
    rz = np.zeros((T, H2))   # r then z
    hs = np.zeros((T + 1, H))
    ns = np.zeros((T, H))
    ghn = np.zeros((T, H))
    e = np.zeros((T, F))
    u = np.zeros(D)
    dh = np.zeros(H)
    dh_prev = np.zeros(H)
    dgx = np.zeros((T, H3))   # a window's gate gradients by step, for its weight gradients
    dgh = np.zeros((T, H3))
    uw = np.zeros((T, D))     # its inputs as float64
    scaled = b_s.shape[0] > 0
    ls = np.zeros((T, b_s.shape[0]))
    half_de = np.zeros(F)
    sse = 0.0
    # The input and recurrent weight gradients accumulate transposed (each element's additions in the
    # same order), so that their outer-product updates run over the 3H gates innermost.
    g_w_xt = np.ascontiguousarray(g_w_x.T)
    g_w_ht = np.ascontiguousarray(g_w_h.T)
    for b in range(B):
        for t in range(T):
            for k in range(D):
                u[k] = windows[b, t, k]
            for i in range(H4):
                acc[i] = bias[i]
            k = 0
            while k + 4 <= D:
                uk0 = u[k]
                uk1 = u[k + 1]
                uk2 = u[k + 2]
                uk3 = u[k + 3]
                for i in range(H3):
                    a = acc[i] + w_xt[k, i] * uk0
                    a = a + w_xt[k + 1, i] * uk1
                    a = a + w_xt[k + 2, i] * uk2
                    acc[i] = a + w_xt[k + 3, i] * uk3
                k += 4
            while k < D:
                uk0 = u[k]
                for i in range(H3):
                    acc[i] += w_xt[k, i] * uk0
                k += 1
            k = 0
            while k + 4 <= H:
                hk0 = hs[t, k]
                hk1 = hs[t, k + 1]
                hk2 = hs[t, k + 2]
                hk3 = hs[t, k + 3]
                for i in range(H3):
                    a = acc[H + i] + w_ht[k, i] * hk0
                    a = a + w_ht[k + 1, i] * hk1
                    a = a + w_ht[k + 2, i] * hk2
                    acc[H + i] = a + w_ht[k + 3, i] * hk3
                k += 4
            while k < H:
                hk0 = hs[t, k]
                for i in range(H3):
                    acc[H + i] += w_ht[k, i] * hk0
                k += 1
            for j in range(H2):
                rz[t, j] = sigmoid64(acc[H + j])
            for j in range(H):
                ahn = acc[H3 + j]
                r = rz[t, j]
                n = tanh64(acc[j] + r * ahn)
                ns[t, j] = n
                ghn[t, j] = ahn
                z = rz[t, H + j]
                hs[t + 1, j] = (1.0 - z) * n + z * hs[t, j]
            if skip <= t <= T - 2:
                if scaled:
                    head_error(hs[t + 1], u, w_o, b_o, windows[b, t + 1], e[t], 0.0, loss_kind)
                    sse = scale_head_loss(hs[t + 1], u, w_s, b_s, c_s, e[t], ls[t], sse, loss_kind, stats)
                else:
                    sse = head_error(hs[t + 1], u, w_o, b_o, windows[b, t + 1], e[t], sse, loss_kind)
        if not want_grad:
            continue
        dh[:] = 0.0
        for t in range(T - 1, -1, -1):
            for k in range(D):
                u[k] = windows[b, t, k]
                uw[t, k] = u[k]
            if skip <= t <= T - 2:
                if scaled:
                    scale_head_backward(scale, e[t], ls[t], hs[t + 1], u, w_s, g_w_s, g_b_s, g_c_s, dh, half_de,
                                        loss_kind)
                    head_backward(scale, half_de, hs[t + 1], u, w_o, g_w_o, g_b_o, dh, LOSS_SQUARED)
                else:
                    head_backward(scale, e[t], hs[t + 1], u, w_o, g_w_o, g_b_o, dh, loss_kind)
            for j in range(H):
                r = rz[t, j]
                z = rz[t, H + j]
                n = ns[t, j]
                dn = dh[j] * (1.0 - z)
                dz = dh[j] * (hs[t, j] - n)
                dh_prev[j] = dh[j] * z
                dan = dn * (1.0 - n * n)
                dar = dan * ghn[t, j] * r * (1.0 - r)
                daz = dz * z * (1.0 - z)
                dgx[t, j] = dar
                dgx[t, H + j] = daz
                dgx[t, 2 * H + j] = dan
                dgh[t, j] = dar
                dgh[t, H + j] = daz
                dgh[t, 2 * H + j] = dan * r
            # The hidden state's gradient through the recurrent weights (w_h^T dgh): four gates a pass,
            # each unit's sum still in gate order.
            i = 0
            while i + 4 <= H3:
                d0 = dgh[t, i]
                d1 = dgh[t, i + 1]
                d2 = dgh[t, i + 2]
                d3 = dgh[t, i + 3]
                for k in range(H):
                    a = dh_prev[k] + d0 * w_h[i, k]
                    a = a + d1 * w_h[i + 1, k]
                    a = a + d2 * w_h[i + 2, k]
                    dh_prev[k] = a + d3 * w_h[i + 3, k]
                i += 4
            while i < H3:
                d0 = dgh[t, i]
                for k in range(H):
                    dh_prev[k] += d0 * w_h[i, k]
                i += 1
            for k in range(H):
                dh[k] = dh_prev[k]
        # The weight gradients of the window's steps, each element's terms added in the order of the
        # steps (t descending) as one chain of four steps at a time.
        t = T - 1
        while t >= 3:
            for i in range(H3):
                g_b_x[i] = (((g_b_x[i] + dgx[t, i]) + dgx[t - 1, i]) + dgx[t - 2, i]) + dgx[t - 3, i]
            for i in range(H3):
                g_b_h[i] = (((g_b_h[i] + dgh[t, i]) + dgh[t - 1, i]) + dgh[t - 2, i]) + dgh[t - 3, i]
            add_outer_products4(g_w_xt, dgx, uw, t)
            add_outer_products4(g_w_ht, dgh, hs, t)
            t -= 4
        while t >= 0:
            for i in range(H3):
                g_b_x[i] += dgx[t, i]
            for i in range(H3):
                g_b_h[i] += dgh[t, i]
            for k in range(D):
                u0 = uw[t, k]
                for i in range(H3):
                    g_w_xt[k, i] += dgx[t, i] * u0
            for k in range(H):
                h0 = hs[t, k]
                for i in range(H3):
                    g_w_ht[k, i] += dgh[t, i] * h0
            t -= 1
    if want_grad:
        for i in range(H3):
            for k in range(D):
                g_w_x[i, k] = g_w_xt[k, i]
            for k in range(H):
                g_w_h[i, k] = g_w_ht[k, i]
    return sse * scale


def _arrays(weights: Mapping[str, np.ndarray]) -> tuple[dict[str, np.ndarray], bool]:
    """float64 contiguous copies of the weights the kernel takes; the scale head's are empty (with the
    right number of dimensions) when ``weights`` has none."""
    w = {k: np.ascontiguousarray(weights[k], dtype=np.float64) for k in GRAD_ORDER}
    scaled = "w_s" in weights
    for k in SCALE_ORDER:
        w[k] = (np.ascontiguousarray(weights[k], dtype=np.float64) if scaled
                else np.zeros((0, 0) if k == "w_s" else 0))
    return w, scaled


def _run(w: dict[str, np.ndarray], windows: np.ndarray, want_grad: bool, loss: str,
         grads: dict[str, np.ndarray], stats: np.ndarray) -> float:
    T = windows.shape[1]
    if windows.ndim != 3 or T < 2 or windows.shape[0] < 1:
        raise ValueError(f"training windows must be (B >= 1, T >= 2, D), got {windows.shape}")
    if loss not in LOSSES:
        raise ValueError(f"unknown loss {loss!r}; expected one of {sorted(LOSSES)}")
    return float(bptt_batch(np.ascontiguousarray(windows), *(w[k] for k in GRAD_ORDER), burn_in(T), LOSSES[loss],
                            want_grad, *(grads[k] for k in GRAD_ORDER), *(w[k] for k in SCALE_ORDER),
                            *(grads[k] for k in SCALE_ORDER), stats))


def loss_and_grad(weights: Mapping[str, np.ndarray], windows: np.ndarray, want_grad: bool = True,
                  loss: str = "absolute") -> tuple[float, dict[str, np.ndarray]]:
    """Loss of float64 ``weights`` on ``windows`` (B, T, D) and, if asked, its gradient (new arrays).

    ``loss`` is a key of ``LOSSES``. With the scale head's weights (``SCALE_ORDER``) in ``weights``, the
    likelihood loss, and their gradients too."""
    scaled = "w_s" in weights
    grads = {k: np.zeros(np.shape(weights[k])) for k in (GRAD_ORDER + SCALE_ORDER if scaled else GRAD_ORDER)}
    return loss_and_grad_into(weights, windows, grads, want_grad, loss), grads


def loss_and_grad_into(weights: Mapping[str, np.ndarray], windows: np.ndarray, grads: Mapping[str, np.ndarray],
                       want_grad: bool = True, loss: str = "absolute") -> float:
    """:func:`loss_and_grad` that *adds* the gradient into ``grads`` (C-contiguous float64 arrays of the
    weights' shapes, one per name of ``GRAD_ORDER``, and of ``SCALE_ORDER`` with the scale head) instead
    of allocating it: what a training loop calls at every step."""
    w, scaled = _arrays(weights)
    if not scaled:
        grads = dict(grads, **{k: w[k] for k in SCALE_ORDER})   # empty: nothing is added to them
    return _run(w, windows, want_grad, loss, grads, np.zeros((2, w["b_s"].shape[0])))


def scale_level(weights: Mapping[str, np.ndarray], windows: np.ndarray,
                loss: str = "absolute") -> tuple[np.ndarray, np.ndarray]:
    """``(centre, level)`` per feature on ``windows``: the mean over the scored steps of the log-scale
    the step kernel applies (``g = b_s + w_s . [h; u]``, clamped), and the level ``c_s`` that minimises
    the loss for that ``g`` in closed form (the likelihood of a scale known up to a factor: ``log
    mean(|e| exp(-g))``, or half the log of ``mean(e^2 exp(-2 g))`` for the squared error), clamped.

    Training sets ``c_s`` to ``level`` before its steps (the head's shape then learns from the first
    step, not its level) and afterwards moves ``centre`` from ``b_s`` into ``c_s``: the applied
    log-scales are centred at 0 on these windows, so the scorer's running residual scale keeps the
    level and the head only says where this entity's error is larger or smaller than usual."""
    w, scaled = _arrays(weights)
    if not scaled:
        raise ValueError("scale_level needs the scale head's weights")
    grads = {k: np.zeros_like(w[k]) for k in GRAD_ORDER + SCALE_ORDER}
    stats = np.zeros((2, w["b_s"].shape[0]))
    _run(w, windows, False, loss, grads, stats)
    T = windows.shape[1]
    stats /= windows.shape[0] * (T - 1 - burn_in(T))
    spread = np.log(np.maximum(stats[1], np.exp(-2 * LOGB_MAX)))
    level = np.clip(0.5 * spread if loss == "squared" else spread, -LOGB_MAX, LOGB_MAX)
    return stats[0], level
