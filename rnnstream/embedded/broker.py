"""A real single-node Apache Kafka broker (KRaft, broker+controller in one JVM) for tests and the demo.

    with EmbeddedKafka() as broker:
        broker.create_topics(["events", ("anomalies", 3)])
        producer = KafkaProducer(bootstrap_servers=broker.bootstrap)

``python -m rnnstream.embedded.kafka`` runs one in the foreground until Ctrl-C and prints its
bootstrap address (see ``rnnstream.embedded.kafka``).

What a machine needs: Java 17+ and, for the first run of a Kafka version, Apache Maven and access to
Maven Central (see ``rnnstream.embedded.jars``). Without them ``start()`` raises BrokerError saying
what to install; it never silently does without a broker.

Guaranteed: the broker listens on 127.0.0.1 only, on free ports (PLAINTEXT and CONTROLLER) unless a
port is given; its data and log live in a fresh temporary directory that ``stop()`` removes; ``start``
returns only when a kafka-python admin client sees the broker registered and unfenced, or raises
BrokerError with the tail of the broker's log within ``startup_timeout_s``; ``stop()`` sends SIGTERM,
waits ``stop_timeout_s`` for a clean shutdown, then SIGKILLs. On Linux the JVM also gets SIGTERM
if the thread that started it dies, so start it from a thread that outlives it (normally the main
one). Not guaranteed: durability across restarts (each start is a new empty cluster), security, or
any tuning beyond what tests need.
"""

from __future__ import annotations

import atexit
import base64
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterable
from pathlib import Path

from kafka.admin import KafkaAdminClient, NewTopic

from rnnstream.embedded.jars import KAFKA_VERSION, ensure_jars, find_java
from rnnstream.embedded.settings import LOG4J2_PROPERTIES, free_port, server_properties, write_properties
from rnnstream.errors import BrokerError

TopicSpec = str | tuple[str, int] | NewTopic


class _PortTaken(Exception):
    """The JVM exited because a port chosen as free was taken meanwhile; start() retries."""


