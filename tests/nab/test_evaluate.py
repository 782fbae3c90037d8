"""The real NAB evaluation (config/nab.yaml, rnnstream.nab.evaluate) on three small files.

Checks the rules of an honest run: scores in [0, 1], deterministic, a fresh detector per file, and
causal (a row's score depends only on rows up to it: cutting the file short leaves earlier scores
unchanged). Run in one process (``workers=1``) so that the test does not depend on the pool.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from rnnstream.nab import dataset, report
from rnnstream.nab.evaluate import evaluate

CONFIG = Path(__file__).resolve().parents[2] / "config" / "nab.yaml"
FILES = [
    "realTraffic/speed_7578.csv",
    "realAdExchange/exchange-3_cpc_results.csv",
    "realAdExchange/exchange-2_cpm_results.csv",
]


def _scores(out: Path, key: str) -> np.ndarray:
    cols = dataset.read_csv_columns(report.result_path(out, "rnnstream", key), ("anomaly_score",))
    return np.array([float(s) for s in cols["anomaly_score"]])


def _truncated_root(nab_root: Path, dest: Path, keep: float) -> Path:
    """A NAB root holding the first ``keep`` share of each of FILES, with the windows that fit."""
    windows = json.loads((nab_root / "labels" / "combined_windows.json").read_text())
    kept = {}
    for key in FILES:
        lines = (nab_root / "data" / key).read_text().splitlines(keepends=True)
        n = int((len(lines) - 1) * keep)
        target = dest / "data" / key
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text("".join(lines[: n + 1]))
        last = lines[n].split(",")[0]
        kept[key] = [w for w in windows[key] if w[1][:19] <= last]
    (dest / "labels").mkdir(parents=True)
    (dest / "labels" / "combined_windows.json").write_text(json.dumps(kept))
    shutil.copy(nab_root / "profiles.json", dest / "profiles.json")
    return dest


@pytest.fixture(scope="module")
def full_run(nab_root, tmp_path_factory):
    out = tmp_path_factory.mktemp("full")
    result = evaluate(nab_root, CONFIG, out, workers=1, files=FILES)
    return out, result


def test_scores_are_probabilities_and_profiles_are_scored(nab_root, full_run):
    out, result = full_run
    for key in FILES:
        s = _scores(out, key)
        assert s.size == len(dataset.load_series(nab_root, key)[1])
        assert np.isfinite(s).all() and (s >= 0).all() and (s <= 1).all()
        assert s.max() > 0, f"{key}: nothing ever scored above 0"
    assert set(result) == {"standard", "reward_low_FP_rate", "reward_low_FN_rate"}
    for profile in result.values():
        assert -100.0 <= profile["score"] <= 100.0


def test_two_runs_are_identical(nab_root, full_run, tmp_path):
    out, result = full_run
    again = evaluate(nab_root, CONFIG, tmp_path, workers=1, files=FILES)
    for key in FILES:
        np.testing.assert_array_equal(_scores(out, key), _scores(tmp_path, key))
    assert {p: r["score"] for p, r in again.items()} == {p: r["score"] for p, r in result.items()}


def test_each_file_starts_from_a_fresh_detector(nab_root, full_run, tmp_path):
    out, _ = full_run
    key = FILES[-1]  # evaluated last in the full run: would inherit state if any leaked
    evaluate(nab_root, CONFIG, tmp_path, workers=1, files=[key])
    np.testing.assert_array_equal(_scores(out, key), _scores(tmp_path, key))


def test_scores_are_causal(nab_root, full_run, tmp_path):
    out, _ = full_run
    root = _truncated_root(nab_root, tmp_path / "nab", keep=0.6)
    evaluate(root, CONFIG, tmp_path / "out", workers=1, files=FILES)
    for key in FILES:
        cut = _scores(tmp_path / "out", key)
        full = _scores(out, key)
        assert 0 < cut.size < full.size
        np.testing.assert_array_equal(cut, full[: cut.size])
