"""Detector's per-event guards: extreme finite values and future-dated events never reach state.

Property tests (seeded, many draws) through every model type: values beyond ``MAX_ABS_VALUE`` are
refused as ``out_of_range`` and leave every other entity's outputs bit-identical; extreme values
within the bound (1e99, subnormals, the bound itself) keep every output and every state array finite,
through retraining too.
"""

from __future__ import annotations

import numpy as np
import pytest

from rnnstream.config import load_config
from rnnstream.detector import (MAX_ABS_VALUE, REASON_FUTURE, REASON_NON_FINITE, REASON_OUT_OF_RANGE,
                                Detector)

YAML = """
detectors:
  - name: test
    topics: [t]
    entity: host
    timestamp: {{field: ts}}
    features: [a, b]
    idle_ttl_seconds: 100000
    future_tolerance_seconds: 60
    model: {{type: {model}, seed: 1{extra}}}
    training: {{enabled: true, background: false, every_events: 120, every_seconds: 1.0e9, min_events: 16, window: 8, steps: 3}}
    time_features: {{daily_profile_bins: 4}}
    scoring: {{warmup_events: 5, short_window: 3, long_window: 50, suppress_events: 2, threshold: 0.4, novelty_tolerance: 0.1, profile_cap: 1.0}}
"""
MODELS = ["gru", "esn", "naive"]
BIG = np.nextafter(MAX_ABS_VALUE, np.inf)
# Refused: beyond the bound (1e154 is where a squared deviation overflows), and non-finite.
OUT = np.array([BIG, -BIG, 1e101, 1e154, np.nextafter(1.3407807929942596e154, 0), 1.3407807929942596e154,
                np.nextafter(1.3407807929942596e154, np.inf), 1e200, 1e300, -1e308, 1.7976931348623157e308])
# Accepted, and must stay harmless: the bound itself, huge-but-safe, tiny, subnormal, zero.
IN = np.array([MAX_ABS_VALUE, -MAX_ABS_VALUE, 1e99, -3e98, 1e-300, -1e-308, 5e-324, -5e-324, 0.0, 2.2250738585072014e-308])


def _det(model: str) -> Detector:
    extra = ", hidden: 4" if model == "gru" else (", size: 16" if model == "esn" else "")
    return Detector(load_config(YAML.format(model=model, extra=extra)).detectors[0])


def _normal_stream(rng, n: int, n_entities: int = 5):
    ents = [f"h{e}" for e in rng.integers(0, n_entities, n)]
    ts = 1.7e9 + np.cumsum(rng.exponential(10.0, n))
    x = rng.standard_normal((n, 2)) * 3 + 50
    return ents, x, ts


def _run(det: Detector, ents, x, ts, batch: int):
    outs, rejected = [], []
    for s in range(0, len(ents), batch):
        res = det.process(ents[s:s + batch], x[s:s + batch], ts[s:s + batch])
        rows = np.column_stack([res.pred, res.z, res.err, res.score, res.flag])
        outs += [(ents[s + int(i)], tuple(r)) for i, r in zip(res.index, rows)]
        rejected += [(s + i, reason) for i, reason in res.rejected]
    return outs, rejected


def _assert_state_finite(det: Detector) -> None:
    for name, live in det.state.export().arrays.items():   # every live entity's row, rings included
        if live.dtype.kind == "f":
            assert np.isfinite(live).all(), f"state field {name} holds a non-finite value"
    for name, w in det.model.weights.items():
        assert np.isfinite(w).all(), f"weight {name} is not finite"


def test_bound_is_exact():
    det = _det("naive")
    x = np.array([[MAX_ABS_VALUE, 0.0], [0.0, BIG], [np.nan, 0.0], [np.inf, 1e300]])
    res = det.process(["a", "b", "c", "d"], x, 1.7e9 + np.arange(4.0))
    assert res.index.tolist() == [0]
    assert res.rejected == [(1, REASON_OUT_OF_RANGE), (2, REASON_NON_FINITE), (3, REASON_NON_FINITE)]


