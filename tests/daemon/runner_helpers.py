"""Shared pieces of the runner integration tests: configs, producing, waiting, reading state back."""

from __future__ import annotations

import threading
import time
import uuid
from pathlib import Path

import numpy as np
from kafka import KafkaConsumer, TopicPartition
from kafka.admin import KafkaAdminClient
from kafka.errors import KafkaError

from rnnstream.config import load_config
from rnnstream.daemon.checkpoint import CheckpointStore
from rnnstream.daemon.runner import Runner
from rnnstream.embedded.testing import produce, wait_until  # noqa: F401  (re-exported to the tests)
from rnnstream.synth import generate

# A daemon in a subprocess, started as ``[sys.executable, "-c", LAUNCH, config_path]``: numba's disk
# cache configured as the command line does it (a cold compile costs seconds per start), and thread
# stacks on SIGUSR1 for a test that hangs.
LAUNCH = ("import faulthandler, signal, sys; faulthandler.register(signal.SIGUSR1); "
          "from rnnstream.kernels.jit import configure_cache; configure_cache(); "
          "from rnnstream.daemon.runner import main; sys.exit(main(sys.argv[1]))")

CONFIG = """\
{extra}
kafka:
  bootstrap_servers: {bootstrap}
  group_id: {group}
  auto_offset_reset: earliest   # events are produced before the group joins
  poll_timeout_ms: 100
  max_poll_records: {max_poll}
  session_timeout_ms: 6000
state_dir: {state_dir}
checkpoint:
  interval_seconds: {interval}
  keep_generations: 2
metrics:
  host: 127.0.0.1
  port: 0
logging:
  level: WARNING
detectors:
  - name: hosts
    topics: [{topic}]
    entity: host
    timestamp: {{field: ts, unit: s}}
    features: [cpu]
    max_message_bytes: 400
    model: {{type: gru, hidden: 8}}
    training:
      background: true
      skip_when_busy: false   # the restart tests compare states with an uninterrupted run: never skip
      every_events: 300
      every_seconds: 1000000000
      min_events: 200
      window: 16
      batch_windows: 8
      steps: 5
    scoring:
      warmup_events: 20
      long_window: 100
      novelty_tolerance: 0.1
    outputs:
      anomalies_topic: {topic}.anomalies
      dead_letter_topic: {topic}.dlq
"""


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def write_config(tmp: Path, bootstrap: str, topic: str, *, group: str | None = None, state_dir: Path | None = None,
                 interval: float = 0.5, max_poll: int = 200, name: str = "cfg.yaml", extra: str = "") -> Path:
    """A daemon config file for ``topic``; ``extra`` is top-level YAML added to it (e.g. a processing section)."""
    state_dir = state_dir or tmp / unique("state")
    path = tmp / name
    path.write_text(CONFIG.format(bootstrap=bootstrap, group=group or unique("g"), state_dir=state_dir,
                                  interval=interval, topic=topic, max_poll=max_poll, extra=extra))
    return path


def synth_events(n_entities: int, n_steps: int, seed: int = 3) -> list[dict]:
    records, _ = generate(n_entities=n_entities, n_steps=n_steps, seed=seed)
    return records


def end_offsets(bootstrap: str, topic: str, partitions: int) -> dict[int, int]:
    consumer = KafkaConsumer(bootstrap_servers=bootstrap)
    try:
        ends = consumer.end_offsets([TopicPartition(topic, p) for p in range(partitions)])
        return {tp.partition: off for tp, off in ends.items()}
    finally:
        consumer.close()


def committed(bootstrap: str, group: str) -> dict[int, int]:
    """The group's committed offsets per partition ({} while the group coordinator is not available
    yet, e.g. loading the offsets topic just after the broker started)."""
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        offsets = admin.list_group_offsets(group).get(group, {})
        return {tp.partition: om.offset for tp, om in offsets.items()}
    except KafkaError as exc:
        if not exc.retriable:
            raise
        return {}
    finally:
        admin.close()


