"""rnnstream plot: from a replay scores CSV, and from anomaly events on the embedded broker."""

from __future__ import annotations

import io
import struct
from collections import namedtuple
from pathlib import Path

import numpy as np

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


def test_series_from_topics_puts_anomalies_in_their_score_context():
    from rnnstream.ops.plot_cmd import series_from_topics

    scores = [{"event_time": T0 + 60.0 * i, "score": i / 10, "anomaly": i == 5, "suppressed": i == 6}
              for i in range(8)]
    anomaly = {"event_time": T0 + 300.0, "score": 0.5,
               "features": {"cpu": {"observed": 97.0, "predicted": 41.0, "z": 5.3}}}
    s = series_from_topics("web-1", [anomaly], scores, ["cpu"])
    assert len(s.t) == 8 and s.anomaly.tolist() == [False] * 5 + [True, False, False]
    assert s.suppressed.tolist() == [False] * 6 + [True, False]
    assert s.x[5, 0] == 97.0 and s.pred[5, 0] == 41.0 and np.isnan(s.x[0, 0])
    assert s.culprits()[5].tolist() == [True]


def test_plot_anomalies_draws_the_scores_around_them(kafka, tmp_path):
    anomalies_t, scores_t = kafka.new_topic("ops-anom-ctx", 1), kafka.new_topic("ops-scores-ctx", 1)
    cfg_path = write_config(tmp_path / "c.yaml", bootstrap=kafka.bootstrap, anomalies=anomalies_t, scores=scores_t)
    cfg = load_config_file(cfg_path)
    producer = KafkaProducer(bootstrap_servers=kafka.bootstrap)
    outputs = Outputs(producer, cfg.detectors[0], "test-instance")
    for i in range(300):                    # an hour's worth of scores either side of the anomaly, and far away
        t = T0 + 60.0 * i
        rec = Source("metrics.hosts", 0, i)
        is_anomaly = i == 150
        outputs.score(rec, "host-01", t, 0.9 if is_anomaly else 0.1, 1.0, 1 if is_anomaly else 0, 1)
        if is_anomaly:
            outputs.anomaly(rec, "host-01", t, 0.9, 5.0, [90.0], [40.0], [5.0], 1)
    producer.flush()
    producer.close()
    out, msg = tmp_path / "ctx.png", io.StringIO()
    assert plot_main(config=str(cfg_path), anomalies=True, detector="hosts", entity="host-01", out=str(out),
                     timeout_s=20, context_s=3600.0, stdout=msg) == 0
    # 60 scores either side of the anomaly (the rest is outside the hour of context), the anomaly's own
    assert f"1 anomalies from {anomalies_t}" in msg.getvalue() and f"121 scores from {scores_t}" in msg.getvalue()
    assert png_size(out) == (1200, 480)