@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize("seed", range(4))
def test_refused_extremes_leave_other_entities_bit_identical(model, seed):
    rng = np.random.default_rng(seed)
    ents, x, ts = _normal_stream(rng, 600)
    # The poisoned entity: only refused values, sprinkled through the stream, one or both features.
    k = 40
    pos = np.sort(rng.choice(len(ents) + k, k, replace=False))
    bad_x = np.column_stack([rng.choice(OUT, k), np.where(rng.random(k) < 0.5, rng.choice(OUT, k), 1.0)])
    bad_x *= rng.choice([-1.0, 1.0], (k, 2))
    keep = np.ones(len(ents) + k, dtype=bool)
    keep[pos] = False
    mixed_ents = np.empty(len(ents) + k, dtype=object)
    mixed_x = np.empty((len(ents) + k, 2))
    mixed_ts = np.empty(len(ents) + k)
    mixed_ents[keep], mixed_x[keep], mixed_ts[keep] = ents, x, ts
    mixed_ents[pos], mixed_x[pos] = "poison", bad_x
    mixed_ts[pos] = np.interp(pos, np.flatnonzero(keep), ts)
    batch = int(rng.integers(7, 200))

    with_bad, without = _det(model), _det(model)
    try:
        got, rejected = _run(with_bad, list(mixed_ents), mixed_x, mixed_ts, batch)
        want, _ = _run(without, ents, x, ts, batch)
        assert sorted(rejected) == [(int(p), REASON_OUT_OF_RANGE) for p in pos]
        assert got == want                       # scores, predictions, errors, flags: bit for bit
        assert "poison" not in with_bad.state.index
        assert with_bad.model.version == without.model.version > 0   # retrained, same weights
        for name, w in with_bad.model.weights.items():
            np.testing.assert_array_equal(w, without.model.weights[name])
    finally:
        with_bad.close()
        without.close()


@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize("seed", range(4))
def test_extreme_values_within_the_bound_keep_everything_finite(model, seed):
    rng = np.random.default_rng(100 + seed)
    ents, x, ts = _normal_stream(rng, 900)
    # Some entities see extreme accepted values now and then, some only extremes, mixed with refused ones.
    extreme = rng.random(len(ents)) < 0.15
    x[extreme] = rng.choice(np.concatenate([IN, OUT]), (int(extreme.sum()), 2))
    ents = [("wild" if rng.random() < 0.3 else e) if extreme[i] else e for i, e in enumerate(ents)]
    det = _det(model)
    try:
        outs, rejected = _run(det, ents, x, ts, int(rng.integers(5, 300)))
        refused = {i for i, _ in rejected}
        beyond = np.flatnonzero((np.abs(x) > MAX_ABS_VALUE).any(axis=1))
        assert refused == set(beyond.tolist())
        assert len(outs) + len(refused) == len(ents)
        values = np.array([row for _, row in outs])
        assert np.isfinite(values).all(), "a prediction, z, error or score is not finite"
        assert ((values[:, -2] >= 0) & (values[:, -2] <= 1)).all()
        assert det.model.version > 0
        _assert_state_finite(det)
    finally:
        det.close()


def test_future_events_refused_against_the_reference_clock():
    det = _det("naive")
    try:
        ts = 1.7e9 + np.array([0.0, 10.0, 20.0 + 365 * 86400, 30.0, 100.0])
        ref = 1.7e9 + np.array([0.0, 5.0, 20.0, 30.0, np.nan])   # NaN: no reference, no check
        res = det.process(["a", "b", "c", "a", "d"], np.ones((5, 2)), ts, reference=ref)
        assert res.rejected == [(2, REASON_FUTURE)]
        assert "c" not in det.state.index
        assert det.watermark == ts[4]          # the refused event never moved the watermark
        res = det.process(["a"], np.ones((1, 2)), ts[:1] + 121, reference=ts[:1] + 60)   # 61 s > 60 s
        assert res.rejected == [(0, REASON_FUTURE)]
    finally:
        det.close()
