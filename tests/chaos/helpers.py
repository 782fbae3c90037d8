"""The daemon as a real process against a real broker, and the end-of-test invariants every chaos test checks.

``Daemon`` runs ``rnnstream run`` in a subprocess on a fixed metrics port; ``check_invariants`` asserts
what must hold however the test ended: consumed = processed + dead-lettered for the detector, every
metric value finite, and (``check_state``) every float of every checkpoint's live state and weights
finite.
"""

from __future__ import annotations

import math
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import orjson
from kafka import KafkaProducer, TopicPartition
from kafka.errors import KafkaError
from prometheus_client.parser import text_string_to_metric_families

from rnnstream.config import load_config
from rnnstream.daemon.checkpoint import CheckpointStore
from rnnstream.embedded.settings import free_port

from daemon.runner_helpers import committed as _committed
from daemon.runner_helpers import LAUNCH, end_offsets, unique, wait_until  # noqa: F401 (re-exported)

ROOT = Path(__file__).resolve().parents[2]
T0 = 1_700_000_000.0

CONFIG = """\
kafka:
  bootstrap_servers: {bootstrap}
  group_id: {group}
  poll_timeout_ms: 100
  max_poll_records: 2000
  session_timeout_ms: 6000
  reconnect_backoff_max_ms: 500
  auto_offset_reset: earliest   # events are produced before the group joins
state_dir: {state_dir}
checkpoint:
  interval_seconds: {interval}
daemon:
  shutdown_timeout_seconds: 8
  output_send_timeout_ms: 1000
  output_retry_backoff_ms: 200
  output_retry_backoff_max_ms: 1000
  flush_timeout_seconds: 2
metrics:
  host: 127.0.0.1
  port: {port}
logging:
  level: INFO
detectors:
  - name: hosts
    topics: [{topic}]
    entity: host
    timestamp: {{field: ts, unit: s}}
    features: [cpu]
    model: {{type: gru, hidden: 8}}
    idle_ttl_seconds: {ttl}
    training: {{background: true, every_events: 2000, every_seconds: 1.0e9, min_events: 200, window: 16, batch_windows: 8, steps: 5}}
    scoring: {{warmup_events: 20, long_window: 100}}
    outputs:
      anomalies_topic: {topic}.anomalies
      dead_letter_topic: {topic}.dlq
"""


def committed(bootstrap: str, group: str) -> dict[int, int]:
    """The group's committed offsets; {} while the broker cannot say (a new group's coordinator moving)."""
    try:
        return _committed(bootstrap, group)
    except KafkaError:
        return {}


def write_config(tmp: Path, bootstrap: str, topic: str, *, interval: float = 1.0, ttl: float = 86400.0,
                 group: str | None = None) -> Path:
    path = tmp / f"{unique('cfg')}.yaml"
    path.write_text(CONFIG.format(bootstrap=bootstrap, group=group or unique("g"), state_dir=tmp / "state",
                                  interval=interval, port=free_port(), topic=topic, ttl=ttl))
    return path


def events(n_entities: int, n_steps: int, seed: int = 0, t0: float = T0) -> list[dict]:
    """A calm sine per entity, one event a minute, entity-interleaved."""
    rng = np.random.default_rng(seed)
    out = []
    for step in range(n_steps):
        for e in range(n_entities):
            out.append({"host": f"h{e:03d}", "ts": t0 + 60.0 * step,
                        "cpu": float(50 + 10 * math.sin(step / 20 + e) + rng.normal())})
    return out


def produce(bootstrap: str, topic: str, values: list, *, max_request_size: int = 1048576,
            timestamps_ms: list[int | None] | None = None) -> None:
    """Send dicts as JSON (keyed by host) or bytes as they are; ``timestamps_ms`` sets record timestamps."""
    producer = KafkaProducer(bootstrap_servers=bootstrap, linger_ms=20, acks="all", max_request_size=max_request_size,
                             batch_size=256 * 1024)
    try:
        for i, v in enumerate(values):
            payload = v if isinstance(v, (bytes, bytearray)) else orjson.dumps(v)
            key = v["host"].encode() if isinstance(v, dict) and "host" in v else None
            ts = timestamps_ms[i] if timestamps_ms is not None else None
            producer.send(topic, key=key, value=payload, timestamp_ms=ts)
        producer.flush(60)
    finally:
        producer.close()


