"""Detector glue: rejected rows, mapping results back to input positions, eviction reports."""

from __future__ import annotations

import numpy as np
import pytest

from rnnstream.config import load_config
from rnnstream.detector import MAX_ABS_VALUE, REASON_NON_FINITE, Detector, from_log, to_log
from rnnstream.kernels.calibrate import FLAG_ANOMALY, FLAG_SUPPRESSED

YAML = """
detectors:
  - name: test
    topics: [t]
    entity: host
    timestamp: {{field: ts}}
    features: [a, b]
    max_entities: {max_entities}
    idle_ttl_seconds: 1000
    model: {{type: {model}, seed: 1{extra}}}
    training: {{enabled: {training}, background: false, every_events: 50, every_seconds: 1.0e9, min_events: 16, window: 8, steps: 2}}
    scoring: {{warmup_events: 5, short_window: 3, long_window: 50, suppress_events: 2, threshold: 0.4}}
"""


ONE_FEATURE_GRU = """
detectors:
  - name: d
    topics: [t]
    entity: host
    timestamp: {field: ts}
    features: [v]
    model: {type: gru, hidden: 4}
"""


def _one_feature_gru(settings: str):
    """Detector ``d``'s config: a small GRU on feature ``v``, plus ``settings`` (detector-level YAML lines)."""
    return load_config(ONE_FEATURE_GRU + settings).detectors[0]


def _det(model="gru", max_entities=100, training=True, profile_bins=None) -> Detector:
    """``model`` is a type name, optionally with a layer count: ``"lstm:2"``."""
    model, _, layers = model.partition(":")
    extra = ", hidden: 4" if model in ("gru", "lstm") else ""
    extra += f", layers: {layers}" if layers else ""
    text = YAML.format(model=model, extra=extra, max_entities=max_entities, training=str(training).lower())
    if profile_bins is not None:
        text += f"    time_features: {{daily_profile_bins: {profile_bins}}}\n"
    return Detector(load_config(text).detectors[0])


def _det_log(log_features: str) -> Detector:
    text = YAML.format(model="gru", extra=", hidden: 4", max_entities=100, training="true")
    return Detector(load_config(text + f"    log_features: {log_features}\n").detectors[0])


def test_log_features_are_modelled_on_a_log_scale_and_predicted_in_their_own_units():
    """A detector with ``log_features: [b]`` fed x behaves exactly as one without, fed b on the log scale:
    the same normalised values, errors, scores, flags and training; b's predictions come back in b's units."""
    ents, x, ts = _stream(600)
    x[:, 1] = np.floor(np.exp(x[:, 1]))       # a counter: 0 to e^45
    x[::97, 1] *= -1                           # and a few negative values (a signed delta)
    given = x.copy()
    logged, plain = _det_log("[b]"), _det()
    y = x.copy()
    y[:, 1] = to_log(y[:, 1])
    for s in range(0, len(ents), 64):
        a = logged.process(ents[s:s + 64], x[s:s + 64], ts[s:s + 64])
        b = plain.process(ents[s:s + 64], y[s:s + 64], ts[s:s + 64])
        np.testing.assert_array_equal(a.z, b.z)
        np.testing.assert_array_equal(a.err, b.err)
        np.testing.assert_array_equal(a.score, b.score)
        np.testing.assert_array_equal(a.flag, b.flag)
        np.testing.assert_array_equal(a.pred[:, 0], b.pred[:, 0])
        np.testing.assert_allclose(a.pred[:, 1], from_log(b.pred[:, 1]), rtol=1e-12)
    np.testing.assert_array_equal(x, given)              # the caller's array is not changed
    assert logged.model.version == plain.model.version > 0   # trained alike
    assert np.abs(a.pred[:, 1] - x[s:s + 64, 1]).mean() < np.abs(x[s:s + 64, 1]).mean()   # in b's units


