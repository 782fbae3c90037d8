"""The rolling z-score baseline: matches a plain loop, is causal, per entity, flags a change out of a flat line."""

from __future__ import annotations

import numpy as np

from rnnstream.evaluation import zscore


def _reference(x: np.ndarray, window: int, warmup: int) -> np.ndarray:
    out = np.zeros(len(x))
    for i in range(max(warmup, 2), len(x)):
        past = x[max(i - window, 0):i]
        sd = past.std(axis=0)
        out[i] = np.max(np.abs(x[i] - past.mean(axis=0)) / sd)
    return out


def test_matches_a_plain_loop():
    x = np.random.default_rng(1).normal(5.0, 2.0, size=(300, 3))
    np.testing.assert_allclose(zscore.rolling_abs_z(x, 50, 10), _reference(x, 50, 10), rtol=1e-7)


def test_causal_a_row_depends_on_earlier_rows_only():
    x = np.random.default_rng(2).normal(size=(200, 2))
    full = zscore.rolling_abs_z(x, 30, 5)
    np.testing.assert_array_equal(zscore.rolling_abs_z(x[:120], 30, 5), full[:120])


def test_a_spike_and_a_move_out_of_a_flat_line_score_high():
    x = np.random.default_rng(3).normal(10.0, 1.0, size=(200, 1))
    x[150] = 30.0
    z = zscore.rolling_abs_z(x, 100, 20)
    assert z[150] > 15 and np.argmax(z) == 150
    flat = np.full((100, 1), 7.0)
    flat[80] = 7.5
    zf = zscore.rolling_abs_z(flat, 50, 20)
    assert zf[79] == 0.0 and zf[80] == zscore.MAX_Z


def test_entities_are_scored_apart_whatever_the_interleaving():
    rng = np.random.default_rng(4)
    a, b = rng.normal(0, 1, (100, 2)), rng.normal(100, 50, (100, 2))
    p = zscore.ZScoreParams(window=40, threshold=4.0, warmup=5)
    alone = [zscore.rolling_abs_z(v, p.window, p.warmup) for v in (a, b)]
    entity = rng.permutation(np.repeat([0, 1], 100))       # a random interleaving, each entity in order
    values = np.empty((200, 2))
    values[entity == 0], values[entity == 1] = a, b
    mixed = zscore.score_stream(entity, values, p)
    for code in (0, 1):
        np.testing.assert_array_equal(mixed[entity == code], alone[code])


def test_nab_score_is_monotone_and_half_at_the_threshold():
    z = np.array([0.0, 2.0, 4.0, 8.0, zscore.MAX_Z])
    s = zscore.to_score(z, 4.0)
    assert s[2] == 0.5 and np.all(np.diff(s) > 0) and s[-1] < 1.0
