"""The embedded broker is a real Kafka: round trip, consumer-group resume, clean stop, clear errors."""

from __future__ import annotations

import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import kafka.record.util as record_util
import pytest
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.serializer import DefaultSerializer, JsonSerializer

from rnnstream.embedded import EmbeddedKafka, ensure_jars
from rnnstream.embedded.broker import _cluster_id
from rnnstream.errors import BrokerError

N = 1000


def _produce(bootstrap: str, topic: str, values: list[dict]) -> None:
    producer = KafkaProducer(bootstrap_servers=bootstrap, value_serializer=JsonSerializer(),
                             key_serializer=DefaultSerializer(), linger_ms=5)
    try:
        for v in values:
            producer.send(topic, key=f"e{v['i'] % 17}", value=v)
        producer.flush(timeout=30)
    finally:
        producer.close(timeout=10)


def _consumer(bootstrap: str, topic: str, group: str | None, **kw) -> KafkaConsumer:
    return KafkaConsumer(topic, bootstrap_servers=bootstrap, group_id=group, auto_offset_reset="earliest",
                         enable_auto_commit=False,
                         value_deserializer=JsonSerializer(), **kw)


def _drain(consumer: KafkaConsumer, expected: int, deadline_s: float = 30.0) -> list:
    """Poll until ``expected`` records arrived (or the deadline), then once more briefly to catch extras."""
    got: list = []
    deadline = time.monotonic() + deadline_s
    while len(got) < expected and time.monotonic() < deadline:
        for records in consumer.poll(timeout_ms=1000).values():
            got += records
    for records in consumer.poll(timeout_ms=300).values():
        got += records
    return got


def test_crc32c_uses_the_compiled_package():
    assert record_util.crc32c_c is not None
    assert record_util.calc_crc32c(b"123456789") == 0xE3069283  # the CRC-32C check value


@pytest.mark.kafka
def test_round_trip_of_1000_json_messages_over_3_partitions(kafka):
    topic = kafka.new_topic("roundtrip", partitions=3)
    sent = [{"i": i, "value": i * 0.5, "entity": f"e{i % 17}"} for i in range(N)]
    _produce(kafka.bootstrap, topic, sent)

    consumer = _consumer(kafka.bootstrap, topic, group=None)
    try:
        got = [(m.partition, m.key.decode(), m.value) for m in _drain(consumer, N)]
    finally:
        consumer.close()
    assert len(got) == N
    assert sorted((v for _, _, v in got), key=lambda v: v["i"]) == sent
    assert {p for p, _, _ in got} == {0, 1, 2}
    # one key, one partition; within a partition, the order they were produced in
    assert all(len({p for p, k, _ in got if k == key}) == 1 for key in {k for _, k, _ in got})
    for part in range(3):
        order = [v["i"] for p, _, v in got if p == part]
        assert order == sorted(order)


@pytest.mark.kafka
def test_second_consumer_resumes_at_committed_offsets(kafka):
    topic = kafka.new_topic("resume", partitions=3)
    group = f"g-{topic}"
    _produce(kafka.bootstrap, topic, [{"i": i} for i in range(300)])

    first = _consumer(kafka.bootstrap, topic, group, max_poll_records=50)
    seen_first: list[int] = []
    per_partition = {0: 0, 1: 0, 2: 0}
    deadline = time.monotonic() + 30
    try:
        while len(seen_first) < 120 and time.monotonic() < deadline:
            for tp, records in first.poll(timeout_ms=1000).items():
                seen_first += [r.value["i"] for r in records]
                per_partition[tp.partition] += len(records)
        first.commit()
        committed = {p: first.committed(TopicPartition(topic, p)) or 0 for p in range(3)}
    finally:
        first.close()
    assert 120 <= len(seen_first) < 300, "the first consumer read too little (or everything)"
    assert committed == per_partition

    second = _consumer(kafka.bootstrap, topic, group)
    try:
        seen_second = [m.value["i"] for m in _drain(second, 300 - len(seen_first))]
        positions = {p: second.position(TopicPartition(topic, p)) for p in range(3)}
    finally:
        second.close()
    assert len(seen_second) == 300 - len(seen_first)
    assert sorted(seen_first + seen_second) == list(range(300))
    assert sum(positions.values()) == 300


@pytest.mark.kafka
def test_create_topics_specs_and_duplicates(kafka):
    a, b = f"spec-a-{_cluster_id()[:6]}", f"spec-b-{_cluster_id()[:6]}"
    assert kafka.create_topics([a, (b, 2)]) == [a, b]
    described = {t["name"]: len(t["partitions"]) for t in kafka.admin_client().describe_topics([a, b])}
    assert described == {a: 1, b: 2}
    assert kafka.create_topics(a, exist_ok=True) == []
    with pytest.raises(BrokerError, match=a):
        kafka.create_topics(a)


@pytest.mark.kafka
def test_stop_removes_directory_and_frees_port():
    broker = EmbeddedKafka(startup_timeout_s=60)
    broker.start()
    directory, port = broker.directory, broker.port
    assert (directory / "broker.log").is_file() and broker.running
    broker.stop()
    assert not directory.exists()
    assert not broker.running
    with pytest.raises(BrokerError, match="not running"):
        broker.bootstrap
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", port))  # raises if the JVM still held it
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    broker.stop()  # idempotent


def test_missing_maven_names_what_to_install(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))  # no mvn, no java; and no lock file for this version
    with pytest.raises(BrokerError, match=r"Maven \('mvn'\) is not on PATH.*apt-get install"):
        ensure_jars("4.0.0", cache=tmp_path / "cache")


