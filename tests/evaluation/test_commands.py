"""``rnnstream eval generate|corpus`` end to end on the small preset; user mistakes exit 2 without a traceback."""

from __future__ import annotations

from pathlib import Path

import pytest

from rnnstream.cli import main

REPO = Path(__file__).resolve().parents[2]
CORPUS = str(REPO / "config" / "corpus.yaml")
CONFIG = str(REPO / "config" / "nab.yaml")


@pytest.fixture(scope="module")
def small(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("gen") / "small"
    assert main(["eval", "generate", "--corpus", CORPUS, "--preset", "small", "--corpus-seed", "1",
                 "--root", str(root)]) == 0
    return root


def test_generate_then_evaluate_the_zscore_baseline(small, tmp_path, capsys):
    capsys.readouterr()
    assert main(["eval", "corpus", "--data", str(small), "--baseline", "zscore", "--out", str(tmp_path),
                 "--json", str(tmp_path / "r.json")]) == 0
    out, err = capsys.readouterr()
    assert "| NAB standard |" in out and "| found % |" in out and "| false alarms /10k |" in out
    assert "| found % [counts] |" in out
    assert err.count(" rows, found ") == 10      # one line per stream, on stderr
    assert (tmp_path / "r.json").is_file()


def test_seeds_give_mean_and_range_and_loco_reports_each_category(small, tmp_path, capsys):
    capsys.readouterr()
    assert main(["eval", "corpus", "--data", str(small), "-c", CONFIG, "--set", "model={type: naive}",
                 "--seeds", "0,1", "--out", str(tmp_path), "--match-recall"]) == 0
    out, _ = capsys.readouterr()
    assert "detector (2 seeds)" in out and "zscore at matched recall" in out
    grid = tmp_path / "grid.yaml"
    grid.write_text("candidates:\n  as-is: {}\n  quiet: {scoring.threshold: 0.9}\n")
    assert main(["eval", "corpus", "--data", str(small), "-c", CONFIG, "--set", "model={type: naive}",
                 "--out", str(tmp_path), "--loco", str(grid)]) == 0
    out, _ = capsys.readouterr()
    for cat in ("batch", "counts", "gauge", "modes", "seasonal"):
        assert f"| {cat} | " in out
    assert "**LOCO (standard)**" in out


def test_one_category_with_counters_on_a_log_scale(small, tmp_path, capsys):
    capsys.readouterr()
    assert main(["eval", "corpus", "--data", str(small), "-c", CONFIG, "--category", "counts", "--out", str(tmp_path),
                 "--set", "features=[m0,m1,m2,m3,m4,m5,m6,m7]", "--set", "log_features=[m0,m1,m2,m3,m4,m5,m6,m7]"]) == 0
    out, err = capsys.readouterr()
    assert "| found % [counts] |" in out and "| found % [batch] |" not in out
    assert err.count(" rows, found ") == err.count("counts/") == 2


@pytest.mark.parametrize("argv, message", [
    (["--seeds", "0,x"], "--seeds"),
    (["--set", "scoring.threshold"], "PATH=VALUE"),
    (["--set", "scoring.threshold=3"], "threshold"),
    ([], "-c/--config is required"),
    (["--category", "nope"], "no stream of category 'nope'"),
    (["--set", "log_features=[m9]"], "log_features[0]"),
])
def test_user_mistakes_exit_2_with_a_message(small, tmp_path, capsys, argv, message):
    base = ["eval", "corpus", "--data", str(small), "--out", str(tmp_path)]
    if argv and argv[0] != "-c":
        base += ["-c", CONFIG]
    assert main(base + argv) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