class Daemon:
    """``rnnstream run -c cfg`` in a subprocess; its log in ``log_path``."""

    def __init__(self, cfg_path: Path, log_path: Path):
        self.cfg_path = cfg_path
        self.cfg = load_config(cfg_path)
        self.port = self.cfg.metrics.port
        self.log_path = log_path
        with open(log_path, "ab") as out:
            self.proc = subprocess.Popen([sys.executable, "-c", LAUNCH, str(cfg_path)], cwd=ROOT, stdout=out,
                                         stderr=subprocess.STDOUT)
        wait_until(lambda: self.get("/healthz")[0] in (200, 503) or not self.alive, 60, "the daemon's HTTP port")
        assert self.alive, self.log()

    @property
    def alive(self) -> bool:
        return self.proc.poll() is None

    def log(self, chars: int = 4000) -> str:
        return self.log_path.read_text(errors="replace")[-chars:]

    def get(self, path: str) -> tuple[int, str]:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{path}", timeout=3) as resp:
                return resp.status, resp.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode()
        except OSError as exc:
            return 0, str(exc)

    def samples(self) -> dict[tuple[str, tuple], float]:
        status, body = self.get("/metrics")
        assert status == 200, body
        return {(s.name, tuple(sorted(s.labels.items()))): s.value
                for f in text_string_to_metric_families(body) for s in f.samples}

    def value(self, name: str, **labels: str) -> float:
        return self.samples().get((name, tuple(sorted(labels.items()))), 0.0)

    def terminate(self, budget: float = 10.0) -> tuple[int, float]:
        """SIGTERM; the exit code and how long the exit took (fails past ``budget``)."""
        started = time.monotonic()
        self.proc.send_signal(signal.SIGTERM)
        try:
            code = self.proc.wait(budget)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)
            raise AssertionError(f"the daemon did not exit within {budget} s of SIGTERM:\n{self.log()}") from None
        return code, time.monotonic() - started

    def kill(self) -> None:
        if self.alive:
            self.proc.kill()
            self.proc.wait(10)


def check_invariants(d: Daemon, topic: str, detector: str = "hosts") -> dict:
    """consumed = processed + rejected for the detector, and every metric value finite. Returns the samples."""
    samples = d.samples()
    bad = {k: v for k, v in samples.items() if not math.isfinite(v)}
    assert not bad, f"non-finite metric values: {bad}"
    consumed = samples.get(("rnnstream_events_consumed_total", (("topic", topic),)), 0.0)
    processed = samples.get(("rnnstream_events_processed_total", (("detector", detector),)), 0.0)
    rejected = sum(v for (name, labels), v in samples.items()
                   if name == "rnnstream_events_rejected_total" and ("detector", detector) in labels)
    assert consumed == processed + rejected, (consumed, processed, rejected)
    return samples


def check_state(cfg_path: Path, topic: str, partitions: int) -> int:
    """Every checkpoint's live state and weights are finite; returns the entities found."""
    cfg = load_config(cfg_path)
    det_cfg = cfg.detectors[0]
    store = CheckpointStore(cfg.state_dir)
    entities = 0
    for p in range(partitions):
        loaded = store.load(det_cfg.name, TopicPartition(topic, p), det_cfg)
        if loaded is None:
            continue
        det, _ = loaded
        try:
            rows = det.state.export()   # every live entity's row, rings included
            entities += len(rows.entities)
            for name, arr in rows.arrays.items():
                if arr.dtype.kind == "f":
                    assert np.isfinite(arr).all(), f"partition {p}: state field {name} is not finite"
            for name, w in det.model.weights.items():
                assert np.isfinite(w).all(), f"partition {p}: weight {name} is not finite"
        finally:
            det.close()
    return entities


def pause(pid: int) -> None:
    os.kill(pid, signal.SIGSTOP)


def resume(pid: int) -> None:
    os.kill(pid, signal.SIGCONT)
