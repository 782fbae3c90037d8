"""exactly_once against the real broker: replicas killed with SIGKILL, restarted, scaled down and up; the
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
from rnnstream.daemon import scoresbatch

from .runner_helpers import (LAUNCH, assert_same_states, committed, end_offsets, group_members, read_all,
                             run_to_end, synth_events, unique, unit_states, wait_until, write_config)
from .test_runner_changelog import changelog_states

pytestmark = [pytest.mark.kafka, pytest.mark.slow, pytest.mark.timeout(600)]
ROOT = Path(__file__).resolve().parents[2]


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


def wait_for(cond, timeout: float) -> bool:
    """Whether ``cond()`` became true within ``timeout`` seconds."""
    try:
        wait_until(cond, timeout, "")
        return True
    except AssertionError:
        return False


def healthy(log_path: Path, since: int) -> bool:
    """GET /healthz of the replica logging to ``log_path`` (its port from the log after byte ``since``)."""
    import re
    import urllib.error
    import urllib.request

    ports = re.findall(rb'"msg":"metrics endpoint up","port":(\d+)', log_path.read_bytes()[since:])
    if not ports:
        return False
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{int(ports[-1])}/healthz", timeout=5) as r:
            return r.status == 200
    except (urllib.error.URLError, OSError):
        return False


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


@pytest.mark.chaos
@pytest.mark.timeout(900)
@pytest.mark.parametrize("guarantee", ["exactly_once", "at_least_once"])
def test_replicas_killed_restarted_scaled_and_replaced_equal_one_uninterrupted_run(kafka, tmp_path, guarantee):
    """The issue's test: three replicas, each with its own empty state_dir, on a 6-partition topic; one
    killed with SIGKILL at 10 random points while the stream is fed (restarted each time, once with its
    disk lost); scaled from 3 to 1 and back to 3; then all stopped, every disk wiped, and one new replica
    processes the end of the stream from Kafka alone. The final state equals one uninterrupted run;
    read_committed consumers see its anomalies exactly once (or at least once, same event_id)."""
    partitions, n_replicas, kills_wanted = 6, 3, 10
    topic = unique(f"eos-{guarantee[:3]}")
    kafka.create_topics([(topic, partitions), (f"{topic}.anomalies", 1), (f"{topic}.dlq", 1),
                         (f"{topic}.ref-anomalies", 1)])
    events = synth_events(n_entities=12, n_steps=450, seed=21)
    main, last = events[:4800], events[4800:]
    group = unique("g")
    configs = []
    for i in range(n_replicas):
        extra = (f"processing: {{guarantee: {guarantee}, changelog: true, transactional_id: '{{group_id}}.r{i}'}}")
        configs.append(write_config(tmp_path, kafka.bootstrap, topic, group=group, state_dir=tmp_path / f"state{i}",
                                    interval=0.3, max_poll=100, name=f"r{i}.yaml", extra=extra))
        configs[-1].write_text(configs[-1].read_text().replace("level: WARNING", "level: INFO"))   # for failures
    logs = [tmp_path / f"r{i}.log" for i in range(n_replicas)]
    rng = random.Random(5)
    procs: list = [None] * n_replicas
    launched = [0] * n_replicas            # each log's length when its replica was last started

    def launch(i: int) -> None:
        launched[i] = logs[i].stat().st_size if logs[i].exists() else 0
        procs[i] = _start(configs[i], logs[i])

    def stop(i: int) -> None:              # once it has joined the group (a stop while it starts up may
        wait_until(lambda: b'"msg":"partitions assigned"' in logs[i].read_bytes()[launched[i]:], 120,
                   f"replica {i} to join the group")   # exceed the shutdown budget on a loaded machine)
        procs[i].send_signal(signal.SIGTERM)
        assert procs[i].wait(30) == 0, logs[i].read_text()[-3000:]

    for i in range(n_replicas):
        launch(i)
    try:
        feeder = threading.Thread(target=lambda: [produce_spread(kafka.bootstrap, topic, main[i:i + 300], partitions)
                                                  or time.sleep(2.0) for i in range(0, len(main), 300)])
        feeder.start()
        mid_stream = 0
        for kill in range(kills_wanted):          # SIGKILL a random replica at random points; restart it
            time.sleep(rng.uniform(1.0, 3.0))
            i = rng.randrange(n_replicas)
            mid_stream += committed(kafka.bootstrap, group) != end_offsets(kafka.bootstrap, topic, partitions)
            procs[i].kill()
            procs[i].wait(10)
            if kill == 1:                          # once on a machine that lost its disk
                shutil.rmtree(tmp_path / f"state{i}", ignore_errors=True)
            launch(i)
        assert mid_stream >= kills_wanted // 2, f"only {mid_stream} kills interrupted the processing"
        for i in (1, 2):                           # scale down to one replica, then back to three
            stop(i)
        time.sleep(rng.uniform(1.0, 3.0))
        for i in (1, 2):
            launch(i)
        feeder.join(180)
        ends = end_offsets(kafka.bootstrap, topic, partitions)
        assert sum(ends.values()) == len(main)
        wait_until(lambda: committed(kafka.bootstrap, group) == ends, 240, "the replicas to finish the stream")
        for i in range(n_replicas):
            stop(i)
        for i in range(n_replicas):               # every machine gone; a new one with an empty disk
            shutil.rmtree(tmp_path / f"state{i}", ignore_errors=True)
        produce_spread(kafka.bootstrap, topic, last, partitions)
        wait_until(lambda: group_members(kafka.bootstrap, group) == 0, 60, "the others to leave the group")
        configs[0].write_text(configs[0].read_text() + "daemon: {progress_stall_seconds: 20}\n")
        launch(0)
        ends = end_offsets(kafka.bootstrap, topic, partitions)
        liveness_restarts = 0
        while not wait_for(lambda: committed(kafka.bootstrap, group) == ends, 40):
            # Seen here: kafka-python rejoins right after the first assignment and the member then
            # waits without one (runner.REBALANCE_POLL_MS). /healthz reports it; Kubernetes'
            # liveness probe restarts such a pod, and so does this test, at most twice.
            assert not healthy(logs[0], launched[0]), "the new replica is stuck while /healthz says it is fine"
            liveness_restarts += 1
            assert liveness_restarts <= 2, logs[0].read_text()[-3000:]
            procs[0].kill()
            procs[0].wait(10)
            launch(0)
        print(f"the new replica was restarted {liveness_restarts} time(s) for a failing /healthz")
        stop(0)
    finally:
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGUSR1)
                time.sleep(0.5)
                p.kill()
                p.wait(10)

    want, want_anomalies = _reference(tmp_path, kafka.bootstrap, topic, partitions)
    assert sum(want_anomalies.values()) > 0
    assert_same_states(changelog_states(configs[0], topic, partitions, tmp_path), want)   # Kafka's
    assert_same_states(unit_states(configs[0], topic, partitions), want)    # the new replica's cache
    got = _ids(read_committed(kafka.bootstrap, f"{topic}.anomalies"))
    if guarantee == "exactly_once":
        assert got == want_anomalies               # none missing, none twice
    else:
        assert set(got) == set(want_anomalies)     # none missing; duplicates only of the same event_id
        assert all(n >= 1 for n in got.values())


def _scores(records: list) -> list[tuple[int, str, int]]:
    """(source partition, entity, offset) of every score in ``records`` in the order read, per-record
    or batched (``scoresbatch``)."""
    out = []
    for r in records:
        if r.value.startswith(b'{"schema":'):    # batched (per-record values start with the event_id)
            v = scoresbatch.decode(r.value)
            assert v["version"] == scoresbatch.VERSION and v["count"] == len(v["offset"]) == len(v["entity"])
            out += [(v["source"]["partition"], e, o) for e, o in zip(v["entity"], v["offset"].tolist())]
        else:
            v = orjson.loads(r.value)
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
