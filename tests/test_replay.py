"""``rnnstream.replay``: CSV and JSON-lines input, per-row output, rejected rows, the PNG plot."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from rnnstream.config import load_config
from rnnstream.errors import RnnstreamError
from rnnstream.replay import read_records, replay

CONFIG = """
detectors:
  - name: replay_test
    topics: [t]
    entity: host
    timestamp: {field: ts, unit: s}
    features: [cpu, mem]
    model: {type: gru, hidden: 4}
    training: {background: true, every_events: 100, every_seconds: 1.0e9, min_events: 64, window: 16, steps: 2}
    scoring: {warmup_events: 10, short_window: 3, long_window: 100, threshold: 0.5}
"""

BAD = {5: ("cpu", "abc", "wrong_type"), 17: ("mem", None, "missing_field"), 30: ("cpu", "nan", "non_finite_value"),
       44: ("ts", "inf", "bad_timestamp")}   # as the daemon says (tests/test_events.py checks they agree)


def _records(n=1200):
    rng = np.random.default_rng(0)
    recs = []
    for i in range(n):
        host = f"h{i % 3}"
        cpu = 50 + 10 * np.sin(i / 20) + rng.standard_normal()
        if i == 1101:
            cpu += 500.0
        recs.append({"host": host, "ts": 1.7e9 + 60 * i, "cpu": float(cpu), "mem": float(i % 7)})
    for i, (key, value, _) in BAD.items():
        if value is None:
            del recs[i][key]
        else:
            recs[i][key] = value
    return recs


def _write(path: Path, recs):
    if path.suffix == ".csv":
        with path.open("w", newline="") as fh:
            w = csv.DictWriter(fh, fieldnames=["host", "ts", "cpu", "mem"])
            w.writeheader()
            for r in recs:
                w.writerow({k: r.get(k, "") for k in ["host", "ts", "cpu", "mem"]})
    else:
        path.write_text("".join(json.dumps(r) + "\n" for r in recs) + "\n")   # a blank last line is fine


@pytest.mark.parametrize("suffix", [".csv", ".jsonl"])
def test_replay_writes_every_row_and_counts_rejections(tmp_path, suffix):
    cfg = load_config(CONFIG).detectors[0]
    recs = _records()
    src, out, png = tmp_path / f"in{suffix}", tmp_path / "out.csv", tmp_path / "plot.png"
    _write(src, recs)
    summary = replay(cfg, src, out, png)
    assert summary.events == len(recs) and summary.processed == len(recs) - len(BAD)
    want_reasons = {}
    for _, _, reason in BAD.values():
        want_reasons[reason] = want_reasons.get(reason, 0) + 1
    if suffix == ".csv":    # an empty CSV cell is an empty string, not a missing field: wrong_type
        want_reasons["wrong_type"] = want_reasons.get("wrong_type", 0) + want_reasons.pop("missing_field")
    assert dict(summary.rejected) == want_reasons

    with out.open(newline="") as fh:
        header, *cells = list(csv.reader(fh))
    assert all(len(c) == len(header) for c in cells)   # rejected rows too
    rows = [dict(zip(header, c)) for c in cells]
    assert len(rows) == len(recs)                      # one row per input row, in input order
    for i, row in enumerate(rows):
        if i in BAD:
            assert row["rejected"] and row["score"] == "" and row["entity"] == "", (i, row)
        else:
            assert row["rejected"] == "" and row["entity"] == recs[i]["host"]
            assert float(row["cpu"]) == pytest.approx(float(recs[i]["cpu"]))
            assert 0.0 <= float(row["score"]) <= 1.0 and row["anomaly"] in ("0", "1")
            if row["anomaly"] == "1":
                assert float(row["score"]) >= 0.5 and row["suppressed"] == "0"
            # anomalous: the row's own score reached the threshold, raised as an anomaly or not
            if abs(float(row["score"]) - 0.5) > 1e-5:   # (the column rounds to 6 digits)
                assert row["anomalous"] == ("1" if float(row["score"]) > 0.5 else "0"), (i, row)
    assert rows[5]["rejected"] == "wrong_type" and rows[30]["rejected"] == "non_finite_value"
    assert rows[44]["rejected"] == "bad_timestamp"
    assert rows[1101]["anomaly"] == "1"
    assert rows[1101]["blamed"] == "cpu" and rows[1101]["kind"] in ("spike", "novelty")   # what and where
    assert any(a[0] == "h0" and a[1] == recs[1101]["ts"] for a in summary.anomalies)
    versions = [int(r["model_version"]) for r in rows if not r["rejected"]]
    # Each row names the weights it was scored with: 0 until the first (inline) retraining, then rising.
    assert versions[0] == 0 and versions[-1] >= 1 and versions == sorted(versions)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 5000


def test_csv_and_jsonl_give_the_same_scores(tmp_path):
    cfg = load_config(CONFIG).detectors[0]
    recs = [r for i, r in enumerate(_records()) if i not in BAD]
    results = []
    for suffix in (".csv", ".jsonl"):
        src, out = tmp_path / f"in{suffix}", tmp_path / f"out{suffix}.csv"
        _write(src, recs)
        replay(cfg, src, out)
        results.append(out.read_text())
    assert results[0] == results[1]


def test_file_without_entity_column_is_one_entity_named_after_the_file(tmp_path):
    cfg = load_config(CONFIG).detectors[0]
    src = tmp_path / "machine_7.jsonl"
    _write(src, [{"ts": 1.7e9 + i, "cpu": float(i % 5), "mem": 1.0} for i in range(50)])
    summary = replay(cfg, src, tmp_path / "out.csv")
    with (tmp_path / "out.csv").open() as fh:
        assert {row["entity"] for row in csv.DictReader(fh)} == {"machine_7"}
    assert summary.processed == 50


def test_unknown_suffix_and_broken_json(tmp_path):
    with pytest.raises(RnnstreamError, match="expected a .csv or .jsonl"):
        list(read_records(tmp_path / "data.txt"))
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"a": 1}\n{not json\n')
    with pytest.raises(RnnstreamError, match="bad.jsonl:2"):
        list(read_records(bad))
