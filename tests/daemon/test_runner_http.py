"""The daemon's HTTP port against a real broker: /healthz, /readyz around assignment and restore, /metrics.

/readyz must say 503 until the consumer has its partitions and every unit's state is restored, and
200 after; /healthz answers 200 throughout; /metrics exports every family of ``METRIC_SPECS``.
"""

from __future__ import annotations

import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import orjson
import pytest
from kafka import KafkaConsumer
from prometheus_client.parser import text_string_to_metric_families

from rnnstream.config import load_config
from rnnstream.daemon.runner import Runner, _default_consumer
from rnnstream.metrics import METRIC_SPECS

from .runner_helpers import committed, end_offsets, produce, synth_events, unique, wait_until, write_config

pytestmark = [pytest.mark.kafka, pytest.mark.timeout(180)]


class GatedConsumer:
    """A real KafkaConsumer whose ``poll`` returns nothing (without joining the group) until ``gate`` is set."""

    def __init__(self, inner: KafkaConsumer, gate: threading.Event):
        self._inner = inner
        self._gate = gate

    def poll(self, timeout_ms: int = 0, **kwargs):
        if not self._gate.is_set():
            time.sleep(timeout_ms / 1000)
            return {}
        return self._inner.poll(timeout_ms=timeout_ms, **kwargs)

    def __getattr__(self, name: str):
        return getattr(self._inner, name)


class HttpRunner:
    """A Runner with its HTTP server in a thread; ``get(path)`` → (status, body)."""

    def __init__(self, config_path: Path, gate: threading.Event | None = None, patch=None):
        cfg = load_config(config_path)
        factory = None
        if gate is not None:
            def factory(c, topics):
                return GatedConsumer(_default_consumer(c, topics), gate)
        self.runner = Runner(cfg, config_path=str(config_path), http=True, consumer_factory=factory)
        if patch is not None:
            patch(self.runner)
        self.code: int | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()
        wait_until(self.runner.started.is_set, 60, "the runner to subscribe")

    def _run(self) -> None:
        self.code = self.runner.run()

    def get(self, path: str) -> tuple[int, str]:
        url = f"http://127.0.0.1:{self.runner.http_port}{path}"
        try:
            with urllib.request.urlopen(url, timeout=5) as resp:
                return resp.status, resp.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode()

    def stop(self) -> int | None:
        self.runner.stop()
        self.thread.join(30)
        assert not self.thread.is_alive(), "runner did not stop within 30 s"
        return self.code


def _ready_gauge(body: str) -> float:
    for family in text_string_to_metric_families(body):
        if family.name == "rnnstream_ready":
            return family.samples[0].value
    raise AssertionError("rnnstream_ready missing from /metrics")


def test_healthz_readyz_follow_assignment_and_metrics_export_every_family(kafka, tmp_path):
    topic = unique("http")
    kafka.create_topics([(topic, 2), (f"{topic}.anomalies", 1), (f"{topic}.dlq", 1)])
    gate = threading.Event()
    hr = HttpRunner(write_config(tmp_path, kafka.bootstrap, topic), gate=gate)
    try:
        assert hr.get("/healthz") == (200, "ok\n")
        status, body = hr.get("/readyz")
        assert status == 503 and body.startswith("not ready: ") and len(body.strip()) > len("not ready:"), body
        assert hr.runner.units == {}
        assert _ready_gauge(hr.get("/metrics")[1]) == 0

        gate.set()
        wait_until(lambda: hr.get("/readyz")[0] == 200, 60, "/readyz to turn 200 after assignment")
        assert hr.get("/readyz") == (200, "ready\n")
        assert {tp.partition for tp in hr.runner.units} == {0, 1}   # ready means assigned
        assert hr.get("/healthz") == (200, "ok\n")

        events = synth_events(n_entities=2, n_steps=420)
        bad = orjson.dumps({"host": "x", "ts": 1_700_000_000, "cpu": 1.0, "pad": "y" * 500})  # oversize
        produce(kafka.bootstrap, topic, [*events, bad], key=lambda v: b"k" if isinstance(v, bytes) else v["host"].encode())
        ends = end_offsets(kafka.bootstrap, topic, 2)
        wait_until(lambda: committed(kafka.bootstrap, hr.runner.config.kafka.group_id) == ends, 60,
                   "every offset checkpointed and committed")
        status, body = hr.get("/metrics")
        assert status == 200
    finally:
        gate.set()
        code = hr.stop()
    assert code == 0

    families = {f.name: f for f in text_string_to_metric_families(body)}
    sample_names = {s.name for f in families.values() for s in f.samples}
    for spec in METRIC_SPECS:
        family_name = spec.name[:-len("_total")] if spec.kind == "counter" else spec.name
        if spec.optional:   # top_k_entities is 0 in this config: the entity gauge is not registered
            assert family_name not in families, spec.name
            continue
        assert family_name in families, f"{spec.name} missing from /metrics"
        assert families[family_name].type == spec.kind, spec.name
        if spec.name == "rnnstream_training_loss":   # a partition's series appears with its first retraining
            continue
        missing = set(spec.series_names()) - sample_names
        assert not missing, f"{spec.name}: no samples for {sorted(missing)}"
    values = {(s.name, tuple(sorted(s.labels.items()))): s.value for f in families.values() for s in f.samples}
    assert values[("rnnstream_events_consumed_total", (("topic", topic),))] == len(events) + 1
    assert values[("rnnstream_events_processed_total", (("detector", "hosts"),))] == len(events)
    assert values[("rnnstream_events_rejected_total", (("detector", "hosts"), ("reason", "oversize")))] == 1
    assert values[("rnnstream_ready", ())] == 1


def test_readyz_stays_503_until_state_is_restored(kafka, tmp_path):
    topic = unique("http-restore")
    kafka.create_topics([(topic, 1), (f"{topic}.anomalies", 1), (f"{topic}.dlq", 1)])
    cfg_path = write_config(tmp_path, kafka.bootstrap, topic, state_dir=tmp_path / "state")
    produce(kafka.bootstrap, topic, synth_events(n_entities=2, n_steps=420))
    first = HttpRunner(cfg_path)
    ends = end_offsets(kafka.bootstrap, topic, 1)
    wait_until(lambda: committed(kafka.bootstrap, first.runner.config.kafka.group_id) == ends, 60, "a checkpoint")
    assert first.stop() == 0

    loading, release = threading.Event(), threading.Event()

    def slow_restore(runner: Runner) -> None:
        load = runner.store.load

        def held_load(*args, **kwargs):
            loading.set()
            release.wait(10)
            return load(*args, **kwargs)
        runner.store.load = held_load

    second = HttpRunner(cfg_path, patch=slow_restore)
    try:
        wait_until(loading.is_set, 60, "the restore to start")
        status, body = second.get("/readyz")
        assert status == 503 and body.startswith("not ready: "), (status, body)
        assert second.get("/healthz") == (200, "ok\n")      # liveness is not readiness
        release.set()
        wait_until(lambda: second.get("/readyz")[0] == 200, 30, "/readyz 200 after the restore")
        units = list(second.runner.units.values())
        assert len(units) == 1 and units[0].restored and units[0].next_offset == ends[0]
    finally:
        release.set()
        code = second.stop()
    assert code == 0
