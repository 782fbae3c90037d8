"""The command line through ``rnnstream.cli.main``: validate exit codes, replay end to end."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import pytest

from rnnstream.cli import main

GOOD = """
detectors:
  - name: hosts
    topics: [metrics]
    entity: host
    timestamp: {field: ts, unit: ms}
    features: [cpu]
    model: {type: naive}
    training: {enabled: false}
    scoring: {warmup_events: 5, short_window: 3, long_window: 50}
  - name: other
    topics: [other]
    entity: {field: id}
    timestamp: {field: t, unit: iso}
    features: [v]
    model: {type: esn, size: 16}
    training: {enabled: false}
"""


@pytest.fixture
def good_config(tmp_path) -> Path:
    path = tmp_path / "good.yaml"
    path.write_text(GOOD)
    return path


def test_validate_good_config(good_config, capsys):
    assert main(["validate", "-c", str(good_config)]) == 0
    out = capsys.readouterr()
    assert "OK: 2 detector(s)" in out.out and out.err == ""


def test_validate_example_config_ships_valid():
    example = Path(__file__).resolve().parent.parent / "config" / "example.yaml"
    assert main(["validate", "-c", str(example)]) == 0


@pytest.mark.parametrize("text,needle", [
    (GOOD.replace("unit: ms", "unit: hours"), "detectors[0].timestamp.unit"),
    (GOOD.replace("features: [cpu]", "features: []"), "detectors[0].features"),
    (GOOD.replace("name: other", "name: hosts"), "duplicate detector name"),
    ("detectors: [\n", "(yaml)"),
    ("", "empty"),
])
def test_validate_bad_config_exits_1_and_names_the_problem(tmp_path, capsys, text, needle):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    assert main(["validate", "-c", str(path)]) == 1
    err = capsys.readouterr().err
    assert needle in err and str(path) in err


def test_validate_missing_file_exits_1(tmp_path, capsys):
    assert main(["validate", "-c", str(tmp_path / "absent.yaml")]) == 1
    assert "cannot read" in capsys.readouterr().err


def test_replay_end_to_end(good_config, tmp_path, capsys):
    src = tmp_path / "events.jsonl"
    lines = [{"host": f"h{i % 2}", "ts": 1_700_000_000_000 + 60_000 * i,
              "cpu": 10 + math.sin(i / 3) + (50 if i == 150 else 0)} for i in range(200)]
    lines[7]["cpu"] = "n/a"
    src.write_text("\n".join(json.dumps(r) for r in lines))
    out, png = tmp_path / "scores.csv", tmp_path / "plot.png"
    rc = main(["replay", "-c", str(good_config), "--input", str(src), "--output", str(out), "--plot", str(png)])
    printed = capsys.readouterr().out
    assert rc == 0
    assert "200 events, 199 scored" in printed and "1 rejected" in printed and "wrong_type" in printed
    assert f"plot: {png}" in printed
    with out.open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 200 and rows[7]["rejected"] == "wrong_type"
    h0 = [float(r["score"]) for r in rows if r["entity"] == "h0"]
    spike = max(float(rows[150]["score"]), float(rows[152]["score"]))  # the spike and the way back
    assert spike == max(h0) > 0.2
    assert png.read_bytes()[:4] == b"\x89PNG"


def test_replay_with_named_detector_and_unknown_detector(good_config, tmp_path, capsys):
    src = tmp_path / "other.csv"
    src.write_text("id,t,v\n" + "".join(f"a,2024-01-01T00:{i:02d}:00Z,{i}\n" for i in range(30)))
    out = tmp_path / "o.csv"
    assert main(["replay", "-c", str(good_config), "--detector", "other", "--input", str(src), "--output", str(out)]) == 0
    assert "30 events, 30 scored" in capsys.readouterr().out
    assert main(["replay", "-c", str(good_config), "--detector", "nope", "--input", str(src), "--output", str(out)]) == 2
    assert "no detector named 'nope'" in capsys.readouterr().err


def test_replay_of_bad_input_file_exits_2(good_config, tmp_path, capsys):
    src = tmp_path / "events.txt"
    src.write_text("whatever")
    assert main(["replay", "-c", str(good_config), "--input", str(src), "--output", str(tmp_path / "o.csv")]) == 2
    assert "expected a .csv or .jsonl" in capsys.readouterr().err


def test_usage_errors_exit_2():
    with pytest.raises(SystemExit) as exc:
        main([])
    assert exc.value.code == 2
    with pytest.raises(SystemExit) as exc:
        main(["validate"])
    assert exc.value.code == 2
