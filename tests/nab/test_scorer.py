"""The NAB scorer reproduces NAB's published scores and its hand-computable rules."""

import json
import math
import time

import numpy as np
import pytest

from rnnstream.nab import dataset, scorer
from rnnstream.nab.dataset import NabDataError
from rnnstream.nab.weights import probation_length, window_rows

PROFILE_NAMES = ("standard", "reward_low_FP_rate", "reward_low_FN_rate")


def _S(p: float) -> float:
    """NAB's scaled sigmoid, written out independently of the package."""
    return -1.0 if p >= 3 else 2.0 / (1.0 + math.exp(5.0 * p)) - 1.0


@pytest.fixture(scope="module")
def windows(nab_root):
    return dataset.load_windows(nab_root)


@pytest.fixture(scope="module")
def series(nab_root):
    return {k: dataset.load_series(nab_root, k) for k in dataset.list_files(nab_root)}


@pytest.mark.parametrize("detector", ["numenta", "windowedGaussian"])
def test_reproduces_published_reference_scores(nab_root, windows, detector):
    expected = json.loads((nab_root / "reference" / "expected_scores.json").read_text())[detector]
    results = scorer.read_results_dir(nab_root / "reference" / detector)
    assert set(results) == set(windows)
    got = scorer.score_corpus(results, windows)
    for profile in PROFILE_NAMES:
        assert got[profile]["score"] == pytest.approx(expected[profile], abs=0.1), profile


def test_profiles_json_matches_embedded_profiles(nab_root):
    assert dataset.load_profiles(nab_root / "profiles.json") == scorer.PROFILES


def test_null_detector_scores_zero(series, windows):
    for constant in (0.0, 0.5):
        results = {k: (ts, np.full(len(ts), constant)) for k, (ts, _) in series.items()}
        got = scorer.score_corpus(results, windows)
        for profile in PROFILE_NAMES:
            assert got[profile]["score"] == pytest.approx(0.0, abs=1e-9)
            assert got[profile]["tp"] == 0


def test_perfect_detector_scores_hundred(series, windows):
    results = {}
    for k, (ts, _) in series.items():
        s = np.zeros(len(ts))
        s[window_rows(ts, windows[k], k)[:, 0]] = 1.0
        results[k] = (ts, s)
    n_windows = sum(len(w) for w in windows.values())
    got = scorer.score_corpus(results, windows)
    for profile in PROFILE_NAMES:
        assert got[profile]["score"] == pytest.approx(100.0, abs=1e-9)
        assert (got[profile]["tp"], got[profile]["fn"], got[profile]["fp"]) == (n_windows, 0, 0)
        assert got[profile]["threshold"] == 1.0


def _toy(scores, window=((8, 11),), n=20):
    ts = np.datetime64("2020-01-01 00:00:00") + np.arange(n) * np.timedelta64(300, "s")
    wins = [(ts[a], ts[b]) for a, b in window]
    return {"cat/toy.csv": (ts, np.asarray(scores, dtype=float))}, {"cat/toy.csv": wins}


def test_hand_computed_single_file():
    # 20 rows -> probation floor(3.0) = 3 rows; window rows 8..11 (width 4).
    s = np.zeros(20)
    s[1] = 1.0    # inside probation: ignored
    s[10] = 1.0   # in window: p = -(11 - 10 + 1) / 4 = -0.5
    s[15] = 1.0   # after window: p = |11 - 15| / (4 - 1) = 4/3
    results, wins = _toy(s)
    tp_w = _S(-0.5) / _S(-1.0)
    fp_w = _S(4.0 / 3.0)
    assert tp_w == pytest.approx(0.859793, abs=1e-6) and fp_w == pytest.approx(-0.997458, abs=1e-6)
    got = scorer.score_corpus(results, wins)
    for name, cost in scorer.PROFILES.items():
        raw = tp_w * cost["tpWeight"] + fp_w * cost["fpWeight"]
        expected = 100 * (raw + cost["fnWeight"]) / (cost["tpWeight"] + cost["fnWeight"])
        assert got[name]["threshold"] == 1.0
        assert got[name]["raw"] == pytest.approx(raw, abs=1e-12)
        assert got[name]["score"] == pytest.approx(expected, abs=1e-9)
        assert (got[name]["tp"], got[name]["fp"], got[name]["fn"]) == (1, 1, 0)


def test_window_counts_its_earliest_detection_only():
    s = np.zeros(20)
    s[9], s[11] = 0.6, 1.0          # earliest detection at 0.6 is row 9
    results, wins = _toy(s)
    got = scorer.score_corpus(results, wins)["standard"]
    assert got["threshold"] == 0.6
    assert got["raw"] == pytest.approx(_S(-(11 - 9 + 1) / 4) / _S(-1.0), abs=1e-12)


