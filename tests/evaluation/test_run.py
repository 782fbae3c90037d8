"""Running a corpus: overrides and seeds reach the detector; results do not depend on workers or the cache."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from rnnstream.config import load_config_text
from rnnstream.errors import ConfigError, RnnstreamError
from rnnstream.evaluation import corpora, run
from rnnstream.evaluation.layout import Stream, Window, write_stream, write_windows

CONFIG = Path(__file__).resolve().parents[2] / "config" / "nab.yaml"


def test_overrides_and_seed_reach_the_detector_config():
    text = run.config_text(CONFIG, overrides={"model": {"type": "naive"}, "scoring.threshold": 0.7}, seed=3)
    det = load_config_text(text).detector()
    assert det.model.type == "naive" and det.model.params.seed == 3 and det.scoring.threshold == 0.7
    assert det.training.window == 128            # the rest of config/nab.yaml is kept
    assert load_config_text(run.config_text(CONFIG, seed=5)).detector().model.params.hidden == 16


def test_bad_overrides_name_their_source():
    with pytest.raises(ConfigError, match="overrides"):
        run.config_text(CONFIG, overrides={"scoring.threshold": 7})
    with pytest.raises(RnnstreamError, match="PATH=VALUE"):
        run.parse_overrides(["scoring.threshold"])
    assert run.parse_overrides(["model={type: naive}", "scoring.threshold=0.6"]) == \
        {"model": {"type": "naive"}, "scoring.threshold": 0.6}


def _corpus(root: Path) -> corpora.Corpus:
    rng = np.random.default_rng(0)
    windows = {}
    for k in range(3):
        n = 400
        entity = np.tile([0, 1], n // 2)
        ts = 1_767_225_600 + 300 * np.arange(n, dtype=np.int64)
        values = np.column_stack([10 + np.sin(ts / 3600.0) + rng.normal(0, 0.1, n), rng.normal(5, 1, n)])
        values[300, 0] += 8.0
        key = f"cat{k % 2}/s{k}.csv"
        write_stream(root, Stream(key, ["a", "b"], entity, ts, values, ["x", "y"]))
        windows[key] = [Window("a", int(ts[300]), int(ts[300]), "extremum", ("x",))]
    write_windows(root, windows)
    return corpora.open_generic(root)


def test_results_do_not_depend_on_workers_or_the_cache(tmp_path):
    corpus = _corpus(tmp_path / "c")
    spec = run.Spec(run.config_text(CONFIG, overrides={"model": {"type": "naive"}}))
    one = run.run_corpus(spec, corpus, workers=1)
    seen = []
    two = run.run_corpus(spec, corpus, workers=2, cache=tmp_path / "cache", on_done=lambda r: seen.append(r.key))
    cached = run.run_corpus(spec, corpus, workers=1, cache=tmp_path / "cache")
    assert sorted(seen) == sorted(corpus.keys) and list(two) == corpus.keys
    for key in corpus.keys:
        np.testing.assert_array_equal(one[key].score, two[key].score)
        np.testing.assert_array_equal(one[key].alarm, cached[key].alarm)
        np.testing.assert_array_equal(one[key].score, cached[key].score)
        assert one[key].score.shape == (400,) and np.all((one[key].score >= 0) & (one[key].score <= 1))
        np.testing.assert_array_equal(one[key].raw, cached[key].raw)
        np.testing.assert_array_equal(one[key].kind, cached[key].kind)      # the blamed kinds are cached too
        assert one[key].kind.shape[0] == 400 and not np.any(one[key].kind[~one[key].alarm & (one[key].raw < 0.5)])
        # raw: the score before suppression, equal to the reported one wherever that is not 0
        reported = one[key].score > 0
        np.testing.assert_array_equal(one[key].raw[reported], one[key].score[reported])
    assert any(np.any(r.raw > r.score) for r in one.values())   # the spike's suppression period hides scores
    assert len(list((tmp_path / "cache").rglob("*.npz"))) == 3


def test_the_zscore_baseline_flags_the_spike(tmp_path):
    corpus = _corpus(tmp_path / "c")
    res = run.run_corpus(run.Spec(zscore=run.zscore.ZScoreParams()), corpus, workers=1)
    for key, r in res.items():
        stream = corpus.load(key)
        spike = np.flatnonzero((stream.entity == 0) & (stream.timestamps == corpus.windows[key][0].start))
        assert r.alarm[spike].all() and r.score[spike] > 0.5
        assert r.alarm.sum() < 10


def test_a_cached_score_is_not_reused_when_a_variable_the_config_refers_to_changes(tmp_path, monkeypatch):
    """The configuration is loaded (``${VAR}`` substituted) where the streams are scored, so the cache
    key covers the values of the variables it refers to."""
    corpus = _corpus(tmp_path / "c")
    monkeypatch.setenv("RNNSTREAM_T_THRESHOLD", "0.5")
    text = run.config_text(CONFIG, overrides={"model": {"type": "naive"}, "scoring.threshold": "${RNNSTREAM_T_THRESHOLD}"})
    spec = run.Spec(text)
    first = spec.digest()
    low = run.run_corpus(spec, corpus, workers=1, cache=tmp_path / "cache")
    assert spec.digest() == first
    monkeypatch.setenv("RNNSTREAM_T_THRESHOLD", "0.01")
    assert spec.digest() != first
    high = run.run_corpus(spec, corpus, workers=1, cache=tmp_path / "cache")
    assert sum(int(r.alarm.sum()) for r in high.values()) > sum(int(r.alarm.sum()) for r in low.values())
    escaped = run.Spec(text.replace("${", "$${"))   # a literal "${": no variable
    before = escaped.digest()
    monkeypatch.setenv("RNNSTREAM_T_THRESHOLD", "0.5")
    assert escaped.digest() == before and spec.digest() == first
