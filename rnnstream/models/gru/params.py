"""GRU weight initialisation: seeded, float32, with a persistence head.

Guaranteed: the same ``(hidden, n_inputs, n_features, seed)`` gives bit-identical weights; an untrained
model predicts the next normalised features as equal to the current ones (``pred == u[:F]``), so it is
a sensible naive forecaster from the first event. Gate order in the stacked matrices is
``[reset r, update z, candidate n]`` (the PyTorch convention).
"""

from __future__ import annotations

import math

import numpy as np

WEIGHT_NAMES = ("w_x", "w_h", "b_x", "b_h", "w_o", "b_o")


def weight_shapes(hidden: int, n_inputs: int, n_features: int) -> dict[str, tuple[int, ...]]:
    """Shape of every weight array for H hidden units, D inputs and F predicted features."""
    h3 = 3 * hidden
    return {"w_x": (h3, n_inputs), "w_h": (h3, hidden), "b_x": (h3,), "b_h": (h3,),
            "w_o": (n_features, hidden + n_inputs), "b_o": (n_features,)}


def init_weights(hidden: int, n_inputs: int, n_features: int, seed: int) -> dict[str, np.ndarray]:
    """Fresh weights: recurrent part uniform(-1/sqrt(H), 1/sqrt(H)); head = identity on ``u[:F]``."""
    if not 1 <= n_features <= n_inputs:
        raise ValueError(f"need 1 <= n_features ({n_features}) <= n_inputs ({n_inputs})")
    if hidden < 1:
        raise ValueError(f"model.hidden must be >= 1, got {hidden}")
    rng = np.random.default_rng(seed)
    bound = 1.0 / math.sqrt(hidden)
    shapes = weight_shapes(hidden, n_inputs, n_features)
    weights = {name: rng.uniform(-bound, bound, shapes[name]).astype(np.float32)
               for name in ("w_x", "w_h", "b_x", "b_h")}
    w_o = np.zeros(shapes["w_o"], dtype=np.float32)
    w_o[np.arange(n_features), hidden + np.arange(n_features)] = 1.0
    weights["w_o"] = w_o
    weights["b_o"] = np.zeros(n_features, dtype=np.float32)
    return weights