def test_log_features_keep_extreme_values_finite():
    det = _det_log("[a, b]")
    x = np.array([[MAX_ABS_VALUE, -MAX_ABS_VALUE], [0.0, 0.0], [-MAX_ABS_VALUE, 1e-300]] * 30)
    res = det.process([f"h{i % 2}" for i in range(len(x))], x, 1.7e9 + 60.0 * np.arange(len(x)))
    assert len(res.index) == len(x)
    for arr in (res.pred, res.z, res.err, res.score):
        assert np.isfinite(arr).all()
    assert np.abs(res.pred).max() <= MAX_ABS_VALUE
    np.testing.assert_allclose(from_log(to_log(np.array([-1e100, -3.5, 0.0, 2.0, 1e100]))),
                               [-1e100, -3.5, 0.0, 2.0, 1e100], rtol=1e-12)


def _stream(n=200, n_entities=4, seed=0, spikes=0.03):
    rng = np.random.default_rng(seed)
    ents = [f"h{e}" for e in rng.integers(0, n_entities, n)]
    ts = 1.7e9 + np.cumsum(rng.exponential(10.0, n))
    x = rng.standard_normal((n, 2)) + 5
    x[rng.random(n) < spikes] += 40
    return ents, x, ts


def _rows(res):
    return np.column_stack([res.pred, res.z, res.err, res.score, res.flag]).copy()


@pytest.mark.parametrize("model", ["gru", "naive"])
def test_non_finite_rows_rejected_with_reason_and_never_touch_state(model):
    ents, x, ts = _stream()
    bad_x, bad_ts = x.copy(), ts.copy()
    bad_ents = list(ents)
    bad = {3: "nan", 10: "inf", 11: "-inf", 50: "ts", 120: "newcomer"}
    bad_x[3, 0] = np.nan
    bad_x[10, 1] = np.inf
    bad_x[11, 0] = -np.inf
    bad_ts[50] = np.nan
    bad_ents[120] = "only-bad"          # an entity whose only event is rejected
    bad_x[120, 1] = np.nan
    clean, dirty = _det(model), _det(model)
    try:
        keep = [i for i in range(len(ents)) if i not in bad]
        want = clean.process([ents[i] for i in keep], x[keep], ts[keep])
        got = dirty.process(bad_ents, bad_x, bad_ts)
        assert got.rejected == [(i, REASON_NON_FINITE) for i in sorted(bad)]
        np.testing.assert_array_equal(got.index, keep)
        assert _rows(got).tobytes() == _rows(want).tobytes()
        assert "only-bad" not in dirty.state.index
        assert dirty.state.index.keys() == clean.state.index.keys()
        for k, arr in clean.state.arrays.items():
            assert dirty.state.arrays[k].tobytes() == arr.tobytes(), k
        assert dirty.training.events == clean.training.events == len(keep)
        assert dirty.watermark == clean.watermark
    finally:
        clean.close()
        dirty.close()


def test_all_rows_rejected():
    det = _det()
    try:
        res = det.process(["a", "b"], np.array([[np.nan, 1.0], [1.0, 1.0]]), np.array([1.0, np.inf]))
        assert res.rejected == [(0, REASON_NON_FINITE), (1, REASON_NON_FINITE)]
        assert len(res.index) == len(res.score) == 0 and len(det.state) == 0
        assert det.watermark == float("-inf")
    finally:
        det.close()


def test_results_map_back_to_input_positions():
    ents, x, ts = _stream(n=60)
    x[7, 0] = np.nan
    det = _det("naive", training=False)
    try:
        res = det.process(ents, x, ts)
        assert len(res.index) == len(res.pred) == 59 and 7 not in res.index.tolist()
        # Row k describes input position index[k]: the naive model's first prediction for an
        # entity is its observation, and z is the normalised input, 0 at each entity's first event.
        first = {}
        for k, pos in enumerate(res.index):
            first.setdefault(ents[pos], (k, pos))
        for k, pos in first.values():
            np.testing.assert_array_equal(res.pred[k], x[pos])
            assert np.all(res.z[k] == 0.0)
        # An entity's second accepted event is predicted as its first (persistence, z = 0).
        seen = {}
        for k, pos in enumerate(res.index):
            seen[ents[pos]] = seen.get(ents[pos], []) + [pos]
            if len(seen[ents[pos]]) == 2:
                np.testing.assert_allclose(res.pred[k], x[seen[ents[pos]][0]], rtol=1e-12)
    finally:
        det.close()


