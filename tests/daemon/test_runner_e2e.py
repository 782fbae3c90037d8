"""The daemon against a real broker: synthetic stream end to end, and every kind of bad input."""

from __future__ import annotations

from datetime import datetime

import orjson
import pytest

from .runner_helpers import (ThreadedRunner, committed, end_offsets, produce, read_all, synth_events,
                             unique, wait_until, write_config)

pytestmark = [pytest.mark.kafka, pytest.mark.timeout(240)]

ANOMALY_KEYS = {"event_id", "detector", "entity", "timestamp", "event_time", "score", "error", "features",
                "blamed", "model_version", "instance_id", "source"}


def _sample(tr: ThreadedRunner, name: str, **labels: str) -> float:
    return tr.sample(name, labels)


def test_end_to_end_anomalies_and_accounting(kafka, tmp_path):
    topic = unique("e2e")
    kafka.create_topics([(topic, 2), (f"{topic}.anomalies", 1), (f"{topic}.dlq", 1)])
    events = synth_events(n_entities=8, n_steps=450)
    produce(kafka.bootstrap, topic, events)
    cfg_path = write_config(tmp_path, kafka.bootstrap, topic)
    tr = ThreadedRunner(cfg_path, instance_id="e2e-1")
    ends = end_offsets(kafka.bootstrap, topic, 2)
    assert sum(ends.values()) == len(events) and min(ends.values()) > 0
    wait_until(lambda: committed(kafka.bootstrap, tr.config.kafka.group_id) == ends, 120, "all offsets committed")
    assert tr.stop() == 0

    consumed = _sample(tr, "rnnstream_events_consumed_total", topic=topic)
    processed = _sample(tr, "rnnstream_events_processed_total", detector="hosts")
    assert consumed == len(events)
    assert processed == len(events)          # all synthetic events are valid
    anomalies = read_all(kafka.bootstrap, f"{topic}.anomalies")
    assert anomalies, "the injected incidents raised no anomaly at all"
    assert len(anomalies) == _sample(tr, "rnnstream_anomalies_total", detector="hosts")
    by_host = {}
    for rec in anomalies:
        ev = orjson.loads(rec.value)
        assert set(ev) == ANOMALY_KEYS
        src = ev["source"]
        assert set(src) == {"topic", "partition", "offset"} and src["topic"] == topic
        assert ev["event_id"] == f"hosts:{topic}:{src['partition']}:{src['offset']}"
        assert ev["detector"] == "hosts" and ev["instance_id"] == "e2e-1"
        assert rec.key == ev["entity"].encode()
        assert datetime.fromisoformat(ev["timestamp"].replace("Z", "+00:00")).timestamp() == pytest.approx(ev["event_time"], abs=1e-3)
        assert 0.0 <= ev["score"] <= 1.0 and ev["error"] >= 0.0
        assert set(ev["features"]) == {"cpu"} and set(ev["features"]["cpu"]) == {"observed", "predicted", "z", "kind"}
        assert isinstance(ev["model_version"], int)
        by_host.setdefault(ev["entity"], []).append(ev)
    original = {(e["host"], e["ts"]): e["cpu"] for e in events}
    for host, evs in by_host.items():
        for ev in evs:
            assert ev["features"]["cpu"]["observed"] == original[(host, ev["event_time"])]


def test_bad_input_goes_to_dead_letters_and_loop_continues(kafka, tmp_path):
    topic = unique("bad")
    kafka.create_topics([(topic, 1), (f"{topic}.anomalies", 1), (f"{topic}.dlq", 1)])
    good = [{"host": "a", "ts": 1_700_000_000 + 60 * i, "cpu": 10.0 + i % 7} for i in range(50)]
    last_ts = good[-1]["ts"]
    bad = {
        "undecodable": b"\xff\xfe{not json",
        "missing_field": orjson.dumps({"host": "a", "ts": last_ts + 60}),
        "wrong_type": orjson.dumps({"host": "a", "ts": last_ts + 60, "cpu": "lots"}),
        "non_finite_value": b'{"host": "a", "ts": %d, "cpu": "NaN"}' % (last_ts + 60),
        "oversize": orjson.dumps({"host": "a", "ts": last_ts + 60, "cpu": 1.0, "pad": "x" * 500}),
        "late": orjson.dumps({"host": "a", "ts": last_ts - 3600, "cpu": 12.0}),
    }
    after = [{"host": "a", "ts": last_ts + 120 + 60 * i, "cpu": 11.0} for i in range(20)]
    values = [*good, *bad.values(), *after]
    produce(kafka.bootstrap, topic, values, key=lambda v: b"a")
    tr = ThreadedRunner(write_config(tmp_path, kafka.bootstrap, topic))
    ends = end_offsets(kafka.bootstrap, topic, 1)
    wait_until(lambda: committed(kafka.bootstrap, tr.config.kafka.group_id) == ends, 120, "all offsets committed")
    assert tr.stop() == 0

    dlq = read_all(kafka.bootstrap, f"{topic}.dlq")
    assert len(dlq) == len(bad)
    first_bad = len(good)
    for rec in dlq:
        headers = {k: v for k, v in rec.headers}
        reason = headers["rnnstream.reason"].decode()
        assert rec.value == bad[reason], reason          # original bytes, untouched
        assert rec.key == b"a"
        assert headers["rnnstream.source.topic"] == topic.encode()
        assert headers["rnnstream.source.partition"] == b"0"
        offset = int(headers["rnnstream.source.offset"])
        assert offset == first_bad + list(bad).index(reason)
        assert headers["rnnstream.detector"] == b"hosts"
        assert headers["rnnstream.detail"]
    assert {dict(r.headers)["rnnstream.reason"].decode() for r in dlq} == set(bad)
    for reason in bad:
        assert _sample(tr, "rnnstream_events_rejected_total", detector="hosts", reason=reason) == 1, reason
    processed = _sample(tr, "rnnstream_events_processed_total", detector="hosts")
    assert processed == len(good) + len(after)      # the loop went on after the bad records
    assert _sample(tr, "rnnstream_events_consumed_total", topic=topic) == processed + len(bad)
