"""Time features: the inline sine and cosine of a fraction of a turn."""

import math

import numpy as np

from rnnstream.kernels.features import turn_sincos


def test_turn_sincos_matches_libm_over_the_whole_turn():
    fractions = np.concatenate([np.linspace(0.0, 1.0, 20001), np.random.default_rng(0).uniform(0, 1, 20000),
                                [0.125, 0.375, 0.625, 0.875, 0.25 - 1e-15, 0.25 + 1e-15]])
    worst = 0.0
    for f in fractions:
        s, c = turn_sincos(f)
        worst = max(worst, abs(s - math.sin(2 * math.pi * f)), abs(c - math.cos(2 * math.pi * f)))
    assert worst < 1e-11
