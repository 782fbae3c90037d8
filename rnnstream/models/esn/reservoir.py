"""The fixed random part of an echo state network: input weights, reservoir matrix, bias.

Drawn once from ``np.random.default_rng(seed)``, so the same parameters and seed give bit-identical
weights on every machine numpy supports. The reservoir matrix is rescaled so that its largest absolute
eigenvalue (computed with ``np.linalg.eigvals`` in float64, once) equals ``spectral_radius``; after the
cast to float32 it matches to ~1e-6. These weights are never trained.

Distributions (documented because they are part of the model's behaviour):
``w_in ~ U(-1, 1) * input_scaling``; ``bias ~ U(-1, 1) * BIAS_SCALE * input_scaling``; each reservoir
weight is non-zero with probability ``1 - sparsity`` and then standard normal before the rescaling.
"""

from __future__ import annotations

from typing import Any

import numpy as np

BIAS_SCALE = 0.2     # bias is a weak constant input, so units do not all saturate one way
MAX_REDRAWS = 32     # a very sparse small reservoir can be nilpotent (radius 0); redraw, then give up


def spectral_radius(w: np.ndarray) -> float:
    """Largest absolute eigenvalue of the square matrix ``w`` (computed in float64)."""
    return float(np.max(np.abs(np.linalg.eigvals(np.asarray(w, dtype=np.float64)))))


def draw_reservoir(rng: np.random.Generator, size: int, sparsity: float, radius: float) -> np.ndarray:
    """A (size, size) float32 sparse random matrix with spectral radius ``radius``.

    Raises ValueError when every draw has spectral radius 0 (too sparse for its size).
    """
    density = 1.0 - float(sparsity)
    for _ in range(MAX_REDRAWS):
        mask = rng.random((size, size)) < density
        w = np.where(mask, rng.standard_normal((size, size)), 0.0)
        rho = spectral_radius(w)
        if rho > 1e-9:
            return (w * (radius / rho)).astype(np.float32)
    raise ValueError(
        f"model.params: a reservoir of size {size} with sparsity {sparsity} has no non-zero eigenvalue "
        f"in {MAX_REDRAWS} draws; lower model.params.sparsity or raise model.params.size")


def persistence_readout(n_features: int, n_reservoir: int, n_inputs: int) -> np.ndarray:
    """Readout (F, R + D + 1) on ``[r; u; 1]`` that predicts ``u[:F]``: the naive last-value forecast."""
    w = np.zeros((n_features, n_reservoir + n_inputs + 1), dtype=np.float32)
    w[np.arange(n_features), n_reservoir + np.arange(n_features)] = 1.0
    return w


def init_weights(n_features: int, n_inputs: int, params: Any, seed: int) -> dict[str, np.ndarray]:
    """All weights of a fresh ESN: ``w_in`` (R, D), ``w_res`` (R, R), ``bias`` (R,), ``w_out`` (F, R+D+1)."""
    size = int(params.size)
    if n_features < 1 or n_inputs < n_features:
        raise ValueError(f"ESN needs 1 <= n_features <= n_inputs, got F={n_features}, D={n_inputs}")
    rng = np.random.default_rng(seed)
    scale = float(params.input_scaling)
    w_in = (rng.uniform(-1.0, 1.0, (size, n_inputs)) * scale).astype(np.float32)
    bias = (rng.uniform(-1.0, 1.0, size) * (BIAS_SCALE * scale)).astype(np.float32)
    w_res = draw_reservoir(rng, size, float(params.sparsity), float(params.spectral_radius))
    return {"w_in": w_in, "w_res": w_res, "bias": bias,
            "w_out": persistence_readout(n_features, size, n_inputs)}

