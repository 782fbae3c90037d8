"""Hostile input against the real daemon and broker: an oversize record, extreme values, a future-dated event.

Each test ends with the daemon alive, every offset committed, consumed = processed + dead-lettered, and
no non-finite value in the metrics or the checkpointed state.
"""

from __future__ import annotations

import time

import orjson
import pytest
from kafka.admin import NewTopic

from .helpers import (T0, Daemon, check_invariants, check_state, committed, end_offsets, events, produce,
                      unique, wait_until, write_config)
from daemon.runner_helpers import read_all

pytestmark = [pytest.mark.kafka, pytest.mark.chaos, pytest.mark.timeout(240)]


def test_oversize_record_is_dead_lettered_as_a_reference_without_a_crash_loop(kafka, tmp_path):
    """Used to crash: MessageSizeTooLargeError from producer.send on the dead-letter path, every restart."""
    topic = unique("chaos-big")
    kafka.admin_client().create_topics([NewTopic(topic, 1, 1, topic_configs={"max.message.bytes": "4194304"})])
    kafka.create_topics([(f"{topic}.anomalies", 1), (f"{topic}.dlq", 1)])
    evs = events(4, 50)
    big = dict(evs[100], pad="x" * 1_100_000)                      # valid JSON, over max_message_bytes
    produce(kafka.bootstrap, topic, [*evs[:100], big, *evs[100:199]], max_request_size=4 * 1024 * 1024)
    cfg_path = write_config(tmp_path, kafka.bootstrap, topic)
    d = Daemon(cfg_path, tmp_path / "daemon.log")
    try:
        ends = end_offsets(kafka.bootstrap, topic, 1)
        group = d.cfg.kafka.group_id
        wait_until(lambda: committed(kafka.bootstrap, group) == ends or not d.alive, 60, "every offset committed")
        assert d.alive, d.log()
        samples = check_invariants(d, topic)
        assert samples[("rnnstream_events_rejected_total", (("detector", "hosts"), ("reason", "oversize")))] == 1
        assert samples[("rnnstream_events_processed_total", (("detector", "hosts"),))] == 199
        assert samples[("rnnstream_outputs_truncated_total", (("detector", "hosts"),))] == 1
        (letter,) = read_all(kafka.bootstrap, f"{topic}.dlq", idle_s=1.5)
        headers = dict(letter.headers)
        assert headers["rnnstream.reason"] == b"oversize" and b"reference" in headers["rnnstream.truncated"]
        ref = orjson.loads(letter.value)
        assert ref["reference"] == {"topic": topic, "partition": 0, "offset": 100} and ref["size"] > 1_100_000
        code, took = d.terminate()
        assert code == 0 and took < 10
    finally:
        d.kill()
    assert check_state(cfg_path, topic, 1) == 4


def test_extreme_values_and_a_future_dated_event_are_refused_and_evict_nobody(kafka, tmp_path):
    """Used to poison state (1e300: NaN everywhere) and, with one event dated a year ahead, evict every
    other entity at the next idle sweep (every 65,536 events) and refuse that entity's events as late."""
    topic = unique("chaos-extreme")
    kafka.create_topics([(topic, 1), (f"{topic}.anomalies", 1), (f"{topic}.dlq", 1)])
    n_entities, steps = 100, 700                                   # 70,000 events: past one idle sweep
    evs = events(n_entities, steps, seed=3)
    now_ms = int(time.time() * 1000)
    evs[5] = dict(evs[5], cpu=1e300)                               # h005's first value
    evs[305] = dict(evs[305], cpu=-1.7976931348623157e308)
    evs[407] = dict(evs[407], cpu=1e154)
    future = 400
    evs[future] = dict(evs[future], ts=time.time() + 365 * 86400)  # h000, dated a year ahead
    produce(kafka.bootstrap, topic, evs, timestamps_ms=[now_ms] * len(evs))
    cfg_path = write_config(tmp_path, kafka.bootstrap, topic, ttl=7 * 86400.0)
    d = Daemon(cfg_path, tmp_path / "daemon.log")
    try:
        ends = end_offsets(kafka.bootstrap, topic, 1)
        group = d.cfg.kafka.group_id
        wait_until(lambda: committed(kafka.bootstrap, group) == ends or not d.alive, 120, "every offset committed")
        assert d.alive, d.log()
        samples = check_invariants(d, topic)
        rejected = {dict(labels)["reason"]: v for (name, labels), v in samples.items()
                    if name == "rnnstream_events_rejected_total" and v}
        assert rejected == {"out_of_range": 3, "future": 1}
        assert samples[("rnnstream_entities_evicted_total", (("detector", "hosts"),))] == 0
        assert samples[("rnnstream_entities", (("detector", "hosts"),))] == n_entities
        letters = read_all(kafka.bootstrap, f"{topic}.dlq", idle_s=1.5)
        assert sorted((dict(r.headers)["rnnstream.reason"], int(dict(r.headers)["rnnstream.source.offset"]))
                      for r in letters) == \
            [(b"future", future), (b"out_of_range", 5), (b"out_of_range", 305), (b"out_of_range", 407)]
        assert d.get("/healthz")[0] == 200 and d.get("/readyz")[0] == 200
        code, took = d.terminate()
        assert code == 0 and took < 10
    finally:
        d.kill()
    assert check_state(cfg_path, topic, 1) == n_entities
    assert T0 < time.time()