def test_batch_result_helpers():
    ents, x, ts = _stream(n=300, n_entities=1, spikes=0.0)
    x[150:] += 100.0
    det = _det("naive", training=False)
    try:
        res = det.process(ents, x, ts)
        assert len(res.anomalies) > 0 and np.all(res.flag[res.anomalies] & FLAG_ANOMALY)
        reported = res.reported_score()
        suppressed = (res.flag & FLAG_SUPPRESSED) != 0
        assert suppressed.any()
        assert np.all(reported[suppressed] == 0) and np.array_equal(reported[~suppressed], res.score[~suppressed])
    finally:
        det.close()


def test_entity_eviction_reported():
    det = _det("naive", max_entities=3, training=False)
    one = np.ones((1, 2))
    try:
        for t, e in enumerate(["a", "b", "c", "a"]):
            assert det.process([e], one, np.array([float(t)])).evicted == []
        res = det.process(["d"], one, np.array([10.0]))
        assert res.evicted == ["b"]                      # least recently seen
        res = det.process(["e", "a", "f"], np.ones((3, 2)), np.array([11.0, 12.0, 13.0]))
        assert res.evicted == ["c", "d"]                 # never "a", which is in this batch
        assert set(det.state.index) == {"a", "e", "f"}
        assert det.state.evicted_total == 3
    finally:
        det.close()


def test_evict_idle_uses_event_time_watermark():
    det = _det("naive", training=False)
    try:
        det.process(["old", "new"], np.ones((2, 2)), np.array([0.0, 500.0]))
        assert det.evict_idle() == []                   # watermark 500, ttl 1000
        det.process(["new"], np.ones((1, 2)), np.array([1500.0]))
        assert det.evict_idle() == ["old"]
        assert set(det.state.index) == {"new"}
    finally:
        det.close()


def test_batch_larger_than_output_buffer():
    det = Detector(load_config(YAML.format(model="naive", extra="", max_entities=10, training="false")).detectors[0],
                   batch_capacity=8)
    ents, x, ts = _stream(n=50)
    try:
        res = det.process(ents, x, ts)
        assert len(res.index) == 50 and np.all(np.isfinite(res.score))
    finally:
        det.close()


def _run_batched(cfg, ents, x, ts, batch: int) -> tuple[np.ndarray, int, int]:
    """Outputs (pred, err, score, flag, model version per event), evictions and the final model
    version of a fresh detector fed the stream in batches of ``batch``."""
    det = Detector(cfg, background=False)
    got, evicted = [], 0
    try:
        for lo in range(0, len(ents), batch):
            res = det.process(ents[lo:lo + batch], x[lo:lo + batch], ts[lo:lo + batch])
            got.append(np.column_stack([res.pred[:, 0], res.err, res.score, res.flag, res.model_version]))
            evicted += len(res.evicted)
        return np.concatenate(got), evicted, det.model.version
    finally:
        det.close()


def test_eviction_and_idle_expiry_do_not_depend_on_batching():
    """More entities than max_entities, and gaps beyond the idle TTL: outputs are a function of the
    event sequence alone, whatever the batch sizes (the daemon's restart promise rests on this)."""
    cfg = _one_feature_gru("""
    max_entities: 6
    idle_ttl_seconds: 1500
    training: {every_events: 97, min_events: 64, window: 8, steps: 2, batch_windows: 4}
    scoring: {warmup_events: 5}
""")
    rng = np.random.default_rng(3)
    n = 900
    ents = [f"e{k}" for k in rng.choice(8, size=n, p=[.3, .25, .15, .1, .08, .06, .04, .02])]
    ts = np.cumsum(rng.exponential(60.0, n))
    x = rng.normal(size=(n, 1))
    runs = [_run_batched(cfg, ents, x, ts, batch) for batch in (1, 7, 250, n)]
    first, n_evicted, version = runs[0]
    assert n_evicted > 0 and version > 0   # both mechanisms were exercised
    for other, other_evicted, other_version in runs[1:]:
        np.testing.assert_array_equal(other, first)
        assert (other_evicted, other_version) == (n_evicted, version)


