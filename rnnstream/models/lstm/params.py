"""LSTM weight initialisation: seeded, float32, forget-gate bias 1, the GRU's head.

Per layer ``l`` (names without a suffix for layer 0, with ``l`` after it: ``w_x1``...): ``w_x`` (4H, D)
for layer 0 and (4H, H) above it, ``w_h`` (4H, H), one bias ``b`` (4H). Gate order in the stacked
matrices is ``[input i, forget f, cell g, output o]`` (the PyTorch convention). The head (``w_o``,
``b_o`` and whatever else the GRU's head has) is the GRU's own initial head, taken from
:func:`rnnstream.models.gru.params.init_weights`, so an untrained LSTM is persistence too.

Guaranteed: the same ``(hidden, layers, n_inputs, n_features, seed)`` gives bit-identical weights.
"""

from __future__ import annotations

import math

import numpy as np

from ..gru.params import init_weights as gru_init_weights
from ..gru.stacked import RECURRENT as GRU_RECURRENT, upper_layer_weights

GATES = 4
RECURRENT = ("w_x", "w_h", "b")
FORGET_BIAS = 1.0


def init_weights(hidden: int, layers: int, n_inputs: int, n_features: int, seed: int) -> dict[str, np.ndarray]:
    """Recurrent weights uniform(-1/sqrt(H), 1/sqrt(H)), then each layer's forget-gate bias set to 1."""
    head = gru_init_weights(hidden, n_inputs, n_features, seed)   # validates the sizes
    rng = np.random.default_rng(seed)
    bound = 1.0 / math.sqrt(hidden)
    weights = {"w_x": rng.uniform(-bound, bound, (GATES * hidden, n_inputs)).astype(np.float32),
               "w_h": rng.uniform(-bound, bound, (GATES * hidden, hidden)).astype(np.float32),
               "b": rng.uniform(-bound, bound, GATES * hidden).astype(np.float32)}
    weights.update(upper_layer_weights(hidden, layers, seed, GATES, RECURRENT))
    for name in weights:
        if name.startswith("b"):
            weights[name][hidden:2 * hidden] = FORGET_BIAS
    weights.update({k: v for k, v in head.items() if k not in GRU_RECURRENT})
    return weights