def _fake_repo(tmp_path, jars: dict[str, bytes]):
    """A Maven-layout repository served on loopback, and a lock file pinning ``jars``."""
    import hashlib
    import http.server
    import threading
    from functools import partial

    lines = []
    for coords, data in jars.items():
        group, artifact, ver = coords.split(":")
        d = tmp_path / "repo" / group.replace(".", "/") / artifact / ver
        d.mkdir(parents=True)
        (d / f"{artifact}-{ver}.jar").write_bytes(data)
        lines.append(f"{coords} {hashlib.sha256(data).hexdigest()}")
    lock = tmp_path / "kafka-9.9.9.lock"
    lock.write_text("# test lock\n" + "\n".join(lines) + "\n")
    handler = partial(http.server.SimpleHTTPRequestHandler, directory=str(tmp_path / "repo"))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return lock, f"http://127.0.0.1:{server.server_address[1]}", server


def test_without_maven_locked_jars_are_downloaded_and_checked(tmp_path, monkeypatch):
    from rnnstream.embedded import jars as jars_mod

    lock, url, server = _fake_repo(tmp_path, {"org.apache.kafka:kafka_2.13:9.9.9": b"broker",
                                              "org.example:dep:1.0": b"dependency"})
    try:
        monkeypatch.setattr(jars_mod, "_lock_file", lambda version: lock)
        monkeypatch.setenv("RNNSTREAM_MAVEN_REPO", url)
        monkeypatch.setenv("PATH", str(tmp_path / "empty"))  # no mvn
        got = ensure_jars("9.9.9", cache=tmp_path / "cache")
        assert sorted(p.name for p in got) == ["dep-1.0.jar", "kafka_2.13-9.9.9.jar"]
        assert {p.name: p.read_bytes() for p in got}["kafka_2.13-9.9.9.jar"] == b"broker"
        # a tampered jar is refused and nothing is cached
        (tmp_path / "repo/org/example/dep/1.0/dep-1.0.jar").write_bytes(b"tampered")
        with pytest.raises(BrokerError, match="SHA-256"):
            ensure_jars("9.9.9", cache=tmp_path / "cache2")
        assert not (tmp_path / "cache2" / "kafka-9.9.9" / "classpath.txt").exists()
    finally:
        server.shutdown()


def test_shipped_lock_matches_what_maven_resolved():
    """The lock file used without Maven pins exactly the class path Maven resolves (cached by the fixture)."""
    import hashlib

    from rnnstream.embedded.jars import KAFKA_VERSION, _lock_file, read_lock

    jars = {p.name: p for p in ensure_jars()}
    pinned = {f"{a}-{v}.jar": sha for _, a, v, sha in read_lock(_lock_file(KAFKA_VERSION))}
    assert set(pinned) == set(jars)
    assert all(hashlib.sha256(jars[n].read_bytes()).hexdigest() == sha for n, sha in pinned.items())


def test_cached_jars_do_not_need_maven(tmp_path, monkeypatch):
    jars = ensure_jars()  # fills the real cache if needed
    monkeypatch.setenv("PATH", str(tmp_path))
    again = ensure_jars()
    assert again == jars and any(p.name.startswith("kafka_2.13-") for p in again)


def test_failed_resolution_reports_maven_output_and_caches_nothing(tmp_path, monkeypatch):
    fake = tmp_path / "bin" / "mvn"  # stands in for Maven failing to resolve (no network needed)
    fake.parent.mkdir()
    fake.write_text("#!/bin/sh\necho '[ERROR] Could not find artifact org.apache.kafka:kafka_2.13:jar:9.9.9'\nexit 1\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{fake.parent}:/usr/bin:/bin")
    with pytest.raises(BrokerError, match=r"(?s)kafka_2.13:9.9.9 .*exit 1.*Could not find artifact"):
        ensure_jars("9.9.9", cache=tmp_path / "cache")
    assert not (tmp_path / "cache" / "kafka-9.9.9" / "classpath.txt").exists()


def test_foreground_runner_fetch_only():
    out = subprocess.run([sys.executable, "-m", "rnnstream.embedded.kafka", "--fetch-only"],
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr
    assert "jars in" in out.stdout and "RuntimeWarning" not in out.stderr


@pytest.mark.kafka
def test_foreground_runner_serves_until_sigterm_then_cleans_up():
    proc = subprocess.Popen([sys.executable, "-m", "rnnstream.embedded.kafka", "--topic", "fg:2"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()  # the runner prints once, when ready (or exits on failure)
        match = re.search(r"ready at (127\.0\.0\.1:\d+) .*\(log: (\S+)/broker\.log\)", line)
        assert match, f"unexpected first line {line!r}; stderr: {proc.stderr.read() if proc.poll() is not None else ''}"
        bootstrap, directory = match.group(1), Path(match.group(2))
        admin = KafkaAdminClient(bootstrap_servers=bootstrap)
        try:
            assert len(admin.describe_topics(["fg"])[0]["partitions"]) == 2
        finally:
            admin.close()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(60) == 0
        assert not directory.exists()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_bad_setting_fails_start_with_the_reason_and_cleans_up():
    broker = EmbeddedKafka(extra_properties={"log.segment.bytes": "12"})
    with pytest.raises(BrokerError, match=r"Invalid value 12 for configuration log.segment.bytes"):
        broker.start()
    assert broker.directory is None and not broker.running
