"""The generated corpus: seeded and deterministic, labels are the injected anomalies, metric shapes."""

from __future__ import annotations

import filecmp
from pathlib import Path

import numpy as np
import pytest

from rnnstream.evaluation import generate as gen
from rnnstream.evaluation.layout import list_streams, load_windows, read_stream

CORPUS = Path(__file__).resolve().parents[2] / "config" / "corpus.yaml"


@pytest.fixture(scope="module")
def small() -> dict:
    return gen.load_definition(CORPUS, preset="small")


@pytest.fixture(scope="module")
def corpus(small, tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("corpus") / "a"
    gen.generate(small, 3, root)
    return root


def _same_tree(a: Path, b: Path) -> bool:
    files_a = sorted(p.relative_to(a) for p in a.rglob("*") if p.is_file())
    files_b = sorted(p.relative_to(b) for p in b.rglob("*") if p.is_file())
    return files_a == files_b and all(filecmp.cmp(a / f, b / f, shallow=False) for f in files_a)


def test_same_seed_gives_identical_files_and_another_seed_does_not(small, corpus, tmp_path):
    gen.generate(small, 3, tmp_path / "again")
    assert _same_tree(corpus, tmp_path / "again")
    gen.generate(small, 4, tmp_path / "other")
    assert not filecmp.cmp(corpus / "labels" / "windows.json", tmp_path / "other" / "labels" / "windows.json",
                           shallow=False)


def test_first_streams_do_not_depend_on_how_many_follow(small):
    bigger = {**small, "streams": small["streams"] + 5}
    for i in range(small["streams"]):
        a, b = gen.plan_stream(small, 3, i), gen.plan_stream(bigger, 3, i)
        assert a.key == b.key and [e.anomalies for e in a.entities] == [e.anomalies for e in b.entities]


def test_the_corpus_has_the_defined_shape(small, corpus):
    keys = list_streams(corpus)
    assert len(keys) == small["streams"]
    assert {k.split("/")[0] for k in keys} == set(small["categories"])
    for key in keys:
        s = read_stream(corpus, key)
        assert small["features"][0] <= len(s.features) <= small["features"][1]
        assert small["entities"][0] <= len(s.entity_names) <= small["entities"][1]
        assert np.all(np.diff(s.timestamps) >= 0), "rows are interleaved in time order"
        for code in range(len(s.entity_names)):
            ts = s.timestamps[s.rows_of(code)]
            assert np.all(np.diff(ts) > 0)
            assert ts.size <= small["events"][1]
        if s.category == "counts":
            assert np.all(s.values >= 0) and np.all(s.values == np.round(s.values)), "counts are whole numbers"


def test_sampling_is_irregular_and_some_entities_have_gaps(small, corpus):
    steps, gaps = set(), 0
    for key in list_streams(corpus):
        s = read_stream(corpus, key)
        for code in range(len(s.entity_names)):
            d = np.diff(s.timestamps[s.rows_of(code)])
            steps.update(np.unique(d).tolist())
            gaps += bool(d.max() > 5 * np.median(d))
    assert len(steps) > 50, "jittered timestamps"
    assert gaps >= 1


def test_windows_are_exactly_the_rows_gutentag_labels(small):
    plans = [gen.plan_stream(small, 3, i) for i in range(small["streams"])]
    generated = gen.run_gutentag([e for p in plans for e in gen.gutentag_config(p)], 3)
    for plan in plans:
        for ent in plan.entities:
            values, labels = generated[f"{plan.key}#{ent.name}"]
            assert values.shape == (ent.events, len(plan.features))
            mine = np.zeros(ent.events, dtype=np.int64)
            for a in ent.anomalies:
                mine[a.position:a.position + a.length] = 1
            np.testing.assert_array_equal(mine, labels, err_msg=f"{plan.key} {ent.name}")


def test_labels_name_the_type_feature_and_existing_rows(small, corpus):
    windows = load_windows(corpus)
    types = set()
    for key, ws in windows.items():
        s = read_stream(corpus, key)
        plan = gen.plan_stream(small, 3, int(key.split("_")[-1].split(".")[0]))
        planned = [(e.name, a.type, plan.features[a.channel]) for e in plan.entities for a in e.anomalies]
        assert sorted((w.entity, w.type, w.features[0]) for w in ws) == sorted(planned)
        for w in ws:
            types.add(w.type)
            ts = s.timestamps[s.rows_of(s.entity_names.index(w.entity))]
            assert w.start in ts and w.end in ts, "window bounds are rows of the entity (never cut by a gap)"
            first = int(np.searchsorted(ts, w.start))
            assert first >= small["anomaly_from"] * ts.size * 0.8
    assert len(types) >= 4


def test_a_platform_in_counts_is_a_dead_exporter_reporting_zeros(small):
    defn = {**small, "streams": 1, "categories": {"counts": {"anomalies": ["platform"]}}, "normal_share": 0.0,
            "gap_share": 0.0}
    plan = gen.plan_stream(defn, 0, 0)
    generated = gen.run_gutentag(gen.gutentag_config(plan), 0)
    stream, windows = gen.build_stream(plan, generated, defn, 0, 0)
    assert windows
    for w in windows:
        code = stream.entity_names.index(w.entity)
        rows = stream.rows_of(code)
        ts = stream.timestamps[rows]
        inside = (ts >= w.start) & (ts <= w.end)
        f = stream.features.index(w.features[0])
        assert np.all(stream.values[rows[inside], f] == 0.0)
        assert np.median(stream.values[rows[~inside], f]) > 0


def test_a_modes_entity_switches_regimes_in_every_feature_at_once_and_one_feature_breaks_from_them(small):
    """A service switching regimes moves all its metrics at the same rows; a mode-correlation anomaly
    inverts one feature, whose mode then changes alone at the window's edges (one feature could not
    tell it from a regime switch: modes streams have at least two)."""
    defn = {**small, "streams": 6, "normal_share": 0.0, "gap_share": 0.0,
            "categories": {"modes": small["categories"]["modes"]}}
    assert small["categories"]["modes"]["min_features"] == 2
    lone = shared = 0
    for i in range(defn["streams"]):
        plan = gen.plan_stream(defn, 0, i)
        assert len(plan.features) >= 2
        generated = gen.run_gutentag(gen.gutentag_config(plan), 0)
        for ent in plan.entities:
            values, labels = generated[f"{plan.key}#{ent.name}"]
            jumps = np.abs(np.diff(values, axis=0)) > 1.0   # modes are >= 2 apart, the noise far smaller
            edges = np.zeros(len(values) - 1, dtype=bool)
            for a in ent.anomalies:
                edges[[a.position - 1, min(a.position + a.length - 1, len(edges) - 1)]] = True
            moves = jumps.sum(axis=1)
            shared += int(np.sum(moves == len(plan.features)))
            lone += int(np.sum((moves == 1) & edges))
            assert np.all((moves == 0) | (moves == len(plan.features)) | edges), \
                "outside an anomaly's edges the features change modes together"
    assert shared > 0 and lone > 0


def test_bad_definitions_name_the_key(tmp_path):
    bad = tmp_path / "c.yaml"
    bad.write_text(CORPUS.read_text().replace("features: [1, 8]", "features: [1, 20]"))
    with pytest.raises(gen.CorpusDefinitionError, match="features"):
        gen.load_definition(bad)
    bad.write_text(CORPUS.read_text().replace("min_features: 2", "min_features: 1"))
    with pytest.raises(gen.CorpusDefinitionError, match="categories.modes.min_features: mode-correlation"):
        gen.load_definition(bad)
    with pytest.raises(gen.CorpusDefinitionError, match="presets.nope"):
        gen.load_definition(CORPUS, preset="nope")


def test_anomalies_that_do_not_fit_are_left_out_not_crashed_on(small):
    defn = {**small, "events": [200, 200], "normal_share": 0.0, "anomalies": [1, 1],
            "anomaly_types": {**small["anomaly_types"], "mean": {"length": [150, 150], "magnitude": [1, 1]}},
            "categories": {"gauge": {"anomalies": ["mean"]}}}
    plan = gen.plan_stream(defn, 0, 0)
    assert all(e.anomalies == [] for e in plan.entities)


def test_the_long_preset_plans_long_univariate_single_entity_streams():
    long = gen.load_definition(CORPUS, preset="long")
    assert gen.corpus_dir(long, 0) != gen.corpus_dir(gen.load_definition(CORPUS, streams=long["streams"]), 0)
    cats = set()
    for i in range(long["streams"]):
        plan = gen.plan_stream(long, 0, i)
        cats.add(plan.category)
        assert len(plan.features) == 1 and len(plan.entities) == 1
        ent = plan.entities[0]
        assert 4000 <= ent.events <= 12000
        assert all(a.position >= 0.15 * ent.events for a in ent.anomalies)
    assert cats == set(long["categories"]) and "modes" not in cats


def test_the_weeks_preset_plans_entities_of_weeks_with_several_features():
    weeks = gen.load_definition(CORPUS, preset="weeks")
    cats, widths = set(), set()
    for i in range(weeks["streams"]):
        plan = gen.plan_stream(weeks, 0, i)
        cats.add(plan.category)
        widths.add(len(plan.features))
        assert 2 <= len(plan.entities) <= 3
        for ent in plan.entities:
            assert 2000 <= ent.events <= 4000
            assert all(a.position >= 0.15 * ent.events for a in ent.anomalies)
    assert cats == set(weeks["categories"]) and "modes" in cats
    assert min(widths) == 1 and max(widths) >= 7


def test_a_trend_ends_its_magnitude_away_and_stays_there(small, tmp_path):
    """GutenTAG's polynomial runs over the window's row numbers: the slope is per row, and a ramp of
    `magnitude` amplitudes must not become hundreds of them (a counter dead at 0 or pinned at the cap)."""
    spec = small["anomaly_types"]["trend"]
    defn = {**small, "streams": 6, "events": [600, 600], "normal_share": 0.0, "anomalies": [1, 1],
            "categories": {"counts": {"anomalies": ["trend"]}, "gauge": {"anomalies": ["trend"]}}}
    for i in range(defn["streams"]):
        for ent in gen.plan_stream(defn, 5, i).entities:
            for a in ent.anomalies:
                slope = a.params["oscillation"]["polynomial"][1]
                assert spec["magnitude"][0] - 1e-9 <= abs(slope) * (a.length - 1) <= spec["magnitude"][1] + 1e-9
    gen.generate(defn, 5, tmp_path)
    windows = load_windows(tmp_path)
    for key in list_streams(tmp_path):
        if not key.startswith("counts"):
            continue
        s = read_stream(tmp_path, key)
        for w in windows[key]:
            code = s.entity_names.index(w.entity)
            ts, v = s.timestamps[s.rows_of(code)], s.values[s.rows_of(code)][:, 0]
            after = v[ts > w.end]
            assert np.mean(after == 0) < 0.9 and after.max() < 1e7, (key, np.mean(after == 0), after.max())


def test_ensure_regenerates_a_corpus_of_another_generator_version(small, tmp_path, monkeypatch):
    root = gen.ensure(small, 3, tmp_path)
    manifest = root / "corpus.json"
    first = manifest.stat().st_mtime_ns
    assert gen.ensure(small, 3, tmp_path) == root and manifest.stat().st_mtime_ns == first
    monkeypatch.setattr(gen, "GENERATOR_VERSION", gen.GENERATOR_VERSION + 1)
    gen.ensure(small, 3, tmp_path)
    assert manifest.stat().st_mtime_ns != first
