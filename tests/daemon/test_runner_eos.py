"""exactly_once against the real broker: replicas killed with SIGKILL, restarted, scaled down; the
final state equals one uninterrupted run and read_committed consumers see each anomaly once."""

from __future__ import annotations

import collections
import random
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import orjson
import pytest
from kafka import KafkaProducer

from rnnstream.config import load_config

from .runner_helpers import (assert_same_states, committed, end_offsets, read_all, run_to_end, synth_events,
                             unique, unit_states, wait_until, write_config)
from .test_runner_changelog import changelog_states

pytestmark = [pytest.mark.kafka, pytest.mark.slow, pytest.mark.timeout(600)]
ROOT = Path(__file__).resolve().parents[2]
LAUNCH = ("import faulthandler, signal, sys; faulthandler.register(signal.SIGUSR1); "   # stacks, if it hangs
          "from rnnstream.daemon.runner import main; sys.exit(main(sys.argv[1]))")


def read_committed(bootstrap: str, topic: str) -> list:
    """Every record a read_committed consumer sees on ``topic``."""
    return read_all(bootstrap, topic, timeout_s=60.0, isolation_level="read_committed")


def produce_spread(bootstrap: str, topic: str, values: list[dict], partitions: int) -> None:
    """Send ``values`` to partition (host number mod ``partitions``), so that every partition has entities
    (keyed by host, murmur2 leaves some of 6 partitions empty for host-00..host-11)."""
    producer = KafkaProducer(bootstrap_servers=bootstrap, linger_ms=5, acks="all")
    try:
        for v in values:
            producer.send(topic, key=v["host"].encode(), value=orjson.dumps(v),
                          partition=int(v["host"].rsplit("-", 1)[1]) % partitions)
        producer.flush(30)
    finally:
        producer.close()


def _ids(records: list) -> collections.Counter:
    return collections.Counter(orjson.loads(r.value)["event_id"] for r in records)


def _start(cfg_path: Path, log_path: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", LAUNCH, str(cfg_path)], cwd=ROOT,
                            stdout=open(log_path, "ab"), stderr=subprocess.STDOUT)


def _reference(tmp_path: Path, bootstrap: str, topic: str, partitions: int) -> tuple[dict, collections.Counter]:
    """One uninterrupted single-process run (file checkpoints, at least once, no failure): its states
    and the event ids of its anomalies (written to a topic of its own)."""
    ref_path = write_config(tmp_path, bootstrap, topic, state_dir=tmp_path / "ref", interval=5.0,
                            max_poll=500, name="ref.yaml")
    ref_path.write_text(ref_path.read_text().replace(f"{topic}.anomalies", f"{topic}.ref-anomalies"))
    run_to_end(ref_path, bootstrap, topic, partitions)
    anomalies = _ids(read_committed(bootstrap, f"{topic}.ref-anomalies"))
    return unit_states(ref_path, topic, partitions), anomalies