class EmbeddedKafka:
    """One broker process. Re-startable after ``stop()`` (as a new, empty cluster)."""

    def __init__(
        self,
        version: str = KAFKA_VERSION,
        *,
        port: int = 0,
        heap: str = "512m",
        startup_timeout_s: float = 60.0,
        stop_timeout_s: float = 30.0,
        extra_properties: dict[str, str] | None = None,
        cache: Path | None = None,
    ):
        self.version = version
        self._fixed_port = port
        self._heap = heap
        self._startup_timeout_s = startup_timeout_s
        self._stop_timeout_s = stop_timeout_s
        self._extra = dict(extra_properties or {})
        self._cache = cache
        self._proc: subprocess.Popen | None = None
        self._command: list[str] = []
        self._dir: Path | None = None
        self._port: int | None = None
        self._admin: KafkaAdminClient | None = None
        self.startup_seconds: float | None = None  # jar lookup excluded; format + JVM start + ready

    # -- state ------------------------------------------------------------------------------------
    @property
    def bootstrap(self) -> str:
        """``"127.0.0.1:PORT"`` of the PLAINTEXT listener; BrokerError if not started."""
        if self._port is None or not self.running:
            raise BrokerError("the embedded Kafka broker is not running: call start() first")
        return f"127.0.0.1:{self._port}"

    @property
    def port(self) -> int | None:
        return self._port

    @property
    def pid(self) -> int | None:
        """The broker JVM's process id while running (benchmarks read its CPU time), else None."""
        return self._proc.pid if self.running else None

    @property
    def directory(self) -> Path | None:
        """The temporary directory holding server.properties, data/ and broker.log while running."""
        return self._dir

    @property
    def log_path(self) -> Path | None:
        return self._dir / "broker.log" if self._dir else None

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def log_tail(self, lines: int = 40) -> str:
        """Last ``lines`` lines of the broker's log ('' if there is none)."""
        path = self.log_path
        if path is None or not path.is_file():
            return ""
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])

    # -- lifecycle --------------------------------------------------------------------------------
    def __enter__(self) -> EmbeddedKafka:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> EmbeddedKafka:
        """Fetch jars if needed, format a fresh log dir, launch the JVM and wait until it serves."""
        if self.running:
            return self
        java = find_java(17)
        jars = ensure_jars(self.version, self._cache)
        t0 = time.monotonic()
        self._dir = Path(tempfile.mkdtemp(prefix="rnnstream-kafka-"))
        atexit.register(self.stop)
        try:
            for attempt in range(3):
                self._launch(java, jars)
                try:
                    self._wait_ready(t0 + self._startup_timeout_s)
                    break
                except _PortTaken:
                    if self._fixed_port or attempt == 2:
                        raise BrokerError(f"Kafka could not bind its ports on 127.0.0.1:\n{self.log_tail()}")
        except BaseException:
            self.stop()
            raise
        self.startup_seconds = time.monotonic() - t0
        return self

    def _launch(self, java: str, jars: list[Path]) -> None:
        """Pick ports, write the config, format a fresh data dir and start the JVM (no waiting)."""
        assert self._dir is not None
        data = self._dir / "data"
        shutil.rmtree(data, ignore_errors=True)
        self._port = self._fixed_port or free_port()
        controller_port = free_port()
        props_path = self._dir / "server.properties"
        write_properties(props_path, server_properties(data, self._port, controller_port, self._extra))
        (self._dir / "log4j2.properties").write_text(LOG4J2_PROPERTIES)
        common = [f"-Dlog4j2.configurationFile={self._dir / 'log4j2.properties'}",
                  "-Djava.awt.headless=true", "-cp", os.pathsep.join(map(str, jars))]
        fmt = subprocess.run(
            [java, "-Xmx256m", "-XX:TieredStopAtLevel=1", *common, "kafka.tools.StorageTool", "format",
             "--config", str(props_path), "--cluster-id", _cluster_id(), "--standalone"],
            capture_output=True, text=True, timeout=120,
        )
        if fmt.returncode != 0:
            raise BrokerError(
                f"formatting Kafka storage in {data} failed (exit {fmt.returncode}):\n"
                + _errors_then_tail(fmt.stdout + fmt.stderr)
            )
        self._command = [java, "-Xms128m", f"-Xmx{self._heap}", "-XX:+UseSerialGC", *common,
                         "kafka.Kafka", str(props_path)]
        self._spawn()

    def _spawn(self) -> None:
        log = open(self._dir / "broker.log", "ab")
        try:
            self._proc = subprocess.Popen(
                self._command, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True, preexec_fn=_die_with_parent,
            )
        finally:
            log.close()

    def crash(self) -> None:
        """SIGKILL the broker, keeping its data and ports, as a broker that dies (for outage tests)."""
        if self._proc is not None and self._proc.poll() is None:
            self._proc.kill()
            self._proc.wait(10)

    def revive(self) -> None:
        """Start the broker ``crash()`` killed again, on the same ports and data, and wait until it serves."""
        if self.running:
            return
        self._close_admin()
        self._spawn()
        self._wait_ready(time.monotonic() + self._startup_timeout_s)
    def _wait_ready(self, deadline: float) -> None:
        """Until the deadline: the JVM is alive and an admin client sees broker 1 unfenced."""
        last_error = "no answer yet"
        while True:
            if not self.running:
                if "Address already in use" in self.log_tail(300):
                    raise _PortTaken()
                code = self._proc.returncode if self._proc else None
                raise BrokerError(
                    f"the Kafka broker exited with code {code} during start-up; last lines of its log:\n"
                    f"{self.log_tail()}"
                )
            if _accepts(self._port):
                try:
                    brokers = self.admin_client().describe_cluster()["brokers"]
                    if any(not b.get("is_fenced", False) for b in brokers):
                        return
                    last_error = f"brokers registered but fenced: {brokers}"
                except Exception as exc:  # any client failure here means "not ready yet"
                    last_error = f"{type(exc).__name__}: {exc}"
                    self._close_admin()
            if time.monotonic() > deadline:
                raise BrokerError(
                    f"the Kafka broker at 127.0.0.1:{self._port} was not ready within "
                    f"{self._startup_timeout_s:.0f} s (last: {last_error}); last lines of its log:\n"
                    f"{self.log_tail()}"
                )
            time.sleep(0.2)

    def stop(self) -> None:
        """SIGTERM, wait, SIGKILL if needed; remove the temporary directory. Idempotent."""
        atexit.unregister(self.stop)
        self._close_admin()
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(self._stop_timeout_s)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None

    # -- admin ------------------------------------------------------------------------------------
    def admin_client(self) -> KafkaAdminClient:
        """A shared admin client for this broker, closed by ``stop()``."""
        if self._admin is None:
            self._admin = KafkaAdminClient(
                bootstrap_servers=self.bootstrap, client_id="rnnstream-embedded", request_timeout_ms=10000
            )
        return self._admin

    def _close_admin(self) -> None:
        admin, self._admin = self._admin, None
        if admin is not None:
            try:
                admin.close()
            except Exception:
                pass

    def create_topics(
        self, names_or_specs: TopicSpec | Iterable[TopicSpec], partitions: int = 1, *,
        exist_ok: bool = False, timeout_s: float = 30.0,
    ) -> list[str]:
        """Create topics and wait until every partition has a leader; returns the names created.

        Each item is a name (``partitions`` partitions), a ``(name, partitions)`` pair or a
        kafka-python ``NewTopic``. Replication factor is always 1. With ``exist_ok`` existing
        topics are left as they are (even if their partition count differs).
        """
        items = [names_or_specs] if isinstance(names_or_specs, (str, tuple, NewTopic)) else list(names_or_specs)
        specs = [_to_new_topic(item, partitions) for item in items]
        admin = self.admin_client()
        if exist_ok:
            existing = set(admin.list_topics())
            specs = [s for s in specs if s.name not in existing]
        if not specs:
            return []
        names = [s.name for s in specs]
        try:
            admin.create_topics(specs, timeout_ms=int(timeout_s * 1000))
            admin.wait_for_topics(names, timeout_ms=int(timeout_s * 1000))
        except Exception as exc:
            raise BrokerError(f"creating topics {names} on {self.bootstrap} failed: {type(exc).__name__}: {exc}") from exc
        return names


    def new_topic(self, prefix: str = "t", partitions: int = 1) -> str:
        """Create a topic named ``<prefix>-<8 random hex>`` (unique on a shared broker); returns its name."""
        name = f"{prefix}-{uuid.uuid4().hex[:8]}"
        self.create_topics([(name, partitions)])
        return name


def _to_new_topic(item: TopicSpec, partitions: int) -> NewTopic:
    if isinstance(item, NewTopic):
        return item
    if isinstance(item, str):
        return NewTopic(item, partitions, 1)
    name, n = item
    return NewTopic(name, int(n), 1)


def _errors_then_tail(output: str, tail: int = 8) -> str:
    """The lines naming an exception or error (a Java stack trace buries them), then the last lines."""
    lines = output.strip().splitlines()
    errors = [ln for ln in lines if re.search(r"Exception|Error|ERROR", ln) and not ln.lstrip().startswith("at ")]
    return "\n".join(errors[:5] + ["..."] + lines[-tail:])


def _cluster_id() -> str:
    """A Kafka-style cluster id: 16 random bytes, URL-safe base64 without padding, not starting with '-'."""
    while True:
        cid = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not cid.startswith("-"):
            return cid


def _accepts(port: int | None) -> bool:
    if port is None:
        return False
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def _die_with_parent() -> None:  # runs in the child between fork and exec
    if sys.platform.startswith("linux"):
        import ctypes

        ctypes.CDLL(None).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
