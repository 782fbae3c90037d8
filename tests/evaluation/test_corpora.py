"""NAB through the common evaluation scores exactly as the NAB scorer; the generic layout per entity."""

from __future__ import annotations

import numpy as np
import pytest

from rnnstream.evaluation import corpora
from rnnstream.evaluation.layout import Stream, Window, write_stream, write_windows
from rnnstream.nab import dataset, scorer

FILES = ["realTraffic/speed_7578.csv", "realAdExchange/exchange-3_cpc_results.csv",
         "artificialWithAnomaly/art_daily_jumpsup.csv"]


def test_nab_layout_scores_exactly_like_score_corpus(nab_root):
    corpus = corpora.open_nab(nab_root, FILES)
    rng = np.random.default_rng(0)
    events, results = {}, {}
    for key in FILES:
        stream = corpus.load(key)
        ts, values = dataset.load_series(nab_root, key)
        np.testing.assert_array_equal(stream.values[:, 0], values)
        score = rng.random(ts.size) ** 8
        events.update(corpora.nab_events(corpus, stream, score, tolerance=10))
        results[key] = (ts, score)
    windows = dataset.load_windows(nab_root)
    expected = scorer.score_corpus(results, {k: windows[k] for k in FILES})
    got = scorer.score_events(events)
    for profile in scorer.PROFILES:
        assert got[profile]["score"] == expected[profile]["score"]
        assert got[profile]["threshold"] == expected[profile]["threshold"]


def test_generic_layout_is_scored_per_entity_with_the_tolerance(tmp_path):
    """Two entities, interleaved: the same as two NAB files whose windows end `tolerance` rows later."""
    n = 200
    entity = np.tile([0, 1], n)
    ts = 1_767_225_600 + np.repeat(np.arange(n) * 300, 2) + np.tile([0, 7], n)
    values = np.random.default_rng(1).normal(size=(2 * n, 2))
    stream = Stream("web/s.csv", ["a", "b"], entity, ts, values, ["cpu", "mem"])
    write_stream(tmp_path, stream)
    wins = [Window("a", int(ts[2 * 100]), int(ts[2 * 104]), "mean", ("cpu",)),
            Window("b", int(ts[2 * 150 + 1]), int(ts[2 * 150 + 1]), "extremum", ("mem",))]
    write_windows(tmp_path, {"web/s.csv": wins})
    corpus = corpora.open_generic(tmp_path)
    loaded = corpus.load("web/s.csv")
    score = np.random.default_rng(2).random(2 * n) ** 6
    events = corpora.nab_events(corpus, loaded, score, tolerance=3)
    assert sorted(events) == ["web/s.csv#a", "web/s.csv#b"]
    a, b = ts[entity == 0], ts[entity == 1]
    expected = scorer.score_corpus({"a": (a, score[entity == 0]), "b": (b, score[entity == 1])},
                                   {"a": [(a[100], a[107])], "b": [(b[150], b[153])]})
    got = scorer.score_events(events)
    assert got["standard"]["score"] == pytest.approx(expected["standard"]["score"], abs=0)
