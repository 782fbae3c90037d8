"""Outputs with a recording fake producer: event schema, deterministic ids, dead-letter headers and bytes."""

from __future__ import annotations

from datetime import datetime

import numpy as np
import orjson
import pytest
from kafka.consumer.fetcher import ConsumerRecord
from kafka.future import Future

from rnnstream.config import load_config
from rnnstream.daemon import scoresbatch
from rnnstream.daemon.decode import decode_batch
from rnnstream.daemon.outputs import Outputs


class FakeProducer:
    def __init__(self):
        self.sent: list[dict] = []
        self.futures: list[Future] = []

    def send(self, topic, value=None, key=None, headers=None, partition=None, timestamp_ms=None):
        self.sent.append({"topic": topic, "key": key, "value": value, "headers": headers})
        fut = Future()
        self.futures.append(fut)
        return fut


def detector_cfg(outputs: str = "{anomalies_topic: anomalies, dead_letter_topic: dlq}", extra: str = ""):
    return load_config(f"""
detectors:
  - name: hosts
    topics: [metrics]
    entity: host
    timestamp: {{field: ts}}
    features: [cpu, mem.used]
    outputs: {outputs}
{extra}""").detectors[0]


def rec(value: bytes, offset: int, key=None, headers=(), timestamp_ms=1_700_000_000_000):
    return ConsumerRecord("metrics", 4, 0, offset, timestamp_ms, 0, key, value, list(headers), None,
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


def _unit(cfg):
    from prometheus_client import CollectorRegistry

    from rnnstream.daemon.units import Unit
    from rnnstream.detector import Detector
    from rnnstream.metrics import Metrics

    metrics = Metrics(CollectorRegistry())
    return Unit(cfg.name, ("metrics", 4), cfg, Detector(cfg), metrics.for_detector(cfg.name)), metrics


def test_unit_handle_routes_every_output():
    """The one publishing path production runs: decode rejects, detector rejects, anomalies, scores."""
    cfg = detector_cfg("{anomalies_topic: anomalies, scores_topic: scores, dead_letter_topic: dlq}",
                       "    scoring: {warmup_events: 10, long_window: 50, novelty_tolerance: 0.1}\n")
    t0 = 1_700_000_000
    records = [rec(orjson.dumps({"host": "a", "ts": t0 + 60 * i, "cpu": 1.0 + (i % 3) * 0.01, "mem": {"used": 1}}), 10 + i,
                   timestamp_ms=(t0 + 60 * i) * 1000) for i in range(80)]
    records.append(rec(orjson.dumps({"host": "a", "ts": t0 + 60 * 80, "cpu": 5000.0, "mem": {"used": 1}}), 90,
                       timestamp_ms=(t0 + 60 * 80) * 1000))   # a spike
    records.insert(1, rec(b"[]", 50))                                                              # not an object
    records.insert(2, rec(orjson.dumps({"host": "b", "ts": t0, "cpu": 1e300, "mem": {"used": 1}}), 51))   # out of range
    records.insert(3, rec(orjson.dumps({"host": "c", "ts": t0 + 10 ** 8, "cpu": 1, "mem": {"used": 1}}), 52))  # future
    unit, metrics = _unit(cfg)
    p = FakeProducer()
    out = Outputs(p, cfg, "i", metrics=unit.metrics)
    try:
        counts = unit.handle(records, out, decode_batch)
    finally:
        unit.close()
    assert (counts.consumed, counts.processed, counts.rejected) == (84, 81, 3)
    by_topic = {}
    for m in p.sent:
        by_topic.setdefault(m["topic"], []).append(m)
    reasons = [(dict(m["headers"])["rnnstream.reason"], dict(m["headers"])["rnnstream.source.offset"]) for m in by_topic["dlq"]]
    assert reasons == [(b"not_object", b"50"), (b"out_of_range", b"51"), (b"future", b"52")]
    assert b"after the record timestamp" in dict(by_topic["dlq"][2]["headers"])["rnnstream.detail"]
    assert len(by_topic["scores"]) == 81
    scores = [orjson.loads(m["value"]) for m in by_topic["scores"]]
    assert [s["event_id"] for s in scores][:2] == ["hosts:metrics:4:10", "hosts:metrics:4:11"]
    (anomaly,) = [orjson.loads(m["value"]) for m in by_topic["anomalies"]]
    assert anomaly["event_id"] == "hosts:metrics:4:90" and anomaly["features"]["cpu"]["observed"] == 5000.0
    assert anomaly["features"]["cpu"]["kind"] in ("spike", "novelty") and anomaly["blamed"] == ["cpu"]
    assert anomaly["features"]["mem.used"]["kind"] is None
    assert sum(s["anomaly"] for s in scores) == 1
    # anomalous: each event's own score reached the threshold, raised or not (the alarm's event among them)
    assert all(s["anomalous"] == (s["score"] >= 0.5) for s in scores) and scores[-1]["anomalous"]
    for reason in ("not_object", "out_of_range", "future"):
        assert metrics.registry.get_sample_value("rnnstream_events_rejected_total",
                                                 {"detector": "hosts", "reason": reason}) == 1


class FailingProducer(FakeProducer):
    """Raises ``fail[topic]`` (an exception instance) from send while the topic is in ``fail``."""

    def __init__(self, max_request_size=1048576):
        super().__init__()
        self.config = {"max_request_size": max_request_size}
        self.fail: dict = {}
        self.calls = 0

    def send(self, topic, **kwargs):
        self.calls += 1
        if topic in self.fail:
            raise self.fail[topic]
        return super().send(topic, **kwargs)


class Clock:
    def __init__(self):
        self.t = 0.0

    def __call__(self):
        return self.t


def test_oversize_dead_letter_becomes_a_reference():
    p = FailingProducer(max_request_size=10_000)
    out = Outputs(p, detector_cfg(), "pod-1")
    big = rec(b'{"pad": "' + b"x" * 20_000 + b'"}', 7, key=b"k", headers=[("trace", b"t" * 5000)])
    out.dead_letter(big, "oversize", "payload is 20012 bytes")
    (msg,) = p.sent
    assert msg["topic"] == "dlq" and msg["key"] == b"k"
    ref = orjson.loads(msg["value"])
    assert ref["reference"] == {"topic": "metrics", "partition": 4, "offset": 7}
    assert ref["size"] > 25_000 and "exceed the producer's 10000-byte limit" in ref["reason"]
    assert (ref["kind"], ref["detector"]) == ("dead_letter", "hosts")
    headers = dict(msg["headers"])
    assert "trace" not in headers and headers["rnnstream.reason"] == b"oversize"
    assert headers["rnnstream.source.offset"] == b"7"
    assert b"reference" in headers["rnnstream.truncated"] and b"10000-byte limit" in headers["rnnstream.truncated"]
    assert out.truncated == 1 and out.pending == 0


def test_record_refused_as_too_large_synchronously_or_by_the_broker_is_referenced():
    from kafka.errors import MessageSizeTooLargeError

    p = FailingProducer()
    out = Outputs(p, detector_cfg(), "pod-1")
    p.fail["dlq"] = MessageSizeTooLargeError("too big")
    out.dead_letter(rec(b"v" * 100, 1), "oversize", "")   # the reference fails the same way: dropped, logged
    assert (out.truncated, out.dropped, out.pending) == (1, 1, 0)
    del p.fail["dlq"]
    out.dead_letter(rec(b"v" * 100, 2), "oversize", "")
    p.futures[-1].failure(MessageSizeTooLargeError("broker: topic max.message.bytes"))   # async, I/O thread
    out.service()
    assert out.truncated == 2
    assert orjson.loads(p.sent[-1]["value"])["reference"]["offset"] == 2


def test_undeliverable_outputs_are_queued_retried_with_backoff_and_never_raise():
    from kafka.errors import KafkaTimeoutError, NotLeaderForPartitionError
    from prometheus_client import CollectorRegistry

    from rnnstream.metrics import Metrics

    clock = Clock()
    metrics = Metrics(CollectorRegistry())
    p = FailingProducer()
    out = Outputs(p, detector_cfg(), "pod-1", metrics=metrics.for_detector("hosts"),
                  retry_backoff_ms=1000, retry_backoff_max_ms=3000, clock=clock)
    p.fail["dlq"] = KafkaTimeoutError("Failed to update metadata after 2.0 secs.")
    for i in range(5):
        out.dead_letter(rec(b"{}", i), "undecodable", "")
    assert p.calls == 1            # the first send found the topic failing; the rest queue without blocking
    assert out.pending == 5 and "dlq (KafkaTimeoutError)" in out.problem()
    out.anomaly(rec(b"{}", 9), "web1", 0.0, 1.0, 1.0, [0, 0], [0, 0], [0, 0], 1)   # another topic still flows
    assert p.sent[-1]["topic"] == "anomalies"

    clock.t = 0.5
    out.service()
    assert p.calls == 2            # backoff not over: nothing tried
    clock.t = 1.0
    out.service()
    assert p.calls == 3 and out.pending == 5      # one probe per failing topic, then back off 2 s
    clock.t = 2.9
    out.service()
    assert p.calls == 3
    del p.fail["dlq"]
    clock.t = 3.0
    out.service()
    assert out.pending == 0 and out.problem() == ""
    assert [m["headers"][-2][1] for m in p.sent if m["topic"] == "dlq"] == [b"0", b"1", b"2", b"3", b"4"]
    # An asynchronous failure (after the producer's own retries) is queued the same way.
    out.dead_letter(rec(b"{}", 6), "undecodable", "")
    p.futures[-1].failure(NotLeaderForPartitionError())
    out.service()
    assert out.pending == 1
    clock.t = 10.0
    out.service()
    assert out.pending == 0
    assert metrics.registry.get_sample_value("rnnstream_output_send_failures_total",
                                             {"detector": "hosts", "topic": "dlq"}) == 3
    assert metrics.registry.get_sample_value("rnnstream_outputs_pending", {"detector": "hosts"}) == 0


def test_a_record_that_can_never_be_sent_is_dropped_and_counted_not_raised():
    p = FailingProducer()
    out = Outputs(p, detector_cfg(), "pod-1")
    p.fail["anomalies"] = TypeError("bad header type")
    assert out.anomaly(rec(b"{}", 1), "web1", 0.0, 1.0, 1.0, [0, 0], [0, 0], [0, 0], 1)
    assert (out.dropped, out.pending) == (1, 0)


def test_record_times_are_the_reference_clock_nan_when_absent():
    from rnnstream.daemon.units import record_times

    times = record_times([rec(b"{}", 1, timestamp_ms=1_500), rec(b"{}", 2, timestamp_ms=-1), rec(b"{}", 3, timestamp_ms=None)])
    assert times[0] == 1.5 and np.isnan(times[1:]).all()


def _spike_records():
    """81 scorable events of entity 'a' at offsets 10..90 (the last a spike), one rejected at 50."""
    t0 = 1_700_000_000
    records = [rec(orjson.dumps({"host": "a", "ts": t0 + 60 * i, "cpu": 1.0 + (i % 3) * 0.01, "mem": {"used": 1}}),
                   10 + i if i < 40 else 11 + i, timestamp_ms=(t0 + 60 * i) * 1000) for i in range(80)]
    records.insert(40, rec(b"[]", 50))
    records.append(rec(orjson.dumps({"host": "a", "ts": t0 + 60 * 80, "cpu": 5000.0, "mem": {"used": 1}}), 91,
                       timestamp_ms=(t0 + 60 * 80) * 1000))
    return records


def _run_scores(scores_format: str, producer=None):
    cfg = detector_cfg(f"{{scores_topic: scores, scores_format: {scores_format}}}",
                       "    scoring: {warmup_events: 10, long_window: 50, novelty_tolerance: 0.1}\n")
    unit, _ = _unit(cfg)
    p = producer if producer is not None else FakeProducer()
    out = Outputs(p, cfg, "pod-1")
    try:
        unit.handle(_spike_records()[:41], out, decode_batch)     # two polls: offsets 10..50, 51..91
        unit.handle(_spike_records()[41:], out, decode_batch)
    finally:
        unit.close()
    return p, out


def test_batched_scores_hold_every_event_once_in_offset_order_with_the_record_format_values():
    records_p, _ = _run_scores("record")
    batch_p, out = _run_scores("batch")
    per_event = [orjson.loads(m["value"]) for m in records_p.sent]
    assert len(per_event) == 81
    assert [m["topic"] for m in batch_p.sent] == ["scores", "scores"]            # one record per poll
    assert {m["key"] for m in batch_p.sent} == {b"hosts:metrics:4"}               # one source partition: one key
    batches = [scoresbatch.decode(m["value"]) for m in batch_p.sent]
    for b in batches:
        assert (b["schema"], b["version"], b["detector"], b["instance_id"]) == ("rnnstream.scores", 2, "hosts", "pod-1")
        assert b["count"] == len(b["offset"]) == len(b["entity"]) == len(b["score"]) == len(b["model_version"])
        assert b["source"] == {"topic": "metrics", "partition": 4,
                               "first_offset": b["offset"][0], "last_offset": b["offset"][-1]}
    offsets = [o for b in batches for o in b["offset"].tolist()]
    assert offsets == sorted(set(offsets)) and 50 not in offsets and len(offsets) == 81   # once each, in order
    headers = [orjson.loads(m["value"].split(b"\n")[0]) for m in batch_p.sent]
    assert [h["offset_runs"] for h in headers] == [[[10, 40]], [[51, 41]]]      # 50 was refused
    rebuilt = [e for m in batch_p.sent for e in scoresbatch.events(m["value"])]
    assert rebuilt == per_event                    # the same facts as the per-record format, bit for bit
    assert sum(e["anomaly"] for e in rebuilt) == 1 and rebuilt[-1]["anomaly"] and rebuilt[-1]["anomalous"]
    assert out.sent["score"] == 2


def test_a_batch_over_the_record_size_limit_is_split_into_consecutive_batches():
    p = FailingProducer(max_request_size=1500)
    _run_scores("batch", p)
    batches = [scoresbatch.decode(m["value"]) for m in p.sent]
    assert len(batches) > 2
    assert all(len(m["value"]) + len(m["key"]) + 512 <= 1500 for m in p.sent)
    offsets = [o for b in batches for o in b["offset"].tolist()]
    assert offsets == sorted(set(offsets)) and len(offsets) == 81
    for b in batches:
        assert (b["source"]["first_offset"], b["source"]["last_offset"], b["count"]) == (b["offset"][0], b["offset"][-1], len(b["offset"]))
    whole = [e for m in _run_scores("batch")[0].sent for e in scoresbatch.events(m["value"])]
    assert [e for m in p.sent for e in scoresbatch.events(m["value"])] == whole     # batching changes no value


def test_per_record_scores_take_the_default_partitioners_partition():
    from kafka.partitioner.default import DefaultPartitioner

    class Cluster:
        def topics(self):
            return {"scores"}

        def partitions_for_topic(self, topic):
            return {0, 1, 2, 3, 4}

        def available_partitions_for_topic(self, topic):
            return {0, 1, 2, 3, 4}

    class PartitionedProducer(FakeProducer):
        def partitions_for(self, topic):
            return {0, 1, 2, 3, 4}

        def send(self, topic, value=None, key=None, headers=None, partition=None, timestamp_ms=None):
            fut = super().send(topic, value=value, key=key, headers=headers)
            self.sent[-1]["partition"] = partition
            return fut

    p = PartitionedProducer()
    out = Outputs(p, detector_cfg("{scores_topic: scores}"), "pod-1")
    entities = [f"host-{i}" for i in range(40)]
    raw = [rec(b"{}", i) for i in range(40)]
    out.scores(raw, entities, np.arange(40.0), np.arange(40), np.zeros(40), np.zeros(40), np.zeros(40, np.uint8), 1)
    expected = [DefaultPartitioner().partition("scores", None, e.encode(), None, None, Cluster()) for e in entities]
    assert [m["partition"] for m in p.sent] == expected and len(set(expected)) > 1


@pytest.mark.parametrize("scores_format", ["record", "batch"])
def test_async_failures_are_taken_without_a_callback_per_record(scores_format):
    from kafka.errors import NotLeaderForPartitionError

    clock = Clock()
    cfg = detector_cfg(f"{{scores_topic: scores, scores_format: {scores_format}}}")
    p = FakeProducer()
    out = Outputs(p, cfg, "pod-1", retry_backoff_ms=1000, clock=clock)
    raw = [rec(b"{}", 100 + i) for i in range(6)]
    out.scores(raw, ["a", "b", "c", "d", "e", "f"], np.arange(6.0), np.arange(6), np.linspace(0, 1, 6),
               np.ones(6), np.zeros(6, np.uint8), 3)
    assert all(not f._callbacks and not f._errbacks for f in p.futures)   # nothing registered per record
    first = list(p.sent)
    for f in p.futures[:-1]:
        f.success(None)
    p.futures[-1].failure(NotLeaderForPartitionError())
    out.service()
    assert (out.pending, out.send_failures) == (1, 1)          # counted and queued, not lost
    assert "scores (NotLeaderForPartitionError)" in out.problem()
    clock.t = 1.0
    out.service()                                              # the retry sends the same bytes again
    assert out.pending == 0 and p.sent[-1] == first[-1]
    p.futures[-1].success(None)
    out.service()
    assert out._inflight == []                                 # delivered records are forgotten
    # Never done (e.g. a flush timed out): kept, and not counted as delivered or failed.
    out.scores(raw[:1], ["a"], np.zeros(1), np.arange(1), np.zeros(1), np.zeros(1), np.zeros(1, np.uint8), 3)
    out.service()
    assert len(out._inflight) == 1 and out.send_failures == 1


def test_a_failed_transaction_discards_what_was_in_flight():
    p = FakeProducer()
    out = Outputs(p, detector_cfg("{scores_topic: scores}"), "pod-1")
    out.scores([rec(b"{}", 1)], ["a"], np.zeros(1), np.arange(1), np.zeros(1), np.zeros(1), np.zeros(1, np.uint8), 1)
    out.discard_pending()
    from kafka.errors import KafkaError
    p.futures[-1].failure(KafkaError("aborted"))
    out.service()
    assert out.pending == 0 and out.send_failures == 0


@pytest.mark.parametrize("offsets", [[5, 6, 7, 8, 9], [5, 7, 8, 20, 21]])
@pytest.mark.parametrize("index", [[0, 1, 2, 3, 4], [1, 3], [0, 4]])
def test_the_selected_events_offsets_with_and_without_gaps_in_the_poll(offsets, index):
    from rnnstream.daemon.outputs import _selected

    raw = [rec(b"{}", o) for o in offsets]
    names = [f"e{o}" for o in offsets]
    ents, got = _selected(raw, names, np.array(index))
    assert got.dtype == np.int64 and got.tolist() == [offsets[i] for i in index]
    assert ents == [names[i] for i in index]
