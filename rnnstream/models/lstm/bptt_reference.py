"""Float64 numpy reference of the LSTM's BPTT objective and gradients (tests only).

Vectorised over the batch, written apart from :mod:`.bptt`: the chain rule gate by gate, time in
reverse and, at each step, the layers from the top down.
"""

from __future__ import annotations

from typing import Mapping

import numpy as np

from ..gru.bptt import burn_in
from ..gru.stacked import layer_names
from .params import RECURRENT


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
    names = [dict(zip(RECURRENT, layer_names(l, RECURRENT))) for l in range(layers)]
    h = [[np.zeros((B, H))] for _ in range(layers)]
    c = [[np.zeros((B, H))] for _ in range(layers)]
    cache: list[list[tuple]] = [[] for _ in range(layers)]
    err = {}
    loss_sum = 0.0
    for t in range(T):
        inp = U[:, t]
        for l in range(layers):
            n_ = names[l]
            a = inp @ W[n_["w_x"]].T + h[l][-1] @ W[n_["w_h"]].T + W[n_["b"]]
            i, f, g, o = _sig(a[:, :H]), _sig(a[:, H:2 * H]), np.tanh(a[:, 2 * H:3 * H]), _sig(a[:, 3 * H:])
            c[l].append(f * c[l][-1] + i * g)
            h[l].append(o * np.tanh(c[l][-1]))
            cache[l].append((inp, i, f, g, o))
            inp = h[l][-1]
        if skip <= t <= T - 2:
            y = np.concatenate([h[-1][-1], U[:, t]], axis=1) @ W["w_o"].T + W["b_o"]
            err[t] = y - U[:, t + 1, :F]
            loss_sum += float(np.sum(err[t] ** 2 if squared else np.abs(err[t])))
    loss_sum /= count

    grad = {k: np.zeros_like(v) for k, v in W.items()}
    dh = [np.zeros((B, H)) for _ in range(layers)]
    dc = [np.zeros((B, H)) for _ in range(layers)]
    for t in reversed(range(T)):
        if t in err:
            dy = (2.0 * err[t] if squared else np.sign(err[t])) / count
            grad["w_o"] += dy.T @ np.concatenate([h[-1][t + 1], U[:, t]], axis=1)
            grad["b_o"] += dy.sum(axis=0)
            dh[-1] = dh[-1] + dy @ W["w_o"][:, :H]
        for l in reversed(range(layers)):
            n_ = names[l]
            inp, i, f, g, o = cache[l][t]
            tc = np.tanh(c[l][t + 1])
            d_c = dc[l] + dh[l] * o * (1 - tc ** 2)
            d_a = np.concatenate([d_c * g * i * (1 - i), d_c * c[l][t] * f * (1 - f), d_c * i * (1 - g ** 2),
                                  dh[l] * tc * o * (1 - o)], axis=1)
            grad[n_["w_x"]] += d_a.T @ inp
            grad[n_["w_h"]] += d_a.T @ h[l][t]
            grad[n_["b"]] += d_a.sum(axis=0)
            if l > 0:
                dh[l - 1] = dh[l - 1] + d_a @ W[n_["w_x"]]
            dh[l] = d_a @ W[n_["w_h"]]
            dc[l] = d_c * f
    return loss_sum, grad
