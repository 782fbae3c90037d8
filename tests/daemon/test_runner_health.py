"""Liveness against a real broker: /healthz and the systemd watchdog fail when the poll loop is stuck
or no rebalance completes, and recover when it moves again. /healthz used to answer 200 whatever."""

from __future__ import annotations

import socket
import threading
import time

import pytest

from .runner_helpers import produce, synth_events, unique, wait_until, write_config
from .test_runner_http import HttpRunner

pytestmark = [pytest.mark.kafka, pytest.mark.timeout(180)]

STALLS = "daemon:\n  loop_stall_seconds: 1.5\n  progress_stall_seconds: 3.0\n"


def _config(tmp_path, kafka, topic):
    path = write_config(tmp_path, kafka.bootstrap, topic)
    path.write_text(path.read_text() + STALLS)
    return path


class Notifications:
    """A $NOTIFY_SOCKET datagram socket that records what the daemon sends."""

    def __init__(self, path: str):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(path)
        self.sock.settimeout(0.2)
        self.got: list[tuple[float, str]] = []
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self) -> None:
        while not self._stop.is_set():
            try:
                self.got.append((time.monotonic(), self.sock.recv(4096).decode()))
            except socket.timeout:
                continue

    def watchdogs_since(self, t: float) -> int:
        return sum(1 for at, msg in self.got if at >= t and "WATCHDOG=1" in msg)

    def close(self) -> None:
        self._stop.set()
        self.thread.join(2)
        self.sock.close()


def test_stuck_poll_loop_fails_healthz_and_starves_the_watchdog(kafka, tmp_path, monkeypatch):
    topic = unique("health-loop")
    kafka.create_topics([(topic, 1), (f"{topic}.anomalies", 1), (f"{topic}.dlq", 1)])
    notes = Notifications(str(tmp_path / "notify.sock"))
    monkeypatch.setenv("NOTIFY_SOCKET", str(tmp_path / "notify.sock"))
    monkeypatch.setenv("WATCHDOG_USEC", "400000")            # a WATCHDOG=1 every 0.2 s while healthy
    monkeypatch.delenv("WATCHDOG_PID", raising=False)
    stuck, release = threading.Event(), threading.Event()

    def hang_in_handle(runner):
        process = runner._process

        def held(batch):
            stuck.set()
            release.wait(30)
            return process(batch)
        runner._process = held

    hr = HttpRunner(_config(tmp_path, kafka, topic), patch=hang_in_handle)
    try:
        wait_until(lambda: hr.get("/readyz")[0] == 200, 60, "assignment")
        assert hr.get("/healthz") == (200, "ok\n")
        t = time.monotonic()
        wait_until(lambda: notes.watchdogs_since(t) >= 2, 10, "watchdog pings while healthy")
        produce(kafka.bootstrap, topic, synth_events(n_entities=2, n_steps=420)[:40])
        wait_until(stuck.is_set, 30, "the loop to get stuck")
        t_stuck = time.monotonic()
        status, body = wait_until(lambda: (r := hr.get("/healthz"))[0] == 503 and r, 10, "/healthz 503")
        assert "poll loop has not completed an iteration" in body, body
        assert notes.watchdogs_since(t_stuck + 0.3) == 0          # systemd would restart us now
        release.set()
        wait_until(lambda: hr.get("/healthz")[0] == 200, 10, "/healthz 200 once the loop moves")
        t = time.monotonic()
        wait_until(lambda: notes.watchdogs_since(t) >= 1, 10, "the watchdog fed again")
    finally:
        release.set()
        code = hr.stop()
        notes.close()
    assert code == 0


def test_a_rebalance_that_never_completes_fails_healthz(kafka, tmp_path):
    topic = unique("health-rebal")
    kafka.create_topics([(topic, 1), (f"{topic}.anomalies", 1), (f"{topic}.dlq", 1)])
    gate = threading.Event()          # poll returns nothing and never joins the group: no assignment
    hr = HttpRunner(_config(tmp_path, kafka, topic), gate=gate)
    try:
        assert hr.get("/healthz") == (200, "ok\n")
        status, body = wait_until(lambda: (r := hr.get("/healthz"))[0] == 503 and r, 15, "/healthz 503")
        assert "no rebalance has completed" in body, body
        gate.set()
        wait_until(lambda: hr.get("/healthz")[0] == 200, 60, "/healthz 200 after the assignment")
    finally:
        gate.set()
        code = hr.stop()
    assert code == 0


def test_broker_connected_and_missing_topics_read_the_client_state():
    """The two probes behind readiness, on stand-ins shaped like kafka-python 3's objects."""
    from types import SimpleNamespace as NS

    from rnnstream.daemon.runner import broker_connected, missing_topics

    now = time.monotonic()
    beat = NS(last_receive=now - 1, last_reset=now - 100, config={"session_timeout_ms": 6000})
    coordinator = NS(coordinator_id="c1", heartbeat=beat, stable=lambda: True)
    consumer = NS(_coordinator=coordinator, _manager=NS(_conns={"c1": NS(connected=True)}))
    assert broker_connected(consumer) is True
    beat.last_receive = now - 7                 # stable, yet no heartbeat answered for a session: hung
    assert broker_connected(consumer) is False
    coordinator.stable = lambda: False          # mid-rebalance: heartbeats pause, nothing concluded
    assert broker_connected(consumer) is True
    consumer._manager._conns["c1"].connected = False
    assert broker_connected(consumer) is False
    coordinator.coordinator_id = None
    assert broker_connected(consumer) is False
    assert broker_connected(object()) is None   # not a kafka-python consumer: unknown, never an error

    cluster = NS(_last_successful_refresh_ms=1, partitions_for_topic=lambda t: {0, 1} if t == "a" else None)
    assert missing_topics(NS(_client=NS(cluster=cluster)), ["a", "b"]) == ["b"]
    assert missing_topics(NS(_client=NS(cluster=cluster)), ["b"]) == ["b"]
    cluster._last_successful_refresh_ms = 0
    assert missing_topics(NS(_client=NS(cluster=cluster)), ["b"]) == []   # no metadata yet: nothing said


def test_missing_input_topic_is_reported_by_readiness_not_liveness(kafka, tmp_path):
    """/readyz used to say 200 with the input topic missing."""
    topic = unique("health-notopic")             # never created
    kafka.create_topics([(f"{topic}.anomalies", 1), (f"{topic}.dlq", 1)])
    hr = HttpRunner(_config(tmp_path, kafka, topic))
    try:
        status, body = wait_until(lambda: (r := hr.get("/readyz"))[1].find("input topic") >= 0 and r, 30,
                                  "/readyz to name the missing topic")
        assert status == 503 and topic in body, body
        time.sleep(3.5)                            # past progress_stall_seconds: still alive
        assert hr.get("/healthz") == (200, "ok\n")
        kafka.create_topics([(topic, 1)])
        wait_until(lambda: hr.get("/readyz")[0] == 200, 60, "/readyz 200 once the topic exists")
    finally:
        code = hr.stop()
    assert code == 0
