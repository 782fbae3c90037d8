"""Daemon throughput against a local embedded broker, next to a bare kafka-python poll+decode loop.

    python benchmarks/bench_daemon.py [--events 1000000] [--entities 10000]

Pre-fills one topic with JSON events ({"host", "ts", "cpu"}, keyed by host), then measures, each with
a fresh consumer group over the same topic: (a) KafkaConsumer.poll + orjson.loads of every value,
(b) the daemon (GRU H=32, time features on, background training, anomalies to a topic, periodic
checkpoints) from its first record to the group committing the end of the topic. Prints events/s of
both and the ratio (target >= 0.8). Kernel compilation is excluded (warmed up before timing).
"""

from __future__ import annotations

import argparse
import os
import sys
import platform
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import orjson
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from prometheus_client import CollectorRegistry

from rnnstream.config import load_config_text
from rnnstream.daemon.runner import Runner
from rnnstream.detector import Detector
from rnnstream.embedded import EmbeddedKafka
from rnnstream.kernels.jit import configure_cache

configure_cache()  # as the command line does at start-up: the training kernels load from the cache

PARTITIONS = 2

CONFIG = """\
kafka:
  bootstrap_servers: {bootstrap}
  group_id: {group}
  auto_offset_reset: earliest   # events are produced before the group joins
  max_poll_records: 5000
  poll_timeout_ms: 100
state_dir: {state_dir}
checkpoint: {{interval_seconds: 10}}
metrics: {{host: 127.0.0.1, port: 0}}
logging: {{level: WARNING}}
detectors:
  - name: bench
    topics: [{topic}]
    entity: host
    timestamp: {{field: ts, unit: s}}
    features: [cpu]
    time_features: {{time_of_day: true, day_of_week: true, log_gap: true}}
    model: {{type: gru, hidden: 32}}
    training: {{background: true, every_events: 200000, every_seconds: 300}}
    outputs: {{anomalies_topic: {topic}.anomalies}}
"""


def cpu_model() -> str:
    try:
        for line in subprocess.run(["lscpu"], capture_output=True, text=True).stdout.splitlines():
            if line.startswith("Model name:"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def fill(bootstrap: str, topic: str, n: int, n_entities: int) -> None:
    rng = np.random.default_rng(0)
    producer = KafkaProducer(bootstrap_servers=bootstrap, linger_ms=20, batch_size=512 * 1024,
                             compression_type=None, acks=1)
    steps = -(-n // n_entities)
    keys = [f"host-{e:05d}".encode() for e in range(n_entities)]
    level = rng.uniform(10, 90, n_entities)
    sent = 0
    for s in range(steps):
        ts = 1_700_000_000 + 60 * s
        noise = rng.normal(0, 2, n_entities)
        for e in range(min(n_entities, n - sent)):
            producer.send(topic, key=keys[e], value=b'{"host":"%s","ts":%d,"cpu":%.3f}'
                          % (keys[e], ts, level[e] + noise[e]))
        sent += min(n_entities, n - sent)
    producer.flush()
    producer.close()


def bare_loop(bootstrap: str, topic: str, n: int) -> float:
    consumer = KafkaConsumer(topic, bootstrap_servers=bootstrap, group_id=f"bare-{time.time_ns()}",
                             auto_offset_reset="earliest", enable_auto_commit=False, max_poll_records=5000)
    seen, started = 0, None
    loads = orjson.loads
    while seen < n:
        for records in consumer.poll(timeout_ms=500).values():
            if started is None:
                started = time.perf_counter()
            for r in records:
                loads(r.value)
            seen += len(records)
    took = time.perf_counter() - started
    consumer.close()
    return n / took


def timed_runner(cfg, topic: str, n: int) -> tuple[float, Runner]:
    """Run a daemon on ``cfg`` in a thread; seconds from its first consumed record to its ``n``-th,
    and the stopped runner (its registry holds the run's metrics). Kernels are compiled first."""
    Detector(cfg.detectors[0], background=False).close()   # load/compile kernels before timing
    runner = Runner(cfg, registry=CollectorRegistry(), http=False)
    thread = threading.Thread(target=runner.run, daemon=True)
    thread.start()
    reg = runner.registry
    consumed = lambda: reg.get_sample_value("rnnstream_events_consumed_total", {"topic": topic}) or 0.0  # noqa: E731
    while consumed() == 0:
        time.sleep(0.01)
    started = time.perf_counter()
    while consumed() < n:
        time.sleep(0.01)
    took = time.perf_counter() - started
    runner.stop()
    thread.join(60)
    return took, runner


def daemon_run(bootstrap: str, topic: str, n: int, state_dir: str) -> tuple[float, Runner]:
    cfg = load_config_text(CONFIG.format(bootstrap=bootstrap, group=f"daemon-{time.time_ns()}",
                                         state_dir=state_dir, topic=topic))
    took, runner = timed_runner(cfg, topic, n)
    processed = runner.registry.get_sample_value("rnnstream_events_processed_total", {"detector": "bench"})
    assert processed == n, f"processed {processed} of {n}"
    return n / took, runner


def measure(kind: str, bootstrap: str, topic: str, n: int, state_dir: str) -> float:
    """Events/s of one loop, measured in a fresh process (no heap or GC state carried over)."""
    out = subprocess.run([sys.executable, __file__, "--measure", kind, "--bootstrap", bootstrap,
                          "--topic", topic, "--events", str(n), "--state-dir", state_dir],
                         capture_output=True, text=True, check=True).stdout
    return float(out.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--entities", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--measure", choices=["bare", "daemon"], help=argparse.SUPPRESS)
    parser.add_argument("--bootstrap", help=argparse.SUPPRESS)
    parser.add_argument("--topic", help=argparse.SUPPRESS)
    parser.add_argument("--state-dir", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure == "bare":
        print(bare_loop(args.bootstrap, args.topic, args.events))
        return
    if args.measure == "daemon":
        print(daemon_run(args.bootstrap, args.topic, args.events, args.state_dir)[0])
        return
    with EmbeddedKafka(heap="1g") as broker, tempfile.TemporaryDirectory() as tmp:
        topic = "bench-events"
        broker.create_topics([(topic, PARTITIONS), (f"{topic}.anomalies", 1)])
        t0 = time.perf_counter()
        fill(broker.bootstrap, topic, args.events, args.entities)
        print(f"filled {args.events} events over {args.entities} entities in {time.perf_counter() - t0:.1f} s")
        bares, daemons = [], []
        for r in range(args.rounds):  # alternate, so both see the same machine load
            bares.append(measure("bare", broker.bootstrap, topic, args.events, tmp))
            daemons.append(measure("daemon", broker.bootstrap, topic, args.events, str(Path(tmp) / f"state{r}")))
            print(f"round {r + 1}: bare {bares[-1]:,.0f} events/s, daemon {daemons[-1]:,.0f} events/s, "
                  f"ratio {daemons[-1] / bares[-1]:.2f}", flush=True)
        bare, daemon = float(np.median(bares)), float(np.median(daemons))
        print(f"(a) bare poll + orjson.loads: median {bare:,.0f} events/s")
        print(f"(b) daemon (GRU H=32, time features, background training): median {daemon:,.0f} events/s")
        print(f"ratio of medians daemon/bare: {daemon / bare:.2f} (target >= 0.8); "
              f"{args.rounds} rounds; CPU: {cpu_model()}, {os.cpu_count()} cores")

if __name__ == "__main__":
    main()
