"""Two daemons in one group sharing state_dir: partitions move with their state, nothing lost or doubled."""

from __future__ import annotations

import pytest

from .runner_helpers import (ThreadedRunner, assert_same_states, committed, end_offsets, produce,
                             run_to_end, synth_events, unique, unit_states, wait_until, write_config)

pytestmark = [pytest.mark.kafka, pytest.mark.timeout(300)]


def test_partitions_move_between_daemons_with_their_state(kafka, tmp_path):
    topic = unique("rebal")
    kafka.create_topics([(topic, 2), (f"{topic}.anomalies", 1), (f"{topic}.dlq", 1)])
    events = synth_events(n_entities=8, n_steps=600, seed=21)
    phases = [events[:1600], events[1600:3200], events[3200:]]
    cfg_path = write_config(tmp_path, kafka.bootstrap, topic, state_dir=tmp_path / "state", interval=0.5)
    group = None

    def produce_and_wait(values):
        produce(kafka.bootstrap, topic, values)
        ends = end_offsets(kafka.bootstrap, topic, 2)
        wait_until(lambda: committed(kafka.bootstrap, group) == ends, 120, f"group to reach {ends}")

    a = ThreadedRunner(cfg_path, instance_id="a")
    group = a.config.kafka.group_id
    b = None
    try:
        produce_and_wait(phases[0])
        assert len(a.runner.units) == 2
        b = ThreadedRunner(cfg_path, instance_id="b")
        wait_until(lambda: len(a.runner.units) == 1 and len(b.runner.units) == 1, 60, "a split of the partitions")
        produce_and_wait(phases[1])
        assert a.stop() == 0
        wait_until(lambda: len(b.runner.units) == 2, 60, "b to take over both partitions")
        produce_and_wait(phases[2])
        assert b.stop() == 0
    finally:
        for r in (a, b):
            if r is not None and r.thread.is_alive():
                r.stop()

    def processed(r):
        return r.sample("rnnstream_events_processed_total", {"detector": "hosts"})
    assert processed(b) > 0 and processed(a) > 0
    assert processed(a) + processed(b) == len(events)      # nothing lost, nothing scored twice

    ref_path = write_config(tmp_path, kafka.bootstrap, topic, state_dir=tmp_path / "ref", interval=5.0,
                            max_poll=500, name="ref.yaml")
    run_to_end(ref_path, kafka.bootstrap, topic, 2)
    assert_same_states(unit_states(cfg_path, topic, 2), unit_states(ref_path, topic, 2))


def test_rebalance_completes_although_the_loop_works_between_polls(kafka, tmp_path):
    """kafka-python discards a JoinGroup/SyncGroup that completes while the caller is outside poll()
    and starts a new generation (see runner.REBALANCE_POLL_MS); with 0.3 s of work between polls
    shorter than a join round trip, the daemon never got its partitions. It must, within a few seconds."""
    import time

    from rnnstream.config import load_config
    from rnnstream.daemon.runner import Runner

    topic = unique("rebal-slow")
    kafka.create_topics([(topic, 3), (f"{topic}.anomalies", 1), (f"{topic}.dlq", 1)])
    cfg_path = write_config(tmp_path, kafka.bootstrap, topic, state_dir=tmp_path / "state")
    # Polls shorter than a JoinGroup/SyncGroup round trip: its completion falls between two polls.
    cfg_path.write_text(cfg_path.read_text().replace("poll_timeout_ms: 100", "poll_timeout_ms: 5"))
    runner = Runner(load_config(cfg_path), config_path=str(cfg_path), http=False)
    service = runner._service_outputs

    def slow_service():            # the loop's own work between two polls
        time.sleep(0.3)
        service()
    runner._service_outputs = slow_service
    import threading

    thread = threading.Thread(target=runner.run, daemon=True)
    thread.start()
    try:
        wait_until(lambda: len(runner.units) == 3, 30, "all 3 partitions assigned")
    finally:
        runner.stop()
        thread.join(30)
    assert not thread.is_alive()