def test_probation_length():
    assert [probation_length(n) for n in (20, 1624, 4032, 22695)] == [3, 243, 604, 750]


def _naive_best(results, wins, cost):
    """Direct transcription of the README rules, one threshold at a time."""
    per_file = []
    for key, (ts, s) in results.items():
        rows = window_rows(ts, wins[key])
        n = len(s)
        w = np.empty(n)
        inside = np.full(n, -1)
        prev = None
        for i in range(n):
            k = next((j for j, (a, b) in enumerate(rows) if a <= i <= b), None)
            if k is not None:
                a, b = rows[k]
                w[i] = _S(-(b - i + 1) / (b - a + 1)) * cost["tpWeight"] / _S(-1.0)
                inside[i] = k
                if i == b:
                    prev = (b, b - a + 1)
            elif prev is None:
                w[i] = -cost["fpWeight"]
            else:
                # a one-row window has no defined scale in NAB (division by zero): weigh -1
                p_past = abs(prev[0] - i) / (prev[1] - 1) if prev[1] > 1 else math.inf
                w[i] = _S(p_past) * cost["fpWeight"]
        per_file.append((s, w, inside, probation_length(n), rows))
    cands = sorted({1.1} | {float(x) for s, _, _, p, _ in per_file for x in s[p:]}, reverse=True)
    best = (-np.inf, None)
    for t in cands:
        total = 0.0
        for s, w, inside, p, rows in per_file:
            for k, (a, b) in enumerate(rows):
                if b < p:
                    continue
                det = [i for i in range(max(a, p), b + 1) if s[i] >= t]
                total += max(w[i] for i in det) if det else -cost["fnWeight"]
            total += sum(w[i] for i in range(p, len(s)) if inside[i] < 0 and s[i] >= t)
        if total > best[0] + 1e-12:
            best = (total, t)
    return best


@pytest.mark.parametrize("seed", range(6))
def test_vectorised_optimiser_matches_naive_sweep(seed):
    rng = np.random.default_rng(seed)
    results, wins = {}, {}
    for f in range(3):
        n = int(rng.integers(20, 80))
        ts = np.datetime64("2021-03-01") + np.arange(n) * np.timedelta64(60, "s")
        s = np.round(rng.random(n), 1)  # many ties
        cuts = np.sort(rng.choice(np.arange(1, n), size=4, replace=False))
        wl = [(cuts[0], cuts[1]), (cuts[2] + 1, cuts[3])] if cuts[2] + 1 <= cuts[3] else [(cuts[0], cuts[1])]
        if f == 0:
            wl = [(1, 2)] + [(a, b) for a, b in wl if a > 3]   # a window wholly in probation
        results[f"c/f{f}.csv"] = (ts, s)
        wins[f"c/f{f}.csv"] = [(ts[a], ts[b]) for a, b in wl]
    got = scorer.score_corpus(results, wins)
    for name, cost in scorer.PROFILES.items():
        raw, t = _naive_best(results, wins, cost)
        assert got[name]["raw"] == pytest.approx(raw, abs=1e-9)
        assert got[name]["threshold"] == pytest.approx(t)


def test_window_bounds_follow_nab_on_duplicate_timestamps():
    ts = np.array(["2020-01-01 00:00:00", "2020-01-01 00:05:00", "2020-01-01 00:05:00",
                   "2020-01-01 00:10:00", "2020-01-01 00:15:00"], dtype="datetime64[s]")
    rows = window_rows(ts, [(ts[1], ts[3])])
    assert rows.tolist() == [[1, 3]]
    with pytest.raises(NabDataError, match="matches no row"):
        window_rows(ts, [(np.datetime64("2020-01-01 00:07:00"), ts[3])], "cat/x.csv")


def test_results_and_labels_must_cover_the_same_files():
    results, wins = _toy(np.zeros(20))
    with pytest.raises(NabDataError, match="no results for"):
        scorer.score_corpus(results, {**wins, "cat/other.csv": []})


def test_all_distinct_scores_on_full_corpus_score_quickly(series, windows):
    rng = np.random.default_rng(1)
    results = {k: (ts, rng.random(len(ts))) for k, (ts, _) in series.items()}
    t0 = time.perf_counter()
    got = scorer.score_corpus(results, windows)
    elapsed = time.perf_counter() - t0
    assert sum(len(ts) for ts, _ in results.values()) > 150_000
    assert elapsed < 5.0, f"scoring took {elapsed:.2f} s"
    assert all(-1000 < g["score"] < 100 for g in got.values())
