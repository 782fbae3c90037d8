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
SCALE_NAMES = ("w_s", "b_s", "c_s")   # the scale head (``model.scale_head``), see :mod:`.bptt`
LOGB_MAX = 12.0    # predicted log-scales are clamped to +-LOGB_MAX (training and scoring alike)


def weight_shapes(hidden: int, n_inputs: int, n_features: int,
                  scale_head: bool = False) -> dict[str, tuple[int, ...]]:
    """Shape of every weight array for H hidden units, D inputs and F predicted features."""
    h3 = 3 * hidden
    shapes = {"w_x": (h3, n_inputs), "w_h": (h3, hidden), "b_x": (h3,), "b_h": (h3,),
              "w_o": (n_features, hidden + n_inputs), "b_o": (n_features,)}
    if scale_head:
        shapes.update({"w_s": (n_features, hidden + n_inputs), "b_s": (n_features,), "c_s": (n_features,)})
    return shapes


def init_weights(hidden: int, n_inputs: int, n_features: int, seed: int,
                 scale_head: bool = False) -> dict[str, np.ndarray]:
    """Fresh weights: recurrent part uniform(-1/sqrt(H), 1/sqrt(H)); head = identity on ``u[:F]``; the
    scale head (if asked) all zeros: log-scale 0, so an untrained model is scored as without it. The
    other weights do not depend on ``scale_head``."""
    if not 1 <= n_features <= n_inputs:
        raise ValueError(f"need 1 <= n_features ({n_features}) <= n_inputs ({n_inputs})")
    if hidden < 1:
        raise ValueError(f"model.hidden must be >= 1, got {hidden}")
    rng = np.random.default_rng(seed)
    bound = 1.0 / math.sqrt(hidden)
    shapes = weight_shapes(hidden, n_inputs, n_features, scale_head)
    weights = {name: rng.uniform(-bound, bound, shapes[name]).astype(np.float32)
               for name in ("w_x", "w_h", "b_x", "b_h")}
    w_o = np.zeros(shapes["w_o"], dtype=np.float32)
    w_o[np.arange(n_features), hidden + np.arange(n_features)] = 1.0
    weights["w_o"] = w_o
    weights["b_o"] = np.zeros(n_features, dtype=np.float32)
    if scale_head:
        for name in SCALE_NAMES:
            weights[name] = np.zeros(shapes[name], dtype=np.float32)
    return weights
