"""The periodic checkpoint is written in the background: the loop goes on scoring while the files are
written, and the offsets are committed only once they are durable."""

from __future__ import annotations

import threading

import pytest

from rnnstream.daemon.checkpoint import CheckpointStore

from .runner_helpers import ThreadedRunner, committed, end_offsets, produce, synth_events, unique, wait_until, write_config

pytestmark = [pytest.mark.kafka, pytest.mark.timeout(300)]


def test_offsets_are_committed_after_the_background_write_and_the_loop_goes_on_meanwhile(kafka, tmp_path, monkeypatch):
    topic = unique("bgckpt")
    kafka.create_topics([(topic, 1), (f"{topic}.anomalies", 1), (f"{topic}.dlq", 1)])
    events = synth_events(n_entities=4, n_steps=600)
    produce(kafka.bootstrap, topic, events[:600])
    release, writing = threading.Event(), threading.Event()
    real_write = CheckpointStore.write
    background_writes = []

    # The third background write is held, not the first: kafka-python may rejoin the group right
    # after its first assignment, and a revocation completes the pending checkpoint, which a write
    # held from the start would block for the whole test.
    def slow_write(self, prepared):
        if threading.current_thread().name.startswith("rnnstream-checkpoint"):
            background_writes.append(prepared)
            if len(background_writes) == 3:
                writing.set()
                assert release.wait(120)
        return real_write(self, prepared)
    monkeypatch.setattr(CheckpointStore, "write", slow_write)

    path = write_config(tmp_path, kafka.bootstrap, topic, interval=0.5, max_poll=100)
    tr = ThreadedRunner(path)
    try:
        wait_until(writing.is_set, 60, "a background checkpoint write")
        group = tr.config.kafka.group_id
        held = committed(kafka.bootstrap, group)              # what the two earlier writes committed
        before = tr.sample("rnnstream_events_processed_total", {"detector": "hosts"})
        produce(kafka.bootstrap, topic, events[600:])
        wait_until(lambda: tr.sample("rnnstream_events_processed_total", {"detector": "hosts"}) > before, 60,
                   "the loop to score while the checkpoint is written")
        assert committed(kafka.bootstrap, group) == held     # still waiting for the write
        release.set()
        ends = end_offsets(kafka.bootstrap, topic, 1)
        wait_until(lambda: committed(kafka.bootstrap, group) == ends, 60, "the commits to catch up")
        assert tr.stop() == 0
    finally:
        release.set()
        if tr.thread.is_alive():
            tr.stop()
    store = CheckpointStore(tr.config.state_dir)
    (gen, newest), *_ = store.generations("hosts", (topic, 0))
    assert gen >= 2
