"""The behaviours issue 8's independent checks test, with the shipped defaults (config/example.yaml).

Each scenario is small (10,000 events for the SRE stream, 8 x 1,500 rows for the test bed) and scores in
well under a second once the kernels are compiled. Known limits are ``xfail(strict=True)``, explained
in the README ("Evaluation", "Scenarios"): they turn into failures the day they are fixed.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import numpy as np
import pytest

from rnnstream.cli import main
from rnnstream.evaluation import scenarios as S

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = str(REPO / "config" / "example.yaml")
SRE_SEEDS = (0, 1, 2, 3, 4, 5)
FALSE_ALARMS_PER_10K = 10.0   # 10,000 events = 5 hosts for 33 h at 1 min: at most 2 false pages a host-week


@lru_cache(maxsize=None)
def _cfg(novelty: float | None = None, naive: bool = False):
    overrides = {}
    if novelty is not None:
        overrides["scoring.novelty_tolerance"] = novelty
    if naive:
        overrides["model"] = {"type": "naive"}
    return S.detector_config(EXAMPLE, None, overrides)


@lru_cache(maxsize=None)
def _report(family: str, seed: int, novelty: float | None = None) -> S.Report:
    return S.run(family, seed, _cfg(novelty))


def _one(rep: S.Report, name: str) -> S.AnomalyOutcome:
    (a,) = [a for a in rep.anomalies if a.name == name]
    return a


# ---------------------------------------------------------------- the generators

def test_same_seed_same_rows_and_seeds_are_variants():
    a, b, c = S.sre(0), S.sre(0), S.sre(1)
    sa, sb, sc = a.streams[0], b.streams[0], c.streams[0]
    assert np.array_equal(sa.values, sb.values) and np.array_equal(sa.timestamps, sb.timestamps)
    assert sa.injected == sb.injected
    assert np.diff(np.unique(sa.timestamps))[0] == 60.0 and np.diff(np.unique(sc.timestamps))[0] == 120.0
    assert {x.name for x in sa.injected} == {"blip", "spike", "level_shift", "flatline_repeat"}
    assert {x.name for x in sc.injected} == {"blip", "spike", "level_shift", "flatline_zeros"}
    assert np.array_equal(S.sensors(3).streams[5].values, S.sensors(3).streams[5].values)
    assert not np.array_equal(S.sensors(3).streams[5].values, S.sensors(4).streams[5].values)


def test_sre_stream_is_metric_like():
    st = S.sre(2).streams[0]                       # 5-minute sampling: 2,000 events = ~7 days
    assert len(st.entity_names) == 5 and st.values.shape == (10_000, 3)
    assert np.all(np.diff(st.timestamps) >= 0)      # arrival order
    spike, blip = (next(x for x in st.injected if x.name == n) for n in ("spike", "blip"))
    assert spike.entity == blip.entity and st.timestamps[spike.first] - st.timestamps[blip.first] == 2400.0
    normal = [h for h in st.entity_names if h not in {x.entity for x in st.injected}]
    assert len(normal) == 2
    cpu = st.values[st.entity == st.entity_names.index(normal[0]), 0]
    hours = ((st.timestamps[st.entity == 0] - S.START) % 86400) // 3600
    by_hour = np.array([cpu[hours == h].mean() for h in range(24)])
    assert by_hour.max() - by_hour.min() > 5 * np.std(np.diff(cpu)) / np.sqrt(2)   # a daily pattern above the noise
    flat = next(x for x in st.injected if x.name.startswith("flatline"))
    rows = st.values[flat.first:flat.last + 1][st.entity[flat.first:flat.last + 1] == st.entity_names.index(flat.entity)]
    assert len(rows) == 72 and (rows == rows[0]).all()                            # 6 hours at 5 minutes


def test_test_bed_sensors_share_a_latent_process_and_each_file_has_one_fault_in_one_or_two_sensors():
    sc = S.sensors(0)
    assert len(sc.streams) == 8 and [s.injected[0].name for s in sc.streams[:4]] == list(S.SENSOR_FAULTS)
    for st in sc.streams:
        assert st.values.shape == (1500, 8) and len(st.injected) == 1
        fault = st.injected[0]
        assert 1 <= len(fault.features) <= 2 and fault.first >= 0.6 * 1500
        corr = np.corrcoef(st.values[: fault.first].T)
        assert np.median(np.abs(corr[np.triu_indices(8, 1)])) > 0.5   # correlated through the latent


# ---------------------------------------------------------------- the SRE stream, shipped defaults

@pytest.mark.parametrize("seed", [s for s in SRE_SEEDS if s != 5])
def test_large_spike_after_a_marginal_blip_is_published(seed):
    a = _one(_report("sre", seed), "spike")
    assert a.published and a.delay_events == 0 and a.blamed == ("cpu",)


def test_the_blip_mostly_raises_the_marginal_alarm_that_starts_suppression():
    """So that the test above exercises suppression's break-through, as in the issue's check."""
    assert sum(_one(_report("sre", s), "blip").published for s in SRE_SEEDS[:5]) >= 3


def test_large_spike_after_a_strong_alarm_is_published():
    """At seed 5 the blip scores 0.925: the spike breaks through as a new incident with a 10x smaller p-value."""
    rep = _report("sre", 5)
    assert _one(rep, "blip").published
    assert _one(rep, "spike").published


@pytest.mark.parametrize("seed", SRE_SEEDS)
def test_latency_level_shift_is_published_and_blamed_on_latency(seed):
    a = _one(_report("sre", seed), "level_shift")
    assert a.published and a.delay_events <= 3 and "latency_ms" in a.blamed


@pytest.mark.parametrize("seed", SRE_SEEDS)
def test_dead_exporter_flatline_is_found_as_a_flatline(seed):
    rep = _report("sre", seed)
    (a,) = [a for a in rep.anomalies if a.name.startswith("flatline")]
    assert a.published and "flatline" in a.kinds and set(a.blamed) <= set(S.SRE_FEATURES)
    assert a.delay_events <= 15            # within 15 events (15-75 minutes) of the exporter dying


@pytest.mark.xfail(strict=True, reason="the novelty rule: every new extreme of a noisy metric (heavy-tailed latency, "
                                       "Poisson counts, a daily cycle still being learnt) scores 1 (README: Scenarios)")
def test_sre_false_alarms_per_10k_under_bound():
    rate = np.mean([_report("sre", s).figures()["false alarms /10k"] for s in SRE_SEEDS[:3]])
    assert rate < FALSE_ALARMS_PER_10K


def test_without_novelty_sre_false_alarms_are_under_bound_and_every_anomaly_is_still_published():
    """README, Tuning: ``novelty_tolerance: 0`` for noisy metrics; the calibrated tests still find everything."""
    reps = [_report("sre", s, 0.0) for s in SRE_SEEDS[:3]]
    assert np.mean([r.figures()["false alarms /10k"] for r in reps]) < FALSE_ALARMS_PER_10K
    for rep in reps:
        for a in rep.anomalies:
            if a.scored:
                assert a.published and S.kind_named(a), a


# ---------------------------------------------------------------- the 8-sensor test bed, shipped defaults

@pytest.mark.parametrize("seed", [0, 1])
def test_stuck_sensor_is_found_as_a_flatline_and_blamed_on_it(seed):
    for a in _report("sensors", seed).anomalies:
        if a.name == "stuck":
            assert a.published and "flatline" in a.kinds and set(a.features) & set(a.blamed), a


@pytest.mark.parametrize("seed", [0, 1])
def test_a_fault_in_one_or_two_of_eight_sensors_is_published_blaming_a_faulty_sensor(seed):
    for a in _report("sensors", seed).anomalies:
        if a.name in ("level_shift", "noise_rise"):
            assert a.published and set(a.features) & set(a.blamed), a


@pytest.mark.xfail(strict=True, reason="the novelty rule: the shared operating point reaches new extremes on healthy "
                                       "sensors, so most alarms blame them (README: Scenarios)")
def test_sensor_faults_are_blamed_only_on_the_faulty_sensors():
    outs = [a for s in (0, 1) for a in _report("sensors", s).anomalies if a.published]
    assert sum(set(a.blamed) <= set(a.features) for a in outs) >= 0.75 * len(outs)


@pytest.mark.xfail(strict=True, reason="the novelty rule (README: Scenarios)")
def test_sensor_false_alarms_per_10k_under_bound():
    assert np.mean([_report("sensors", s).figures()["false alarms /10k"] for s in (0, 1)]) < FALSE_ALARMS_PER_10K


def test_the_grus_alarms_are_not_naive_persistences():
    """Issue 8 found the GRU's alerts identical to the naive model's on every file."""
    rep = S.run("sensors", 0, _cfg(), _cfg(naive=True))
    assert sum(rep.differs_from_naive) >= 2


# ---------------------------------------------------------------- the measures themselves

def test_assess_counts_published_spans_false_alarms_and_f1():
    st = S.Stream("s", ("a", "b"), ["e0", "e1"], np.array([0, 1] * 50), np.repeat(np.arange(50.0), 2),
                  np.zeros((100, 2)), [S.Injected("shift", "e1", 41, 61, ("b",), "level_shift")])
    scores = S.Scores(np.zeros(100), np.zeros(100, dtype=bool), np.zeros((100, 2), dtype=np.uint8))
    scores.alarm[[45, 80, 20]] = True            # e1's 3rd event in the span, e1 past the span (+10), e0
    scores.kind[45, 1] = 3
    scores.kind[20, 0] = 5                       # e0's alarm: the novelty rule
    scores.score[[45, 51]] = [0.7, 0.9]
    out = S.assess(st, scores)
    (a,) = out.anomalies
    assert a.published and a.delay_events == 2 and a.delay_seconds == 2.0 and a.peak == 0.9
    assert a.kinds == ("level_shift",) and a.blamed == ("b",)
    assert out.false_alarms == 2 and out.alarms == 3 and out.novelty_alarms == 1
    rep = S.Report("sensors", 0, "", [out])
    assert rep.figures()["event F1"] == pytest.approx(2 * (1 / 3) * 1 / (1 / 3 + 1))
    # point-wise: the published flag hits 1 of the 11 labelled rows of e1 (41..61 by 2) with 3 flagged rows;
    # without an anomalous flag it stands in; with one, 5 flagged rows of which 3 labelled
    f1 = lambda p, r: 2 * p * r / (p + r)
    assert rep.figures()["point F1 anomalous"] == rep.figures()["point F1"] == pytest.approx(f1(1 / 3, 1 / 11))
    scores.anomalous = scores.alarm.copy()
    scores.anomalous[[47, 49]] = True
    assert S.Report("sensors", 0, "", [S.assess(st, scores)]).figures()["point F1 anomalous"] == pytest.approx(
        f1(3 / 5, 3 / 11))


def test_a_sensor_faults_rows_are_flagged_anomalous_where_its_published_flag_marks_one_alarm():
    """Issue 8 measured the published flag's point-wise F1 at 0.01 on a test bed: one alarm per fault.
    The anomalous flag marks every row whose own score reaches the threshold."""
    fig = _report("sensors", 0).figures()
    assert fig["point F1"] < 0.1 and fig["point F1 anomalous"] > 0.25


def test_eval_scenarios_command(capsys):
    assert main(["eval", "scenarios", "-c", EXAMPLE, "--family", "sre", "--seeds", "0", "--no-naive", "-v"]) == 0
    out = capsys.readouterr().out
    assert "sre seed 0 (60 s sampling, flatline repeat)" in out and "false alarms" in out
    assert "spike            published 1/1" in out


def test_eval_scenarios_names_a_missing_config(capsys):
    assert main(["eval", "scenarios", "-c", "no/such.yaml"]) == 2
    err = capsys.readouterr().err
    assert "no/such.yaml" in err and "Traceback" not in err
