"""Joining the group at start-up: one generation, no rebalance right after the first assignment.

kafka-python 3.0.12's group leader rejoins when the metadata snapshot it assigned with differs from the
next one; with the topics' metadata fetched before ``subscribe`` that snapshot was empty and every
start began a second generation right after its first assignment (Runner._subscribe)."""

from __future__ import annotations

import threading
import time

import pytest
from prometheus_client import CollectorRegistry

from rnnstream.config import load_config
from rnnstream.daemon.runner import Runner

from .runner_helpers import produce, synth_events, unique, wait_until, write_config

pytestmark = [pytest.mark.kafka, pytest.mark.timeout(300)]

STARTS = 4
SETTLE_S = 1.5   # kept running after the stream is handled, before the stop


def _run_once(cfg, total: int) -> tuple[float, list[str]]:
    """Start a daemon, wait until it has handled ``total`` records, let it run ``SETTLE_S`` more, stop
    it: (seconds from subscribing until the records were handled, the rebalance callbacks it saw
    before the stop, in order)."""
    runner = Runner(cfg, registry=CollectorRegistry(), http=False)
    seen: list[str] = []
    for name, what in (("_on_assigned", "assigned"), ("_on_revoked", "revoked")):
        method = getattr(runner, name)

        def traced(tps, _method=method, _what=what):
            if tps:
                seen.append(_what)
            return _method(tps)
        setattr(runner, name, traced)
    thread = threading.Thread(target=runner.run, daemon=True)
    thread.start()
    try:
        wait_until(runner.started.is_set, 60, "the runner to subscribe", every=0.005)
        started = time.monotonic()

        def handled() -> int:
            units = list(runner.units.values()) + list(runner._parked.values())
            return sum(u.totals.processed + u.totals.rejected for u in units)
        wait_until(lambda: handled() >= total, 60, f"{total} records handled", every=0.005)
        took = time.monotonic() - started
        time.sleep(SETTLE_S)   # the leader's next metadata response (the old rejoin) comes within this
        before_stop = list(seen)
    finally:
        runner.stop()
        thread.join(30)
    assert not thread.is_alive(), "runner did not stop"
    return took, before_stop


def test_each_start_joins_in_one_generation_and_is_never_revoked(kafka, tmp_path):
    topic = unique("join")
    kafka.create_topics([(topic, 2), (f"{topic}.anomalies", 1), (f"{topic}.dlq", 1)])
    events = synth_events(n_entities=4, n_steps=500, seed=5)
    produce(kafka.bootstrap, topic, events)
    session_s = load_config(write_config(tmp_path, kafka.bootstrap, topic)).kafka.session_timeout_ms / 1000
    for i in range(STARTS):   # each start a fresh group and state, as a first start in production
        run_dir = tmp_path / f"run{i}"
        run_dir.mkdir()
        cfg = load_config(write_config(run_dir, kafka.bootstrap, topic))
        took, seen = _run_once(cfg, len(events))
        assert seen == ["assigned"], f"start {i}: rebalance callbacks before the stop {seen}"
        assert took < session_s / 2, f"start {i}: {took:.1f} s to handle the stream (session timeout {session_s} s)"
