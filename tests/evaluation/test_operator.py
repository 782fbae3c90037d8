"""Operator figures on a hand-built stream whose answers are counted by hand."""

from __future__ import annotations

import math

import numpy as np

from rnnstream.evaluation.operator import found_by_chance, stream_outcome, summarise


def _stream():
    """Entities A (code 0) and B (code 1) alternate, 20 rows each, one row a minute per entity.

    Probation is floor(0.15 * 20) = 3 rows per entity. A's window is its rows 8-9 ("mean"), B's is its
    row 12 ("spike"); with tolerance 2 they span A 8-11 and B 12-14.
    A alarms at its rows 1 (probation: ignored), 10 (inside: found, 2 rows / 120 s late) and 15 (false).
    B alarms at its row 5 (false) and row 16 (false: after the extended window).
    """
    n = 20
    entity = np.tile([0, 1], n)
    ts = np.repeat(np.arange(n) * 60, 2) + np.tile([0, 1], n)
    alarm = np.zeros(2 * n, dtype=bool)
    for code, rows in ((0, (1, 10, 15)), (1, (5, 16))):
        alarm[2 * np.array(rows) + code] = True
    windows = {0: [(8 * 60, 9 * 60, "mean")], 1: [(12 * 60 + 1, 12 * 60 + 1, "spike")]}
    return entity, ts, alarm, windows


def test_found_delay_and_false_alarms_counted_by_hand():
    entity, ts, alarm, windows = _stream()
    o = stream_outcome(entity, ts, alarm, windows, "cat", tolerance=2)
    s = summarise(o)
    assert s["anomalies"] == 2
    assert s["found_pct"] == 50.0
    assert s["found_pct_by_type"] == {"mean": 100.0, "spike": 0.0}
    assert s["found_pct_by_category"] == {"cat": 50.0}
    assert s["delay_rows"] == 2.0 and s["delay_seconds"] == 120.0
    assert s["rows"] == 34                      # 17 scored rows per entity
    assert s["alarms"] == 4                     # row 1 of A is in probation
    assert s["false_alarms"] == 3
    assert math.isclose(s["fa_per_10k"], 3 / 34 * 1e4)
    assert s["alarms_per_true"] == 4.0


def test_tolerance_decides_whether_a_late_alarm_counts():
    entity, ts, alarm, windows = _stream()
    late = summarise(stream_outcome(entity, ts, alarm, windows, "cat", tolerance=0))
    assert late["found_pct"] == 0.0 and late["false_alarms"] == 4
    wide = summarise(stream_outcome(entity, ts, alarm, windows, "cat", tolerance=4))
    assert wide["found_pct_by_type"] == {"mean": 100.0, "spike": 100.0}   # B's row 16 = 12 + 4
    assert wide["false_alarms"] == 2


def test_windows_inside_probation_and_without_rows_are_not_scored():
    entity = np.zeros(20, dtype=np.int64)
    ts = np.arange(20) * 60
    alarm = np.zeros(20, dtype=bool)
    windows = {0: [(60, 60, "early"), (600 + 10, 600 + 20, "in a gap")]}
    s = summarise(stream_outcome(entity, ts, alarm, windows, "cat", tolerance=0))
    assert s["anomalies"] == 0 and math.isnan(s["found_pct"])


def test_calibration_counts_unsuppressed_scores_on_normal_rows_only():
    entity, ts, alarm, windows = _stream()
    score = np.zeros(ts.size)
    score[2 * np.array([1, 9, 15]) + 0] = [0.9, 0.9, 0.55]   # A: probation, inside its window, normal
    score[2 * np.array([5, 6]) + 1] = [0.35, 0.8]             # B: two normal rows
    o = stream_outcome(entity, ts, alarm, windows, "cat", tolerance=2, score=score)
    normal = 34 - 4 - 3                                        # scored rows minus A 8-11 and B 12-14
    assert o.normal_rows == normal and o.normal_over == (3, 2, 1)
    s = summarise(o + o)
    assert s["normal_over_per_10k"] == {lv: 1e4 * c / normal for lv, c in zip((0.3, 0.5, 0.7), (3, 2, 1))}
    assert summarise(stream_outcome(entity, ts, alarm, windows, "cat"))["normal_over_per_10k"] == {}


def _rotations_finding(alarms, rows, first, last):
    """Brute force: the share of the ``rows`` rotations that put an alarm in ``first..last``."""
    hits = 0
    for d in range(rows):
        moved = (np.asarray(alarms) + d) % rows
        hits += bool(np.any((moved >= first) & (moved <= last)))
    return hits / rows


def test_found_by_chance_equals_counting_every_rotation():
    rng = np.random.default_rng(0)
    for _ in range(200):
        rows = int(rng.integers(1, 40))
        alarms = np.sort(rng.choice(rows, size=int(rng.integers(0, rows + 1)), replace=False))
        first = int(rng.integers(0, rows))
        last = int(rng.integers(first, rows))
        assert math.isclose(found_by_chance(alarms, rows, first, last),
                            _rotations_finding(alarms, rows, first, last)), (alarms, rows, first, last)


def test_found_by_chance_in_the_summary():
    """Each entity has 17 scored rows. A's scored alarms (rows 10 and 15, scored 7 and 12) each land in
    its span of 4 rows (8-11) at 4 rotations, never the same: 8 of 17. B's (rows 5 and 16) land in its
    span of 3 rows (12-14) at 3 rotations each: 6 of 17."""
    entity, ts, alarm, windows = _stream()
    s = summarise(stream_outcome(entity, ts, alarm, windows, "cat", tolerance=2))
    a = 8 / 17
    b = 6 / 17
    assert math.isclose(s["found_by_chance_pct"], 100.0 * (a + b) / 2)
    quiet = summarise(stream_outcome(entity, ts, np.zeros_like(alarm), windows, "cat", tolerance=2))
    assert quiet["found_by_chance_pct"] == 0.0 and quiet["found_pct"] == 0.0


def test_found_by_an_alarm_blaming_a_labelled_feature():
    """One entity, 20 rows, two features; windows on feature 1 at rows 8-9 and on feature 0 at rows
    14-15 (tolerance 0). The alarm at row 9 blames feature 1 (found, blamed); the one at row 15 blames
    feature 1 only (found, not blamed). A window without labelled features is not counted."""
    entity = np.zeros(20, dtype=np.int64)
    ts = np.arange(20) * 60
    alarm = np.zeros(20, dtype=bool)
    alarm[[9, 15]] = True
    kind = np.zeros((20, 2), dtype=np.uint8)
    kind[9, 1] = 1
    kind[15, 1] = 3
    windows = {0: [(8 * 60, 9 * 60, "mean", (1,)), (14 * 60, 15 * 60, "spike", (0,)), (4 * 60, 4 * 60, "x", ())]}
    s = summarise(stream_outcome(entity, ts, alarm, windows, "cat", tolerance=0, kind=kind))
    assert s["found_pct"] == 200 / 3 and s["found_blamed_pct"] == 50.0
    assert math.isnan(summarise(stream_outcome(entity, ts, alarm, windows, "cat", tolerance=0))["found_blamed_pct"])
