"""Outputs with a recording fake producer: event schema, deterministic ids, dead-letter headers and bytes."""

from __future__ import annotations

from datetime import datetime

import numpy as np
import orjson
import pytest
from kafka.consumer.fetcher import ConsumerRecord
from kafka.future import Future

from rnnstream.config import load_config
from rnnstream.daemon.decode import decode_batch
from rnnstream.daemon.outputs import DeliveryError, Outputs
from rnnstream.detector import BatchResult


class FakeProducer:
    def __init__(self):
        self.sent: list[dict] = []
        self.futures: list[Future] = []

    def send(self, topic, value=None, key=None, headers=None, partition=None, timestamp_ms=None):
        self.sent.append({"topic": topic, "key": key, "value": value, "headers": headers})
        fut = Future()
        self.futures.append(fut)
        return fut


def detector_cfg(outputs: str = "{anomalies_topic: anomalies, dead_letter_topic: dlq}"):
    return load_config(f"""
detectors:
  - name: hosts
    topics: [metrics]
    entity: host
    timestamp: {{field: ts}}
    features: [cpu, mem.used]
    outputs: {outputs}
""").detectors[0]


def rec(value: bytes, offset: int, key=None, headers=()):
    return ConsumerRecord("metrics", 4, 0, offset, 1_700_000_000_000, 0, key, value, list(headers), None,
                          -1, len(value), -1)


def test_anomaly_event_schema_and_id():
    p = FakeProducer()
    out = Outputs(p, detector_cfg(), "pod-1")
    r = rec(b"{}", 1234)
    assert out.anomaly(r, "web1", 1_700_000_000.25, 0.997, 3.5, [0.9, 70.0], [0.2, 60.0], [4.0, 1.5], 7,
                       np.array([1, 0], dtype=np.uint8))
    (msg,) = p.sent
    assert msg["topic"] == "anomalies" and msg["key"] == b"web1" and msg["headers"] is None
    event = orjson.loads(msg["value"])
    assert event == {
        "event_id": "hosts:metrics:4:1234",
        "detector": "hosts",
        "entity": "web1",
        "timestamp": "2023-11-14T22:13:20.250Z",
        "event_time": 1_700_000_000.25,
        "score": 0.997,
        "error": 3.5,
        "features": {"cpu": {"observed": 0.9, "predicted": 0.2, "z": 4.0, "kind": "spike"},
                     "mem.used": {"observed": 70.0, "predicted": 60.0, "z": 1.5, "kind": None}},
        "blamed": ["cpu"],
        "model_version": 7,
        "instance_id": "pod-1",
        "source": {"topic": "metrics", "partition": 4, "offset": 1234},
    }
    assert datetime.fromisoformat(event["timestamp"].replace("Z", "+00:00")).timestamp() == event["event_time"]
    # The same source record gives the same id (duplicates after a restart can be dropped).
    out.anomaly(r, "web1", 1_700_000_000.25, 0.5, 1.0, [0, 0], [0, 0], [0, 0], 8)
    assert orjson.loads(p.sent[1]["value"])["event_id"] == event["event_id"]


def test_dead_letter_keeps_original_bytes_and_headers():
    p = FakeProducer()
    out = Outputs(p, detector_cfg(), "pod-1")
    original = b'{"host": "a", "cpu": "\xff\xfe'   # not even UTF-8
    r = rec(original, 99, key=b"k\x00ey", headers=[("trace", b"abc")])
    assert out.dead_letter(r, "undecodable", "metrics[4]@99: value is not UTF-8 JSON")
    (msg,) = p.sent
    assert msg["topic"] == "dlq" and msg["value"] == original and msg["key"] == b"k\x00ey"
    assert msg["headers"] == [
        ("trace", b"abc"),
        ("rnnstream.reason", b"undecodable"),
        ("rnnstream.detail", b"metrics[4]@99: value is not UTF-8 JSON"),
        ("rnnstream.source.topic", b"metrics"),
        ("rnnstream.source.partition", b"4"),
        ("rnnstream.source.offset", b"99"),
        ("rnnstream.detector", b"hosts"),
    ]
    out.dead_letter(r, "oversize", "x" * 5000)
    assert len(dict(p.sent[1]["headers"])["rnnstream.detail"]) == 1024


def test_unconfigured_topics_are_not_written():
    p = FakeProducer()
    out = Outputs(p, detector_cfg("{}"), "pod-1")
    r = rec(b"{}", 1)
    assert not out.anomaly(r, "a", 0.0, 1.0, 1.0, [0, 0], [0, 0], [0, 0], 0)
    assert not out.score(r, "a", 0.0, 1.0, 1.0, 1, 0)
    assert not out.dead_letter(r, "oversize", "")
    assert p.sent == []


def test_publish_batch_routes_everything():
    cfg = detector_cfg("{anomalies_topic: anomalies, scores_topic: scores, dead_letter_topic: dlq}")
    records = [rec(orjson.dumps({"host": h, "ts": 100 + i, "cpu": i, "mem": {"used": 1}}), 10 + i)
               for i, h in enumerate(["a", "b", "c"])]
    records.insert(1, rec(b"[]", 50))
    decoded = decode_batch(records, cfg)
    # The detector refused accepted event 1 ("b") and flagged event 2 ("c") as an anomaly.
    result = BatchResult(index=np.array([0, 2]), pred=np.array([[1.0, 2.0], [3.0, 4.0]]),
                         z=np.array([[0.1, 0.2], [5.0, 0.3]]), err=np.array([0.5, 6.0]),
                         score=np.array([0.1, 0.999]), flag=np.array([2, 1], dtype=np.uint8),
                         rejected=[(1, "non_finite_value")], evicted=[], model_version=np.array([3, 3]),
                         kind=np.array([[0, 0], [3, 0]], dtype=np.uint8))
    p = FakeProducer()
    counts = Outputs(p, cfg, "i").publish(decoded, result)
    assert counts == {"anomaly": 1, "score": 2, "dead_letter": 2}
    by_topic = {}
    for m in p.sent:
        by_topic.setdefault(m["topic"], []).append(m)
    assert [dict(m["headers"])["rnnstream.reason"] for m in by_topic["dlq"]] == [b"not_object", b"non_finite_value"]
    assert [dict(m["headers"])["rnnstream.source.offset"] for m in by_topic["dlq"]] == [b"50", b"11"]
    (anomaly,) = [orjson.loads(m["value"]) for m in by_topic["anomalies"]]
    assert anomaly["entity"] == "c" and anomaly["event_id"] == "hosts:metrics:4:12"
    assert anomaly["features"]["cpu"] == {"observed": 2.0, "predicted": 3.0, "z": 5.0, "kind": "level_shift"}
    assert anomaly["blamed"] == ["cpu"]
    scores = [orjson.loads(m["value"]) for m in by_topic["scores"]]
    assert [(s["entity"], s["anomaly"], s["suppressed"], s["model_version"]) for s in scores] == \
        [("a", False, True, 3), ("c", True, False, 3)]


def test_delivery_failures_are_reported():
    p = FakeProducer()
    out = Outputs(p, detector_cfg(), "pod-1")
    r = rec(b"{}", 1)
    out.dead_letter(r, "oversize", "")
    out.dead_letter(r, "oversize", "")
    p.futures[0].success(None)
    out.raise_if_failed()
    p.futures[1].failure(RuntimeError("broker gone"))
    with pytest.raises(DeliveryError, match="dlq: RuntimeError"):
        out.raise_if_failed()
    out.raise_if_failed()   # reported once
