"""Float64 numpy reference of the stacked GRU's BPTT objective and gradients (tests only).

Vectorised over the batch, written apart from :mod:`.bptt_stacked`: forward keeps every layer's
gates, backward walks time in reverse and, at each step, the layers from the top down.
"""

from __future__ import annotations

from typing import Mapping

import numpy as np

from .bptt import burn_in
from .stacked import layer_names


def _sig(a: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-a))


def loss_and_grad_reference(weights: Mapping[str, np.ndarray], windows: np.ndarray, layers: int,
                            loss: str = "absolute") -> tuple[float, dict[str, np.ndarray]]:
    squared = {"absolute": False, "squared": True}[loss]
    W = {k: np.asarray(v, dtype=np.float64) for k, v in weights.items()}
    U = np.asarray(windows, dtype=np.float64)
    B, T, D = U.shape
    H = W["w_h"].shape[1]
    F = W["b_o"].shape[0]
    skip = burn_in(T)
    count = B * (T - 1 - skip) * F
    names = [dict(zip(("w_x", "w_h", "b_x", "b_h"), layer_names(l))) for l in range(layers)]
    h = [[np.zeros((B, H))] for _ in range(layers)]          # h[l][t] = state before step t
    cache: list[list[tuple]] = [[] for _ in range(layers)]
    err = {}
    loss_sum = 0.0
    for t in range(T):
        inp = U[:, t]
        for l in range(layers):
            n_ = names[l]
            gx = inp @ W[n_["w_x"]].T + W[n_["b_x"]]
            gh = h[l][-1] @ W[n_["w_h"]].T + W[n_["b_h"]]
            r = _sig(gx[:, :H] + gh[:, :H])
            z = _sig(gx[:, H:2 * H] + gh[:, H:2 * H])
            n = np.tanh(gx[:, 2 * H:] + r * gh[:, 2 * H:])
            h[l].append((1 - z) * n + z * h[l][-1])
            cache[l].append((inp, r, z, n, gh[:, 2 * H:]))
            inp = h[l][-1]
        if skip <= t <= T - 2:
            y = np.concatenate([h[-1][-1], U[:, t]], axis=1) @ W["w_o"].T + W["b_o"]
            err[t] = y - U[:, t + 1, :F]
            loss_sum += float(np.sum(err[t] ** 2 if squared else np.abs(err[t])))
    loss_sum /= count

    g = {k: np.zeros_like(v) for k, v in W.items()}
    dh = [np.zeros((B, H)) for _ in range(layers)]
    for t in reversed(range(T)):
        if t in err:
            dy = (2.0 * err[t] if squared else np.sign(err[t])) / count
            g["w_o"] += dy.T @ np.concatenate([h[-1][t + 1], U[:, t]], axis=1)
            g["b_o"] += dy.sum(axis=0)
            dh[-1] = dh[-1] + dy @ W["w_o"][:, :H]
        for l in reversed(range(layers)):
            n_ = names[l]
            inp, r, z, n, hn = cache[l][t]
            d_n = dh[l] * (1 - z) * (1 - n ** 2)
            d_z = dh[l] * (h[l][t] - n) * z * (1 - z)
            d_r = d_n * hn * r * (1 - r)
            d_gx = np.concatenate([d_r, d_z, d_n], axis=1)
            d_gh = np.concatenate([d_r, d_z, d_n * r], axis=1)
            g[n_["w_x"]] += d_gx.T @ inp
            g[n_["b_x"]] += d_gx.sum(axis=0)
            g[n_["w_h"]] += d_gh.T @ h[l][t]
            g[n_["b_h"]] += d_gh.sum(axis=0)
            if l > 0:
                dh[l - 1] = dh[l - 1] + d_gx @ W[n_["w_x"]]
            dh[l] = dh[l] * z + d_gh @ W[n_["w_h"]]
    return loss_sum, g
