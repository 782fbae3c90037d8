"""Finite-difference gradient checks shared by the recurrent models' BPTT tests."""

from __future__ import annotations

from typing import Callable, Mapping

import numpy as np


def assert_matches_central_differences(loss: Callable[[dict[str, np.ndarray]], float],
                                       weights: Mapping[str, np.ndarray], grads: Mapping[str, np.ndarray],
                                       eps: float = 1e-6, rtol: float = 1e-5) -> None:
    """Every array of ``grads`` within ``rtol`` (relative L2 error) of the central differences of
    ``loss`` around ``weights``; a weight whose differences are all ~0 fails (the check would be vacuous)."""
    for name in weights:
        fd = np.zeros_like(weights[name])
        for idx in np.ndindex(weights[name].shape):
            plus = {k: np.array(v, copy=True) for k, v in weights.items()}
            minus = {k: np.array(v, copy=True) for k, v in weights.items()}
            plus[name][idx] += eps
            minus[name][idx] -= eps
            fd[idx] = (loss(plus) - loss(minus)) / (2 * eps)
        rel = np.linalg.norm(grads[name] - fd) / max(np.linalg.norm(fd), 1e-12)
        assert rel < rtol, f"{name}: relative error {rel:.2e}"
        assert np.linalg.norm(fd) > 1e-6, f"{name}: no gradient at all, the check would be vacuous"