@pytest.mark.parametrize("guarantee", ["exactly_once", "at_least_once"])
def test_replicas_killed_restarted_and_scaled_down_equal_one_uninterrupted_run(kafka, tmp_path, guarantee):
    partitions, n_replicas = 6, 3
    topic = unique(f"eos-{guarantee[:3]}")
    kafka.create_topics([(topic, partitions), (f"{topic}.anomalies", 1), (f"{topic}.dlq", 1),
                         (f"{topic}.ref-anomalies", 1)])
    events = synth_events(n_entities=12, n_steps=450, seed=21)
    group = unique("g")
    configs = []
    for i in range(n_replicas):
        extra = (f"processing: {{guarantee: {guarantee}, changelog: true, transactional_id: '{{group_id}}.r{i}'}}")
        configs.append(write_config(tmp_path, kafka.bootstrap, topic, group=group, state_dir=tmp_path / f"state{i}",
                                    interval=0.3, max_poll=100, name=f"r{i}.yaml", extra=extra))
        configs[-1].write_text(configs[-1].read_text().replace("level: WARNING", "level: INFO"))   # for failures
    logs = [tmp_path / f"r{i}.log" for i in range(n_replicas)]
    rng = random.Random(5)
    procs = [_start(configs[i], logs[i]) for i in range(n_replicas)]
    try:
        feeder = threading.Thread(target=lambda: [produce_spread(kafka.bootstrap, topic, events[i:i + 300], partitions)
                                                  or time.sleep(0.4) for i in range(0, len(events), 300)])
        feeder.start()
        kills = mid_stream = 0
        for _ in range(4):                      # SIGKILL a random replica at random points; restart it
            time.sleep(rng.uniform(2.0, 5.0))
            i = rng.randrange(n_replicas)
            mid_stream += committed(kafka.bootstrap, group) != end_offsets(kafka.bootstrap, topic, partitions)
            procs[i].kill()
            procs[i].wait(10)
            kills += 1
            if kills == 2:                       # once on a machine that lost its disk
                shutil.rmtree(tmp_path / f"state{i}", ignore_errors=True)
            procs[i] = _start(configs[i], logs[i])
        feeder.join(120)
        assert mid_stream >= 2, "the kills did not interrupt the processing"
        time.sleep(rng.uniform(1.0, 3.0))
        for i in (1, 2):                         # scale down to one replica, mid-stream or after it
            procs[i].send_signal(signal.SIGTERM)
            assert procs[i].wait(20) == 0, logs[i].read_text()[-3000:]
        ends = end_offsets(kafka.bootstrap, topic, partitions)
        assert sum(ends.values()) == len(events)
        wait_until(lambda: committed(kafka.bootstrap, group) == ends, 180, "the last replica to finish")
        procs[0].send_signal(signal.SIGTERM)
        assert procs[0].wait(20) == 0, logs[0].read_text()[-3000:]
    finally:
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGUSR1)
                time.sleep(0.5)
                p.kill()
                p.wait(10)

    want, want_anomalies = _reference(tmp_path, kafka.bootstrap, topic, partitions)
    assert sum(want_anomalies.values()) > 0
    assert_same_states(changelog_states(configs[0], topic, partitions, tmp_path), want)
    got = _ids(read_committed(kafka.bootstrap, f"{topic}.anomalies"))
    if guarantee == "exactly_once":
        assert got == want_anomalies               # none missing, none twice
    else:
        assert set(got) == set(want_anomalies)     # none missing; duplicates only of the same event_id
        assert all(n >= 1 for n in got.values())


def _scores(records: list) -> list[tuple[int, str, int]]:
    """(source partition, entity, offset) of every score in ``records`` in the order read, per-record
    or batched (rnnstream.scores v1)."""
    out = []
    for r in records:
        v = orjson.loads(r.value)
        if v.get("schema") == "rnnstream.scores":
            assert v["version"] == 1 and v["count"] == len(v["offset"]) == len(v["entity"])
            out += [(v["source"]["partition"], e, o) for e, o in zip(v["entity"], v["offset"])]
        else:
            _, _, partition, offset = v["event_id"].rsplit(":", 3)
            out.append((int(partition), v["entity"], int(offset)))
    return out


@pytest.mark.parametrize("scores_format", ["record", "batch"])
def test_exactly_once_publishes_every_score_once_in_either_format(kafka, tmp_path, scores_format):
    from .runner_helpers import ThreadedRunner, produce

    partitions = 3
    topic = unique(f"eos-scores-{scores_format}")
    kafka.create_topics([(topic, partitions), (f"{topic}.anomalies", 1), (f"{topic}.dlq", 1), (f"{topic}.scores", 2)])
    events = synth_events(n_entities=9, n_steps=450, seed=4)
    produce(kafka.bootstrap, topic, events)
    extra = "processing: {guarantee: exactly_once, changelog: true, transactional_id: '{group_id}.scores'}"
    path = write_config(tmp_path, kafka.bootstrap, topic, interval=0.3, max_poll=150, extra=extra)
    path.write_text(path.read_text().replace(
        f"anomalies_topic: {topic}.anomalies",
        f"anomalies_topic: {topic}.anomalies\n      scores_topic: {topic}.scores\n      scores_format: {scores_format}"))
    tr = ThreadedRunner(path)
    ends = end_offsets(kafka.bootstrap, topic, partitions)
    wait_until(lambda: committed(kafka.bootstrap, tr.config.kafka.group_id) == ends, 120, "the group to reach the end")
    processed = tr.sample("rnnstream_events_processed_total", {"detector": "hosts"})
    assert tr.stop() == 0
    scores = _scores(read_committed(kafka.bootstrap, f"{topic}.scores"))
    assert processed > 0.9 * len(events)
    assert len(scores) == processed and len({(p, o) for p, _, o in scores}) == processed   # every event once
    # Order: a source partition's batches share a key (one output partition); records share the entity's.
    for group in {(p, e if scores_format == "record" else None) for p, e, _ in scores}:
        offsets = [o for p, e, o in scores if (p, e if scores_format == "record" else None) == group]
        assert offsets == sorted(offsets), group
