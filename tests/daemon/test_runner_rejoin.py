"""A consumer that kafka-python leaves subscribed without partitions: the daemon rejoins by itself
(Runner._check_stranded), and a member that is idle by the group's choice is left alone."""

from __future__ import annotations

import threading
import time

import pytest
from kafka import KafkaConsumer
from prometheus_client import CollectorRegistry

from rnnstream.config import load_config
from rnnstream.daemon import runner as runner_mod
from rnnstream.daemon.runner import Runner

from .runner_helpers import committed, end_offsets, produce, synth_events, unique, wait_until, write_config

pytestmark = [pytest.mark.kafka, pytest.mark.timeout(300)]


class StuckConsumer(KafkaConsumer):
    """A member whose join never completes. kafka-python's own way to get there (runner.REBALANCE_POLL_MS:
    a join that completes while the caller is outside ``poll`` is taken for a failed one, and a new
    JoinGroup sent) depends on timing and does not always strand a consumer; this one finds and keeps
    its group coordinator (so the daemon sees Kafka reachable) but never joins: it stays subscribed,
    and ``poll`` returns nothing."""

    def poll(self, timeout_ms=0, max_records=None, update_offsets=True):
        self._coordinator.ensure_coordinator_ready(timeout_ms=min(timeout_ms, 500))
        time.sleep(0.05)
        return {}


def _start(cfg, factory=None):
    runner = Runner(cfg, registry=CollectorRegistry(), http=False, consumer_factory=factory)
    thread = threading.Thread(target=runner.run, daemon=True)
    thread.start()
    return runner, thread


def _stop(runner, thread):
    runner.stop()
    thread.join(30)
    assert not thread.is_alive(), "runner did not stop"


def test_a_consumer_left_without_partitions_rejoins_and_processes_the_stream(kafka, tmp_path):
    topic = unique("rejoin")
    kafka.create_topics([(topic, 2), (f"{topic}.anomalies", 1), (f"{topic}.dlq", 1)])
    events = synth_events(n_entities=4, n_steps=500, seed=2)
    produce(kafka.bootstrap, topic, events)
    cfg = load_config(write_config(tmp_path, kafka.bootstrap, topic))
    made = []

    def factory(config, topics, **kw):   # the first consumer strands; the one the daemon makes next is sound
        kind = StuckConsumer if not made else KafkaConsumer
        extra = {"partition_assignment_strategy": kw["assignors"]} if kw.get("assignors") else {}
        made.append(kind(enable_auto_commit=False, **config.kafka.consumer_kwargs(), **extra))
        return made[-1]

    started = time.monotonic()
    runner, thread = _start(cfg, factory)
    try:
        ends = end_offsets(kafka.bootstrap, topic, 2)
        wait_until(lambda: committed(kafka.bootstrap, cfg.kafka.group_id) == ends, 90, "the stream to be processed")
        assert runner.registry.get_sample_value("rnnstream_consumer_rejoins_total") == 1
        assert [type(c) for c in made] == [StuckConsumer, KafkaConsumer]
        assert time.monotonic() - started >= 6.0                  # not before a session timeout (6 s)
        assert len(runner.units) == 2
    finally:
        _stop(runner, thread)


def test_a_member_idle_by_the_groups_assignment_does_not_rejoin(kafka, tmp_path):
    topic = unique("idle")
    kafka.create_topics([(topic, 1), (f"{topic}.anomalies", 1), (f"{topic}.dlq", 1)])
    path = write_config(tmp_path, kafka.bootstrap, topic)
    a, ta = _start(load_config(path))
    b = tb = None
    try:
        wait_until(lambda: len(a.units) == 1, 60, "the first member to own the partition")
        b, tb = _start(load_config(path))                  # one partition, two members: b is idle
        wait_until(lambda: len(a.units) + len(b.units) == 1 and b._rebalancing_since is None
                   and a._rebalancing_since is None, 60, "the group to settle")
        time.sleep(15)                                     # two session timeouts and more
        assert b.registry.get_sample_value("rnnstream_consumer_rejoins_total") == 0
        assert a.registry.get_sample_value("rnnstream_consumer_rejoins_total") == 0
        assert len(a.units) + len(b.units) == 1
    finally:
        _stop(a, ta)
        if b is not None:
            _stop(b, tb)


def test_stranded_reason_reads_the_groups_view():
    """The decision itself, on describe_groups answers of each kind (no broker)."""
    from types import SimpleNamespace

    cluster = SimpleNamespace(partitions_for_topic=lambda t: {0, 1})
    consumer = SimpleNamespace(_client=SimpleNamespace(cluster=cluster),
                               _coordinator=SimpleNamespace(_generation=SimpleNamespace(member_id="me")))

    def view(state, members):
        class Admin:
            def describe_groups(self, groups):
                return {"g": {"group_state": state, "members": [
                    {"member_id": m, "member_assignment": {"assigned_partitions": [{"topic": "t", "partitions": ps}]}}
                    for m, ps in members.items()]}}

            def close(self):
                pass
        return runner_mod.stranded_reason(consumer, Admin, "g", ["t"])

    assert view("Stable", {"me": [], "other": [0, 1]}) is None                 # idle by the group's choice
    assert "assigned to no member" in view("Stable", {"me": [], "other": [0]})
    assert "does not hold" in view("Stable", {"me": [1], "other": [0]})
    assert "does not know" in view("Stable", {"other": [0, 1]})
    assert "PreparingRebalance" in view("PreparingRebalance", {"me": [], "other": [0, 1]})
