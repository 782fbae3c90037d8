"""Standby replicas against the real broker: a replica killed with SIGKILL, the other takes its
partitions over from its warm copies, reading only the changelog's tail."""

from __future__ import annotations

from kafka import TopicPartition
import pytest

from rnnstream.config import load_config
from rnnstream.daemon.changelog import Reader, RowCodec, changelog_topic, restore_consumer
from rnnstream.detector import Detector

from .runner_helpers import (ThreadedRunner, assert_same_states, committed, end_offsets, synth_events, unique,
                             wait_until, write_config)
from .test_runner_changelog import changelog_states
from .test_runner_eos import _reference, _start, produce_spread, read_committed, _ids

pytestmark = [pytest.mark.kafka, pytest.mark.slow, pytest.mark.timeout(420)]
STANDBY = "processing: {changelog: true, standby_replicas: 1}"


def many_entities(events: list[dict], k: int) -> list[dict]:
    """Each host's series dealt round-robin to ``k`` hosts (8 become 8 k): many entities, each with a
    short series, so that a restore from scratch reads many records."""
    out, seen = [], {}
    for e in events:
        i = seen[e["host"]] = seen.get(e["host"], -1) + 1
        out.append({**e, "host": f"host-{int(e['host'].rsplit('-', 1)[1]) * k + i % k:03d}"})
    return out


def test_a_standby_takes_a_killed_replicas_partitions_over_reading_only_the_changelog_tail(kafka, tmp_path):
    partitions = 4
    topic = unique("stb")
    kafka.create_topics([(topic, partitions), (f"{topic}.anomalies", 1), (f"{topic}.dlq", 1),
                         (f"{topic}.ref-anomalies", 1)])
    events = many_entities(synth_events(n_entities=8, n_steps=450, seed=11), 16)
    half = len(events) // 2
    group = unique("g")
    cfg_a, cfg_b = (write_config(tmp_path, kafka.bootstrap, topic, group=group, state_dir=tmp_path / f"state-{n}",
                                 interval=0.3, max_poll=100, name=f"{n}.yaml", extra=STANDBY) for n in "ab")
    cl_topic = changelog_topic(load_config(cfg_a), "hosts")
    produce_spread(kafka.bootstrap, topic, events[:half], partitions)
    victim = _start(cfg_b, tmp_path / "b.log")
    survivor = None
    try:
        survivor = ThreadedRunner(cfg_a)
        runner = survivor.runner
        ends = end_offsets(kafka.bootstrap, topic, partitions)
        wait_until(lambda: committed(kafka.bootstrap, group) == ends, 180, "the two replicas to process the first half")

        def victims() -> list[int]:
            mine = {tp.partition for tp in runner.units}
            return sorted(set(range(partitions)) - mine) if len(mine) == partitions // 2 else []

        def copies_current() -> bool:   # the survivor's copies of the victim's partitions are read to the end
            theirs = victims()
            if not theirs:
                return False
            have = runner.standbys.tailer.positions()
            cl_ends = end_offsets(kafka.bootstrap, cl_topic, partitions)
            return all((cl_topic, p) in have and cl_ends[p] - have[(cl_topic, p)] <= 2 for p in theirs)
        wait_until(copies_current, 120, "the survivor's standby copies to catch up")
        theirs = victims()
        assert runner.standbys.tailer.warm() == {(topic, p) for p in theirs}
        restored_before = survivor.sample("rnnstream_restore_bytes_total", {"detector": "hosts"})
        victim.kill()                                     # SIGKILL: no final commit, no leaving the group
        victim.wait(10)
        reader = Reader(lambda: restore_consumer(load_config(cfg_a)))
        try:                                              # what a restore from scratch reads now
            from_scratch = sum(reader.read(cl_topic, p, topic).bytes for p in theirs)
        finally:
            reader.close()

        produce_spread(kafka.bootstrap, topic, events[half:], partitions)
        ends = end_offsets(kafka.bootstrap, topic, partitions)
        wait_until(lambda: committed(kafka.bootstrap, group) == ends, 180, "the survivor to process the rest")
        assert {tp.partition for tp in runner.units} == set(range(partitions))
        takeovers = survivor.sample("rnnstream_standby_takeovers_total", {"detector": "hosts"})
        tail = survivor.sample("rnnstream_restore_bytes_total", {"detector": "hosts"}) - restored_before
        assert survivor.stop() == 0
        survivor = None
    finally:
        if survivor is not None:
            survivor.stop()
        if victim.poll() is None:
            victim.kill()
            victim.wait(10)
    print(f"takeover read {tail:.0f} bytes of changelog records; from scratch: {from_scratch}")
    assert takeovers == len(theirs)
    det = Detector(load_config(cfg_a).detectors[0], background=False)
    row_bytes = RowCodec(det.state).row_bytes
    det.close()
    assert from_scratch >= 128 // partitions * len(theirs) * row_bytes   # at least a row per entity
    assert tail * 10 < from_scratch, f"the takeover read {tail} bytes, a restore from scratch {from_scratch}"

    want, want_anomalies = _reference(tmp_path, kafka.bootstrap, topic, partitions)
    assert_same_states(changelog_states(cfg_a, topic, partitions, tmp_path), want)
    got = _ids(read_committed(kafka.bootstrap, f"{topic}.anomalies"))
    assert set(got) == set(want_anomalies) and sum(want_anomalies.values()) > 0
