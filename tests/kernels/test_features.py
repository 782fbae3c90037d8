"""Time features: the inline sine and cosine of a fraction of a turn."""

import math

import numpy as np

from rnnstream.kernels.features import DAY, FAST_MOD_LIMIT, float_mod, turn_sincos


def test_turn_sincos_matches_libm_over_the_whole_turn():
    fractions = np.concatenate([np.linspace(0.0, 1.0, 20001), np.random.default_rng(0).uniform(0, 1, 20000),
                                [0.125, 0.375, 0.625, 0.875, 0.25 - 1e-15, 0.25 + 1e-15]])
    worst = 0.0
    for f in fractions:
        s, c = turn_sincos(f)
        worst = max(worst, abs(s - math.sin(2 * math.pi * f)), abs(c - math.cos(2 * math.pi * f)))
    assert worst < 1e-11


def test_float_mod_is_python_modulo_bit_for_bit():
    """The shortcut's cases: near and at multiples of m (the quotient's floor one off), tiny, zero,
    signed zero, the limit; and the fallback (negative, huge, inf, nan)."""
    rng = np.random.default_rng(0)
    for m in (DAY, 7.0, 1.0, 3.0):
        k = np.concatenate([np.arange(0, 50), rng.integers(0, 2**20, 200)]).astype(float)
        xs = [*(k * m), *rng.uniform(0, 3e9, 2000), *rng.uniform(0, 100, 200), *(rng.uniform(0, 3e9, 200) / DAY + 3.0)]
        near = []
        for x in xs[:250]:
            for _ in range(3):
                x = np.nextafter(x, np.inf)
                near.append(x)
        near += [np.nextafter(x, -np.inf) for x in xs[1:250]]
        special = [0.0, -0.0, 5e-324, 1e-300, m - 1e-9, FAST_MOD_LIMIT, np.nextafter(FAST_MOD_LIMIT, 0), 1e300,
                   -1.0, -DAY - 1e-7, -1e-20, -m, math.inf, -math.inf, math.nan]
        for x in [*xs, *near, *special]:
            got, want = float_mod(float(x), m), float(x) % m
            assert (math.isnan(got) and math.isnan(want)) or (got == want and math.copysign(1, got) == math.copysign(1, want)), (x, m, got, want)
