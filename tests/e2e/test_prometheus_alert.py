"""End to end: embedded Kafka → the daemon → a real Prometheus evaluating deploy/prometheus/rnnstream.rules.yml.

A clean sine per entity must leave ``RnnstreamAnomalyDetected`` inactive even after Prometheus has
scraped the whole stream and evaluated the rule; one huge spike must then make it fire. The rules are
used exactly as deployed; only Prometheus' scrape and evaluation intervals are shortened to 1 s.
"""

from __future__ import annotations

import re
import threading
import time
from datetime import datetime
from pathlib import Path

import numpy as np
import pytest

from rnnstream.config import load_config
from rnnstream.daemon.runner import Runner
from rnnstream.embedded.testing import produce, wait_until

from .prometheus_server import PrometheusServer

pytestmark = [pytest.mark.kafka, pytest.mark.slow, pytest.mark.timeout(240)]

RULES = Path(__file__).resolve().parents[2] / "deploy" / "prometheus" / "rnnstream.rules.yml"
JOB = "rnnstream"        # the rules select job="rnnstream" (see the file's header comment)
ALERT = "RnnstreamAnomalyDetected"
DETECTOR = "sines"
ENTITIES = [f"host-{i}" for i in range(4)]
STEPS, STEP_S, T0 = 300, 60.0, 1_700_000_000.0

CONFIG = """\
kafka:
  bootstrap_servers: {bootstrap}
  group_id: {group}
  auto_offset_reset: earliest   # events are produced before the group joins
  poll_timeout_ms: 100
  session_timeout_ms: 6000
state_dir: {state_dir}
checkpoint: {{interval_seconds: 5}}
metrics: {{host: 127.0.0.1, port: 0}}
logging: {{level: WARNING}}
detectors:
  - name: {detector}
    topics: [{topic}]
    entity: host
    timestamp: {{field: ts, unit: s}}
    features: [cpu]
    model: {{type: gru, hidden: 8}}
    training: {{background: true, every_events: 300, every_seconds: 1000000000, min_events: 200,
               window: 16, batch_windows: 8, steps: 5}}
    scoring: {{warmup_events: 30, long_window: 100, novelty_tolerance: 0.5, threshold: 0.9}}
    outputs: {{anomalies_topic: {topic}.anomalies}}
"""


def normal_events() -> list[dict]:
    """A noisy sine per entity (period 40 steps, own phase), interleaved in time order."""
    rng = np.random.default_rng(11)
    out = []
    for i in range(STEPS):
        for e, host in enumerate(ENTITIES):
            cpu = 50 + 10 * np.sin(2 * np.pi * i / 40 + e) + rng.normal(0, 0.5)
            out.append({"host": host, "ts": T0 + STEP_S * i, "cpu": round(float(cpu), 3)})
    return out


def rfc3339(text: str) -> float:
    """Prometheus' timestamps carry nanoseconds; datetime takes microseconds."""
    text = re.sub(r"(\.\d{6})\d+", r"\1", text).replace("Z", "+00:00")
    return datetime.fromisoformat(text).timestamp()


def scalar(prom: PrometheusServer, query: str) -> float | None:
    result = prom.api("query", query=query)["result"]
    return float(result[0]["value"][1]) if len(result) == 1 else None


def test_spike_fires_anomaly_alert_in_real_prometheus(kafka, tmp_path):
    topic = kafka.new_topic("prom-e2e")
    kafka.create_topics([(f"{topic}.anomalies", 1)])
    cfg_path = tmp_path / "rnnstream.yaml"
    cfg_path.write_text(CONFIG.format(bootstrap=kafka.bootstrap, group=f"g-{topic}", state_dir=tmp_path / "state",
                                      detector=DETECTOR, topic=topic))
    runner = Runner(load_config(cfg_path), config_path=str(cfg_path), http=True, instance_id="prom-e2e")
    outcome: dict = {}
    thread = threading.Thread(target=lambda: outcome.setdefault("code", runner.run()), daemon=True)
    thread.start()
    prom = None
    try:
        wait_until(runner.started.is_set, 60, "the daemon to subscribe")
        prom = PrometheusServer(tmp_path / "prometheus", [RULES], {JOB: [f"127.0.0.1:{runner.http_port}"]},
                                interval="1s")
        prom.start()

        def processed() -> float:
            return runner.registry.get_sample_value("rnnstream_events_processed_total", {"detector": DETECTOR}) or 0.0

        events = normal_events()
        produce(kafka.bootstrap, topic, events)
        wait_until(lambda: processed() == len(events), 90, f"the daemon to score {len(events)} events")
        assert runner.registry.get_sample_value("rnnstream_anomalies_total", {"detector": DETECTOR}) == 0, \
            "the clean sine stream was flagged: the 'not firing before the spike' check would be meaningless"
        sel = f'{{job="{JOB}", detector="{DETECTOR}"}}'
        wait_until(lambda: scalar(prom, f"rnnstream_events_processed_total{sel}") == len(events), 30,
                   "Prometheus to scrape the final processed count")
        scraped_at = time.time()

        def evaluated_since_scrape() -> dict | None:
            r = prom.rule(ALERT)
            return r if r.get("lastEvaluation") and rfc3339(r["lastEvaluation"]) > scraped_at + 0.1 else None
        rule = wait_until(evaluated_since_scrape, 30, f"{ALERT} to be evaluated after the scrape")
        assert rule["health"] == "ok", rule
        assert scalar(prom, f"rnnstream_anomalies_total{sel}") == 0
        assert prom.alerts(ALERT) == [], f"{ALERT} active before any anomaly: {prom.alerts(ALERT)}"
        assert rule["state"] == "inactive"

        spike_at = time.monotonic()
        produce(kafka.bootstrap, topic, [{"host": ENTITIES[0], "ts": T0 + STEP_S * STEPS, "cpu": 5000.0}])
        firing = wait_until(lambda: [a for a in prom.alerts(ALERT) if a["state"] == "firing"], 90,
                            f"{ALERT} to fire in Prometheus")
        fired_after = time.monotonic() - spike_at
        assert len(firing) == 1
        labels = firing[0]["labels"]
        assert labels["job"] == JOB and labels["detector"] == DETECTOR and labels["severity"] == "info", labels
        assert float(firing[0]["value"]) > 0
        assert runner.registry.get_sample_value("rnnstream_anomalies_total", {"detector": DETECTOR}) == 1

        targets = [t for t in prom.api("targets")["activeTargets"] if t["labels"]["job"] == JOB]
        assert len(targets) == 1, targets
        assert targets[0]["health"] == "up", targets[0]
        assert targets[0]["scrapeUrl"] == f"http://127.0.0.1:{runner.http_port}/metrics"
        assert scalar(prom, f'up{{job="{JOB}"}}') == 1
        print(f"{ALERT} firing {fired_after:.1f} s after the spike was produced")
    finally:
        if prom is not None:
            prom.stop()
        runner.stop()
        thread.join(20)
    assert not thread.is_alive(), "the daemon did not stop within 20 s"
    assert outcome.get("code") == 0
