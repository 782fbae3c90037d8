"""GRU weight initialisation: seeded, float32, with a persistence head.

Guaranteed: the same ``(hidden, n_inputs, n_features, seed)`` gives bit-identical weights; an untrained
model predicts the next normalised features as equal to the current ones (``pred == u[:F]``), so it is
a sensible naive forecaster from the first event. Gate order in the stacked matrices is
``[reset r, update z, candidate n]`` (the PyTorch convention).
"""

from __future__ import annotations

import math
from typing import Sequence

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
                 scale_head: bool = False, level_halflives: Sequence[float] = ()) -> dict[str, np.ndarray]:
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
    if level_halflives:
        level_units(weights, hidden, n_features, level_halflives)
    return weights


LEVEL_GAIN = 0.5   # a level unit's candidate is tanh(LEVEL_GAIN u_f): near-linear within ~1.5 deviations


def level_unit_index(k: int, f: int, n_features: int) -> int:
    """The hidden unit that is feature ``f``'s level at the ``k``-th half-life (halflife-major)."""
    return k * n_features + f


def level_units(weights: dict[str, np.ndarray], hidden: int, n_features: int, halflives: Sequence[float]) -> None:
    """Make hidden unit ``level_unit_index(k, f)`` (those below ``hidden``) an exponentially weighted
    mean of ``tanh(LEVEL_GAIN u_f)`` with half-life ``halflives[k]`` events, in place: its update gate is
    the constant ``2 ** (-1 / halflife)`` (bias only) and its candidate reads ``u_f`` alone (no recurrent
    input, so the reset gate does not matter). The head's weight on it stays 0, so the untrained
    prediction is still persistence; training can move the head's weight from the last value towards
    these smoothed levels where they forecast better. They cost no state: they live in ``h``, and
    training may change them like any other unit."""
    for k, halflife in enumerate(halflives):
        keep = 2.0 ** (-1.0 / float(halflife))
        logit = np.float32(np.log(keep / (1.0 - keep)))
        for f in range(n_features):
            j = level_unit_index(k, f, n_features)
            if j >= hidden:
                return
            z_row, n_row = hidden + j, 2 * hidden + j
            for row in (z_row, n_row):
                weights["w_x"][row] = 0.0
                weights["w_h"][row] = 0.0
                weights["b_x"][row] = 0.0
                weights["b_h"][row] = 0.0
            weights["b_x"][z_row] = logit
            weights["w_x"][n_row, f] = LEVEL_GAIN
