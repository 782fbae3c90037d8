"""rnnstream plot: from a replay scores CSV, and from anomaly events on the embedded broker."""

from __future__ import annotations

import io
import struct
from collections import namedtuple
from pathlib import Path

import orjson
import pytest
from kafka import KafkaProducer

from rnnstream.config import load_config_file
from rnnstream.daemon.outputs import Outputs, iso_utc
from rnnstream.errors import RnnstreamError
from rnnstream.ops.plot_cmd import plot_main, read_anomalies, rows_from_scores
from rnnstream.replay import replay
from rnnstream.synth import generate

from .helpers import write_config

Source = namedtuple("Source", "topic partition offset")
T0 = 1_700_000_000.0


def png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


def test_plot_from_replay_scores(tmp_path):
    cfg_path = write_config(tmp_path / "c.yaml", with_kafka=False)
    records, _ = generate(n_entities=3, n_steps=500)
    src = tmp_path / "in.jsonl"
    src.write_bytes(b"\n".join(orjson.dumps(r) for r in records))
    scores = tmp_path / "scores.csv"
    replay(load_config_file(cfg_path).detectors[0], src, scores)
    rows, features = rows_from_scores(scores, "host-02")
    assert features == ["cpu"] and len(rows) == 500
    assert [r[1] for r in rows] == [r["ts"] for r in records if r["host"] == "host-02"]
    out = tmp_path / "x.png"
    msg = io.StringIO()
    assert plot_main(scores=str(scores), entity="host-02", out=str(out), stdout=msg) == 0
    assert out.stat().st_size > 10_000
    assert png_size(out) == (1200, 480)   # plot_entity: 12 in wide, 2.4 in per panel (1 feature + score), 100 dpi
    assert "500 events" in msg.getvalue()
    with pytest.raises(RnnstreamError, match=r"no scored rows for entity 'host-77' \(entities in the file: host-00, host-01, host-02\)"):
        plot_main(scores=str(scores), entity="host-77", out=str(tmp_path / "y.png"))
    assert not (tmp_path / "y.png").exists()


def test_plot_needs_exactly_one_source(tmp_path):
    with pytest.raises(RnnstreamError, match="exactly one"):
        plot_main(entity="e", out=str(tmp_path / "x.png"))


def produce_anomalies(kafka, topic: str, cfg) -> list[dict]:
    """Anomaly events in the documented schema (Outputs.anomaly) for two entities, plus noise."""
    producer = KafkaProducer(bootstrap_servers=kafka.bootstrap)
    outputs = Outputs(producer, cfg, "test-instance")
    sent = []
    for k in range(12):
        entity = "host-01" if k % 3 else "host-02"
        t = T0 + 600.0 * k
        rec = Source("metrics.hosts", k % 2, 1000 + k)
        outputs.anomaly(rec, entity, t, 0.5 + k / 100, 3.0 + k, [40.0 + k], [20.0 + k], [4.0], 1)
        sent.append(outputs.anomaly_event(rec, entity, t, 0.5 + k / 100, 3.0 + k, [40.0 + k], [20.0 + k], [4.0], 1))
    other = dict(sent[1], detector="other")
    producer.send(topic, key=b"host-01", value=orjson.dumps(other))   # another detector's event: ignored
    producer.send(topic, key=b"host-01", value=b"not json")           # ignored
    producer.flush()
    outputs.service()
    producer.close()
    assert outputs.pending == 0 and outputs.dropped == 0
    return sent


def test_plot_from_anomalies_topic(kafka, tmp_path):
    topic = kafka.new_topic("ops-anomalies", 2)
    cfg_path = write_config(tmp_path / "c.yaml", bootstrap=kafka.bootstrap, anomalies=topic)
    cfg = load_config_file(cfg_path)
    sent = produce_anomalies(kafka, topic, cfg.detectors[0])
    mine = [e for e in sent if e["entity"] == "host-01"]
    events, scanned = read_anomalies(cfg, "hosts", "host-01", timeout_s=20)
    assert scanned == len(sent) + 2
    assert [e["event_id"] for e in events] == [e["event_id"] for e in mine]
    assert events[0]["features"]["cpu"]["predicted"] == mine[0]["features"]["cpu"]["predicted"]
    since = iso_utc(mine[3]["event_time"])
    later, _ = read_anomalies(cfg, "hosts", "host-01", since=T0 + 600.0 * 5, timeout_s=20)
    assert [e["event_time"] for e in later] == [e["event_time"] for e in mine if e["event_time"] >= T0 + 3000]
    out = tmp_path / "a.png"
    msg = io.StringIO()
    assert plot_main(config=str(cfg_path), anomalies=True, detector="hosts", entity="host-01", out=str(out),
                     since=since, timeout_s=20, stdout=msg) == 0
    assert out.stat().st_size > 5_000 and png_size(out) == (1200, 480)
    assert f"{len(mine) - 3} anomalies from {topic}" in msg.getvalue()
    # bounded: max_records stops early
    few, scanned = read_anomalies(cfg, "hosts", "host-01", max_records=3, timeout_s=20)
    assert scanned == 3
    with pytest.raises(RnnstreamError, match=f"no anomalies of entity 'host-09' by detector 'hosts' in the first 14 record"):
        plot_main(config=str(cfg_path), anomalies=True, detector="hosts", entity="host-09",
                  out=str(tmp_path / "b.png"), timeout_s=20)


def test_plot_anomalies_missing_topic(kafka, tmp_path):
    cfg_path = write_config(tmp_path / "c.yaml", bootstrap=kafka.bootstrap, anomalies="ops-never-created")
    with pytest.raises(RnnstreamError, match="anomalies topic 'ops-never-created' does not exist"):
        plot_main(config=str(cfg_path), anomalies=True, detector="hosts", entity="e",
                  out=str(tmp_path / "b.png"), timeout_s=5)
    assert "ops-never-created" not in kafka.admin_client().list_topics()