def test_late_events_are_refused_in_order_and_touch_no_state():
    cfg = _one_feature_gru("""
    late_tolerance_seconds: 30
""")
    det = Detector(cfg, background=False)
    try:
        # a: 100, 200, then 150 (late by 50 > 30), 180 (late by 20: accepted), b: 120 (its first event)
        res = det.process(["a", "a", "a", "a", "b"], np.array([[1.0], [2.0], [9.0], [3.0], [4.0]]),
                          np.array([100.0, 200.0, 150.0, 180.0, 120.0]))
        assert res.rejected == [(2, "late")]
        assert res.index.tolist() == [0, 1, 3, 4]
        assert not (res.flag & 4).any()
        slot = det.state.index["a"]
        assert det.state["count"][slot] == 3 and det.state["last_ts"][slot] == 180.0
    finally:
        det.close()


def test_event_time_training_triggers_do_not_depend_on_batching():
    cfg = _one_feature_gru("""
    training: {every_events: 1000000, every_seconds: 3600, min_events: 64, window: 8, steps: 2, batch_windows: 4}
""")
    rng = np.random.default_rng(5)
    n = 600
    ents = [f"e{k}" for k in rng.integers(0, 4, n)]
    ts = np.cumsum(rng.exponential(60.0, n))
    x = rng.normal(size=(n, 1))
    runs = [_run_batched(cfg, ents, x, ts, batch)[0] for batch in (1, 13, n)]
    assert runs[0][-1, 4] >= 5          # ~10 h of event time: retrained about hourly
    for other in runs[1:]:
        np.testing.assert_array_equal(other, runs[0])


@pytest.mark.parametrize("model", ["gru", "esn", "lstm", "gru:2", "lstm:2"])
def test_restore_from_shard_snapshot_and_entity_rows_continues_identically(model):
    """What a changelog carries (the detector without its rows, plus every entity's row) is enough
    to continue with bit-identical outputs, in a detector whose slot numbers differ."""
    ents, x, ts = _stream(n=400, n_entities=6, seed=4)
    whole, split = _det(model), _det(model)
    try:
        whole.process(ents, x, ts)
        split.process(ents[:250], x[:250], ts[:250])
        arrays, meta = split.snapshot(entities=False)
        rows = split.state.export()
        back = _det(model)
        try:
            back.state.assign(["someone-else"])   # shifts every slot number
            back.state.drop(["someone-else"])
            back.state.restore_entities(rows)
            back.restore(arrays, meta, entities=False)
            a = _rows(split.process(ents[250:], x[250:], ts[250:]))
            b = _rows(back.process(ents[250:], x[250:], ts[250:]))
            np.testing.assert_array_equal(a, b)
            for name in whole.state.fields:
                np.testing.assert_array_equal(back.state.export(sorted(whole.state.index)).arrays[name],
                                              whole.state.export(sorted(whole.state.index)).arrays[name])
        finally:
            back.close()
    finally:
        whole.close()
        split.close()


SAMPLED = """
    max_entities: 6
    idle_ttl_seconds: 1500
    training: {{every_events: 97, min_events: 64, window: 8, steps: 2, batch_windows: 4, sample_entities: {sample}}}
    scoring: {{warmup_events: 5}}
"""


def _sampled_stream(n=900, seed=3):
    rng = np.random.default_rng(seed)
    ents = [f"e{k}" for k in rng.choice(8, size=n, p=[.3, .25, .15, .1, .08, .06, .04, .02])]
    return ents, rng.normal(size=(n, 1)), np.cumsum(rng.exponential(60.0, n))