def group_members(bootstrap: str, group: str) -> int | None:
    """How many members the consumer group has (None while its coordinator cannot answer)."""
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        return len(admin.describe_groups([group]).get(group, {}).get("members") or [])
    except KafkaError as exc:
        if not exc.retriable:
            raise
        return None
    finally:
        admin.close()


def read_all(bootstrap: str, topic: str, idle_s: float = 3.0, timeout_s: float = 30.0,
             isolation_level: str = "read_uncommitted") -> list:
    """Every record of ``topic`` (all partitions), read until ``idle_s`` without new records."""
    consumer = KafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest",
                             enable_auto_commit=False, group_id=None, isolation_level=isolation_level)
    out: list = []
    deadline, last = time.monotonic() + timeout_s, time.monotonic()
    try:
        while time.monotonic() < deadline and time.monotonic() - last < idle_s:
            for records in consumer.poll(timeout_ms=300).values():
                out.extend(records)
                last = time.monotonic()
    finally:
        consumer.close()
    return out


class ThreadedRunner:
    """A Runner in a thread; ``stop()`` joins it and returns its exit code."""

    def __init__(self, config_path: Path, instance_id: str | None = None):
        self.config = load_config(config_path)
        self.runner = Runner(self.config, config_path=str(config_path), http=False, instance_id=instance_id)
        self.code: int | None = None
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()
        wait_until(self.runner.started.is_set, 60, "the runner to subscribe")

    def _run(self) -> None:
        try:
            self.code = self.runner.run()
        except BaseException as exc:  # surfaced by stop()
            self.error = exc

    def sample(self, name: str, labels: dict[str, str]) -> float:
        return self.runner.registry.get_sample_value(name, labels) or 0.0

    def stop(self, timeout: float = 30.0) -> int | None:
        self.runner.stop()
        self.thread.join(timeout)
        assert not self.thread.is_alive(), "runner did not stop"
        if self.error is not None:
            raise self.error
        return self.code


def run_to_end(config_path: Path, bootstrap: str, topic: str, partitions: int, timeout: float = 120) -> ThreadedRunner:
    """Run a daemon until its group has committed the end of every partition, then stop it."""
    tr = ThreadedRunner(config_path)
    cfg = tr.config
    ends = end_offsets(bootstrap, topic, partitions)
    wait_until(lambda: committed(bootstrap, cfg.kafka.group_id) == ends, timeout, f"group to reach {ends}")
    assert tr.stop() == 0
    return tr


def unit_states(config_path: Path, topic: str, partitions: int) -> dict[tuple[int, str], dict[str, np.ndarray]]:
    """Per (partition, entity): every slot field; plus per partition the model snapshot and counters."""
    cfg = load_config(config_path)
    det_cfg = cfg.detectors[0]
    store = CheckpointStore(cfg.state_dir)
    out: dict = {}
    for p in range(partitions):
        loaded = store.load(det_cfg.name, TopicPartition(topic, p), det_cfg)
        assert loaded is not None, f"no checkpoint for {topic}-{p} in {cfg.state_dir}"
        add_detector_state(out, p, *loaded)
    return out


def add_detector_state(out: dict, p: int, det, next_offset: int) -> None:
    """Put ``det``'s state into ``out`` as ``unit_states`` lays it out (partition ``p``), and close it."""
    try:
        rows = det.state.export()   # per entity, whatever the slot and ring row numbers
        for k, entity in enumerate(rows.entities):
            out[(p, entity)] = {name: np.array(v[k]) for name, v in rows.arrays.items()}
        out[(p, "_model")] = {k: np.array(v) for k, v in det.model.snapshot().items()}
        tr = det.training
        out[(p, "_counters")] = {"events": np.array(tr.events), "k": np.array(tr.k),
                                 "next_offset": np.array(next_offset)}
    finally:
        det.close()


def assert_same_states(got: dict, want: dict) -> None:
    assert set(got) == set(want), f"keys differ: {sorted(set(got) ^ set(want), key=str)[:10]}"
    for key, arrays in want.items():
        for name, value in arrays.items():
            np.testing.assert_array_equal(got[key][name], value, err_msg=f"{key} field {name}")
