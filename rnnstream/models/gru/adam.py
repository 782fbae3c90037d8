"""Adam with global gradient-norm clipping, on dicts of float64 arrays (updated in place)."""

from __future__ import annotations

import math
from typing import Mapping

import numpy as np

from ...kernels.jit import kernel

BETA1 = 0.9
BETA2 = 0.999
EPS = 1e-8


def global_norm(grads: Mapping[str, np.ndarray]) -> float:
    return math.sqrt(sum(float(np.vdot(g, g)) for g in grads.values()))


def clip_by_global_norm(grads: dict[str, np.ndarray], max_norm: float) -> float:
    """Scale ``grads`` in place so their joint L2 norm is at most ``max_norm``; return the norm before."""
    norm = global_norm(grads)
    if norm > max_norm:
        for g in grads.values():
            g *= max_norm / norm
    return norm


def init_state(params: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Zero moments ``m.<name>``, ``v.<name>`` and step count ``t``."""
    state = {f"m.{k}": np.zeros(v.shape) for k, v in params.items()}
    state.update({f"v.{k}": np.zeros(v.shape) for k, v in params.items()})
    state["t"] = np.array(0, dtype=np.int64)
    return state


def state_fits(opt_state: Mapping[str, np.ndarray], params: Mapping[str, np.ndarray]) -> bool:
    """Whether ``opt_state`` is Adam's state of ``params``: the same names and shapes as :func:`init_state`'s."""
    names = {f"m.{k}" for k in params} | {f"v.{k}" for k in params} | {"t"}
    return set(opt_state) == names and np.shape(opt_state["t"]) == () and all(
        np.shape(opt_state[f"{moment}.{k}"]) == np.shape(p) for k, p in params.items() for moment in "mv")


def adopt_state(opt_state: Mapping[str, np.ndarray], params: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Copies of ``opt_state`` when it fits ``params`` (:func:`state_fits`), else a fresh state."""
    fresh = init_state(params)
    if not state_fits(opt_state, params):
        return fresh
    return {k: np.array(v, dtype=fresh[k].dtype) for k, v in opt_state.items()}


def adam_update(p: np.ndarray, g: np.ndarray, m: np.ndarray, v: np.ndarray, t: int, lr: float) -> None:
    """The bias-corrected Adam update of step ``t`` (counted from 1) of the parameters ``p`` and moments
    ``m``, ``v`` by the gradient ``g`` (C-contiguous float64 arrays of one shape), in place. Element by
    element, so one call on vectors that concatenate several arrays gives each element the same bits
    as a call per array."""
    for a in (p, g, m, v):
        if a.dtype != np.float64 or not a.flags.c_contiguous or a.shape != p.shape:
            raise ValueError("adam_update needs C-contiguous float64 arrays of one shape")
    _adam_update(p.reshape(-1), g.reshape(-1), m.reshape(-1), v.reshape(-1), float(lr),
                 1.0 - BETA1 ** t, 1.0 - BETA2 ** t)


@kernel
def _adam_update(p, g, m, v, lr, c1, c2):
    """``m = BETA1 m + (1 - BETA1) g``, ``v = BETA2 v + (1 - BETA2) g g``, ``p -= lr (m / c1) /
    (sqrt(v / c2) + EPS)``, each operation rounded as numpy's whole-array form rounds it."""
    for i in range(p.shape[0]):
        gi = g[i]
        mi = m[i] * BETA1
        mi = mi + (1.0 - BETA1) * gi
        vi = v[i] * BETA2
        vi = vi + (1.0 - BETA2) * gi * gi
        m[i] = mi
        v[i] = vi
        p[i] = p[i] - lr * (mi / c1) / (math.sqrt(vi / c2) + EPS)


def adam_step(params: dict[str, np.ndarray], grads: Mapping[str, np.ndarray], state: dict[str, np.ndarray],
              lr: float) -> None:
    """One bias-corrected Adam update of ``params`` and ``state``, in place."""
    t = int(state["t"]) + 1
    state["t"] = np.array(t, dtype=np.int64)
    for k, g in grads.items():
        adam_update(params[k], g, state[f"m.{k}"], state[f"v.{k}"], t, lr)