def test_sampled_rings_do_not_depend_on_batching_and_matter_for_training():
    """Rings for 2 of up to 6 live entities (8 in all, evictions and idle expiry free rings): outputs
    are a function of the event sequence alone; they differ from a run where every entity keeps one
    (the sample decides what training sees); a sample of 6 or more is the same as one of 4096."""
    ents, x, ts = _sampled_stream()
    runs = {}
    for sample in (2, 6, 4096):
        cfg = _one_feature_gru(SAMPLED.format(sample=sample))
        runs[sample] = [_run_batched(cfg, ents, x, ts, batch) for batch in (1, 7, 250, len(ents))]
        first, n_evicted, version = runs[sample][0]
        assert n_evicted > 0 and version > 0
        for other, other_evicted, other_version in runs[sample][1:]:
            np.testing.assert_array_equal(other, first)
            assert (other_evicted, other_version) == (n_evicted, version)
    np.testing.assert_array_equal(runs[6][0][0], runs[4096][0][0])
    assert runs[2][0][0].tobytes() != runs[6][0][0].tobytes()


def test_no_rings_means_no_training_but_the_same_scoring_until_then():
    ents, x, ts = _sampled_stream(n=400)
    none = Detector(_one_feature_gru(SAMPLED.format(sample=0)), background=False)
    some = Detector(_one_feature_gru(SAMPLED.format(sample=6)), background=False)
    try:
        a, b = none.process(ents, x, ts), some.process(ents, x, ts)
        assert none.state.pool_used() == 0 and none.state["ring_in"].shape[0] == 0
        assert none.model.version == 0 and none.training.stats.runs_ok == 0 and some.model.version > 0
        first_fit = int(np.argmax(b.model_version > 0))
        np.testing.assert_array_equal(_rows(a)[:first_fit], _rows(b)[:first_fit])
    finally:
        none.close()
        some.close()


@pytest.mark.parametrize("via", ["file", "changelog"])
def test_restore_carries_which_entities_keep_rings(via):
    """After a restart from a file snapshot or from the changelog's parts (entity rows, then the
    detector without them), the same entities keep rings and outputs continue bit for bit."""
    ents, x, ts = _sampled_stream(n=900, seed=8)
    cfg = _one_feature_gru(SAMPLED.format(sample=3))
    whole, split = Detector(cfg, background=False), Detector(cfg, background=False)
    back = Detector(cfg, background=False)
    try:
        want = _rows(whole.process(ents, x, ts))
        head = _rows(split.process(ents[:500], x[:500], ts[:500]))
        ringed = sorted(e for e, s in split.state.index.items() if split.state["pool_row"][s])
        assert len(ringed) == 3 and len(split.state) > 3
        if via == "file":
            back.restore(*split.snapshot())
        else:
            arrays, meta = split.snapshot(entities=False)
            back.state.assign(["someone-else"])   # shifts slot and ring row numbers
            back.state.drop(["someone-else"])
            back.state.restore_entities(split.state.export())
            back.restore(arrays, meta, entities=False)
        assert sorted(e for e, s in back.state.index.items() if back.state["pool_row"][s]) == ringed
        tail = _rows(back.process(ents[500:], x[500:], ts[500:]))
        np.testing.assert_array_equal(np.concatenate([head, tail]), want)
        assert back.model.version == whole.model.version > 0
    finally:
        for det in (whole, split, back):
            det.close()


