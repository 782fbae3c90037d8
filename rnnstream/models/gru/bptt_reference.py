"""Float64 numpy reference of the BPTT objective and gradients (for tests; written apart from the kernel).

Vectorised over the batch: the forward pass keeps every step's gate activations, the backward pass
walks them in reverse with the chain rule written out gate by gate. With the scale head's weights
(``w_s``, ``b_s``, ``c_s``), the likelihood loss of :mod:`.bptt`'s docstring.
"""

from __future__ import annotations

from typing import Mapping

import numpy as np

from .bptt import LOGB_MAX, burn_in


def loss_and_grad_reference(weights: Mapping[str, np.ndarray], windows: np.ndarray,
                            loss: str = "absolute") -> tuple[float, dict[str, np.ndarray]]:
    squared = {"absolute": False, "squared": True}[loss]
    W = {k: np.asarray(v, dtype=np.float64) for k, v in weights.items()}
    U = np.asarray(windows, dtype=np.float64)
    B, T, D = U.shape
    H = W["w_h"].shape[1]
    F = W["b_o"].shape[0]
    skip = burn_in(T)
    steps = range(skip, T - 1)
    count = B * len(steps) * F
    sig = lambda a: 1.0 / (1.0 + np.exp(-a))  # noqa: E731

    h = [np.zeros((B, H))]
    cache = []
    total = 0.0
    err = {}
    scaled = "w_s" in W
    logb = {}
    for t in range(T):
        gx = U[:, t] @ W["w_x"].T + W["b_x"]
        gh = h[-1] @ W["w_h"].T + W["b_h"]
        r = sig(gx[:, :H] + gh[:, :H])
        z = sig(gx[:, H:2 * H] + gh[:, H:2 * H])
        n = np.tanh(gx[:, 2 * H:] + r * gh[:, 2 * H:])
        h.append((1 - z) * n + z * h[-1])
        cache.append((r, z, n, gh[:, 2 * H:]))
        if t in steps:
            hu = np.concatenate([h[-1], U[:, t]], axis=1)
            y = hu @ W["w_o"].T + W["b_o"]
            err[t] = y - U[:, t + 1, :F]
            if scaled:
                logb[t] = hu @ W["w_s"].T + W["b_s"] + W["c_s"]
                lc = np.clip(logb[t], -LOGB_MAX, LOGB_MAX)
                if squared:   # twice the Gaussian negative log-likelihood, sd exp(l)
                    total += float(np.sum(err[t] ** 2 / np.exp(lc) ** 2 + 2 * lc))
                else:         # the Laplace negative log-likelihood, scale exp(l)
                    total += float(np.sum(np.abs(err[t]) / np.exp(lc) + lc))
            else:
                total += float(np.sum(err[t] ** 2 if squared else np.abs(err[t])))
    total /= count

    g = {k: np.zeros_like(v) for k, v in W.items()}
    dh = np.zeros((B, H))
    for t in reversed(range(T)):
        if t in err and scaled:
            lc = np.clip(logb[t], -LOGB_MAX, LOGB_MAX)
            inside = (logb[t] > -LOGB_MAX) & (logb[t] < LOGB_MAX)
            b = np.exp(lc)
            if squared:
                dy = 2.0 * err[t] / b ** 2 / count
                dl = (2.0 - 2.0 * err[t] ** 2 / b ** 2) * inside / count
            else:
                dy = np.sign(err[t]) / b / count
                dl = (1.0 - np.abs(err[t]) / b) * inside / count
            hu = np.concatenate([h[t + 1], U[:, t]], axis=1)
            g["w_s"] += dl.T @ hu
            g["b_s"] += dl.sum(axis=0)
            g["c_s"] += dl.sum(axis=0)
            dh = dh + dl @ W["w_s"][:, :H]
        elif t in err:
            dy = (2.0 * err[t] if squared else np.sign(err[t])) / count
        if t in err:
            g["w_o"] += dy.T @ np.concatenate([h[t + 1], U[:, t]], axis=1)
            g["b_o"] += dy.sum(axis=0)
            dh = dh + dy @ W["w_o"][:, :H]
        r, z, n, hn = cache[t]
        d_n = dh * (1 - z) * (1 - n ** 2)
        d_z = dh * (h[t] - n) * z * (1 - z)
        d_r = d_n * hn * r * (1 - r)
        d_gx = np.concatenate([d_r, d_z, d_n], axis=1)
        d_gh = np.concatenate([d_r, d_z, d_n * r], axis=1)
        g["w_x"] += d_gx.T @ U[:, t]
        g["b_x"] += d_gx.sum(axis=0)
        g["w_h"] += d_gh.T @ h[t]
        g["b_h"] += d_gh.sum(axis=0)
        dh = dh * z + d_gh @ W["w_h"]
    return total, g
