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


# -- errors an operator can act on -------------------------------------------------------------------

def _events(tmp_path, n=60):
    src = tmp_path / "events.jsonl"
    src.write_text("\n".join(json.dumps({"host": "h0", "ts": 1_700_000_000_000 + 60_000 * i, "cpu": float(i % 7)})
                             for i in range(n)))
    return src


@pytest.mark.parametrize("which,needle", [
    ("input", "--input {tmp}/nosuch.csv: no such file"),
    ("output", "--output /nonexistent/x.csv: directory /nonexistent does not exist (create it first)"),
    ("plot", "--plot /nonexistent/p.png: directory /nonexistent does not exist (create it first)"),
    ("output_dir", "--output {tmp} is a directory; give a file name"),
])
def test_replay_checks_paths_before_any_work(good_config, tmp_path, capsys, which, needle):
    src, out, png = _events(tmp_path), tmp_path / "o.csv", None
    if which == "input":
        src = tmp_path / "nosuch.csv"
    elif which == "output":
        out = "/nonexistent/x.csv"
    elif which == "output_dir":
        out = tmp_path
    else:
        png = "/nonexistent/p.png"
    args = ["replay", "-c", str(good_config), "--input", str(src), "--output", str(out)]
    assert main(args + (["--plot", png] if png else [])) == 2
    err = capsys.readouterr().err
    assert err.strip() == "rnnstream: " + needle.format(tmp=tmp_path)
    assert "Traceback" not in err
    assert not (tmp_path / "o.csv").exists()          # nothing was scored or written first


def test_replay_scoring_nothing_exits_1_naming_reasons_and_the_iso_hint(tmp_path, capsys):
    cfg = tmp_path / "c.yaml"
    cfg.write_text(GOOD.replace("unit: ms", "unit: s"))
    src = tmp_path / "iso.csv"
    src.write_text("host,ts,cpu\n" + "".join(f"h,2024-01-01T00:{i:02d}:00Z,{i}\n" for i in range(20)))
    assert main(["replay", "-c", str(cfg), "--input", str(src), "--output", str(tmp_path / "o.csv")]) == 1
    captured = capsys.readouterr()
    assert "20 events, 0 scored" in captured.out
    err = captured.err
    assert "bad_timestamp x20: first at " + str(src) + ":2: field 'ts'" in err
    assert "set timestamp.unit: iso" in err and '"ts":"2024-01-01T00:00:00Z"' in err
    assert "no event of" in err and "Traceback" not in err


def test_replay_missing_field_lists_the_columns_the_file_has(tmp_path, capsys, good_config):
    src = tmp_path / "e.csv"
    src.write_text("host,time,cpu\n" + "".join(f"h,{i},{i}\n" for i in range(5)))
    assert main(["replay", "-c", str(good_config), "--input", str(src), "--output", str(tmp_path / "o.csv")]) == 1
    err = capsys.readouterr().err
    assert "missing_field x5" in err and "field 'ts' is missing" in err
    assert "the first row has: host, time, cpu" in err


def test_replay_plot_of_an_unknown_entity_names_the_ones_there(good_config, tmp_path, capsys):
    src = _events(tmp_path)
    args = ["replay", "-c", str(good_config), "--input", str(src), "--output", str(tmp_path / "o.csv"),
            "--plot", str(tmp_path / "p.png")]
    assert main(args + ["--entity", "nobody"]) == 2
    assert "entity 'nobody' has no scored events; nothing drawn. Entities scored: h0" in capsys.readouterr().err
    assert main(args + ["--entity", "h0"]) == 0
    assert (tmp_path / "p.png").read_bytes()[:4] == b"\x89PNG"
    assert main(["replay", "-c", str(good_config), "--input", str(src), "--output", str(tmp_path / "o.csv"),
                 "--entity", "h0"]) == 2
    assert "--entity chooses what --plot draws" in capsys.readouterr().err


def test_version_and_every_subcommand_has_a_description_examples_and_option_help(capsys):
    import argparse

    from rnnstream import __version__
    from rnnstream.cli import build_parser

    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0 and capsys.readouterr().out.strip() == f"rnnstream {__version__}"

    def walk(parser, path):
        subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
        if not subs:
            yield path, parser
        for action in subs:
            for name, child in action.choices.items():
                yield from walk(child, path + [name])

    leaves = dict((" ".join(p), q) for p, q in walk(build_parser(), []))
    assert {"run", "validate", "replay", "warmup", "check-connection", "state inspect", "state export",
            "state reset", "plot"} <= set(leaves)
    for name, parser in leaves.items():
        if name.startswith("eval"):
            continue   # rnnstream eval is being rewritten on its own branch
        assert parser.description and parser.epilog and "examples:" in parser.epilog, name
        for action in parser._actions:
            assert action.help, f"{name}: {action.option_strings or action.dest} has no help"


def test_closed_stdout_ends_quietly(tmp_path):
    """`rnnstream state inspect --json | head`: the reader going away is not an error."""
    import os
    import subprocess
    import sys

    cfg = tmp_path / "c.yaml"
    cfg.write_text(GOOD + f"state_dir: {tmp_path / 'state'}\n")
    r, w = os.pipe()
    os.close(r)                                     # the reader is gone before anything is written
    proc = subprocess.run([sys.executable, "-m", "rnnstream", "state", "inspect", "-c", str(cfg), "--json"],
                          stdout=w, stderr=subprocess.PIPE, timeout=60)
    os.close(w)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == b""


def test_state_inspect_of_an_empty_state_dir_is_not_an_error(tmp_path, capsys):
    cfg = tmp_path / "c.yaml"
    cfg.write_text(GOOD + f"state_dir: {tmp_path / 'state'}\n")
    assert main(["state", "inspect", "-c", str(cfg), "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == []
    assert main(["state", "inspect", "-c", str(cfg)]) == 0
    assert "no checkpoint directories" in capsys.readouterr().out


def test_validate_reports_type_and_cross_field_problems_in_one_pass(tmp_path, capsys):
    path = tmp_path / "c.yaml"
    path.write_text(GOOD.replace("name: other", "name: hosts").replace("topics: [other]", "topics: [metrics]")
                    .replace("unit: ms", "unit: hours")
                    + "    outputs: {anomalies_topic: metrics}\n")
    assert main(["validate", "-c", str(path)]) == 1
    err = capsys.readouterr().err
    assert "detectors[0].timestamp.unit" in err                      # a type error...
    assert "detectors[1].name: duplicate detector name 'hosts'" in err   # ...and the cross-field ones
    assert "detectors[1].topics[0]: topic 'metrics' already belongs to detectors[0]" in err
    assert "detectors[1].outputs.anomalies_topic: topic 'metrics' is an input" in err