@pytest.mark.parametrize("layout", [1, 2, 3, 4, 5])
def test_a_checkpoint_of_an_earlier_scorer_layout_is_restored_with_what_it_learnt(layout, legacy_scorer_rows):
    """An upgrade keeps the entities' state: rows of an earlier layout (no record rate, no cross-feature
    test, float64 profile means; no profile distance; no scale in the features' own units, no level
    test; the level test's regression on the others' mean) are copied into this one, the new numbers at
    a fresh entity's values (the scale in own units pending, taken from the normalised one at the
    entity's next event; the level test on its own count, with an empty covariance).
    Rows are read by the layout the checkpoint records (layouts 1 and 2 recorded none), not by their
    width alone. 36 profile bins: at 24, 32, 40 and 48 an earlier layout's rows and this build's have
    the same width with two features, and a row recorded as this build's could not be told from one
    read by width."""
    from rnnstream.kernels import calibrate as C

    ents, x, ts = _stream(n=300, n_entities=4, seed=2)
    det, back = _det(profile_bins=36), _det(profile_bins=36)
    try:
        det.process(ents[:200], x[:200], ts[:200])
        arrays, meta = det.snapshot()
        bins = int(det.cfg.time_features.daily_profile_bins)
        assert bins > 0
        rows = arrays["slot.sc"]
        pf, qt, _ = C.LAYOUTS[layout]
        legacy = {**arrays, "slot.sc": legacy_scorer_rows(rows, 2, bins, layout)}
        assert legacy["slot.sc"].shape[1] != rows.shape[1]
        old_meta = {k: v for k, v in meta.items() if k != "scorer_layout"}   # builds before layout 3 did not record it
        if layout in C.UNRECORDED_LAYOUTS:
            with pytest.raises(ValueError, match="match neither this build's layout"):
                _det(profile_bins=36).restore(legacy, meta)    # recorded as this build's layout: not read by width
        else:
            old_meta["scorer_layout"] = layout
            with pytest.raises(ValueError, match="match neither this build's layout"):
                _det(profile_bins=36).restore(legacy, {k: v for k, v in meta.items() if k != "scorer_layout"})
        back.restore(legacy, old_meta)
        got = back.state.arrays["sc"]
        live = rows[:, C.SC_N] > 0
        assert live.sum() == 4
        want = rows.copy()
        for f in range(2):
            if pf <= C.FS_RECORDS:
                want[live, C.SC_FEAT + C.PF * f + C.FS_RECORDS] = 0.0
            if pf <= C.FS_PROFILE_ERR:
                want[live, C.SC_FEAT + C.PF * f + C.FS_PROFILE_ERR] = C.PROFILE_ERR0
            q = rows.shape[1] - C.QT_SIZE * (2 - f)
            if qt <= C.XC_EM:
                want[live, q + C.XC_EM:q + C.XC_SCALE + 1] = 0.0
                want[live, q + C.XC_TAIL:q + C.XC_TAIL + 4] = [C.RATE0, 1.0, 2.0, 0.0]
            if qt <= C.QT_RAW_SCALE:
                want[live, q + C.QT_RAW_SCALE] = C.RAW_SCALE_PENDING
            # the level test starts afresh, on its own count
            want[live, q + C.LV_N:q + C.LV_TAIL] = 0.0
            want[live, q + C.LV_TAIL:q + C.LV_TAIL + 4] = [C.S_RATE0, C.S_M1, 2.0 * C.S_M1 * C.S_M1, 0.0]
        c0 = C.cov_offset(rows.shape[1], 2)
        want[:, c0:c0 + C.cov_size(2)] = 0.0
        np.testing.assert_array_equal(got[:rows.shape[0]][live], want[live])
        out = back.process(ents[200:], x[200:], ts[200:])
        assert np.all(np.isfinite(out.score[:100])) and np.all((out.score[:100] >= 0) & (out.score[:100] <= 1))
        raw = [back.state.arrays["sc"][:, rows.shape[1] - C.QT_SIZE * (2 - f) + C.QT_RAW_SCALE] for f in range(2)]
        assert all(np.all(r[:rows.shape[0]][live] > 0) for r in raw)   # every entity has had an event: none pending
        bad = _det(profile_bins=36)
        try:
            with pytest.raises(ValueError, match="match neither this build's layout"):
                bad.restore({**arrays, "slot.sc": rows[:, :-1]}, meta)
        finally:
            bad.close()
    finally:
        det.close()
        back.close()
