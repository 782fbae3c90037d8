"""``make demo``: the daemon doing its main job, end to end, on this machine.

1. starts a real single-node Apache Kafka (``rnnstream.embedded``) on 127.0.0.1 and creates the topics;
2. starts the daemon (``rnnstream.daemon.runner.Runner``) with the embedded configuration below;
3. replays five real NAB series (``rnnstream/demo_data``) as five entities of one stream, in
   accelerated time, through Kafka;
4. prints every anomaly event as it arrives on the anomalies topic, marked when it falls inside a
   labelled anomaly window, and the metrics URL; then a summary.

Ctrl-C stops everything at any point (broker, daemon, temporary state). ``--keep`` keeps the daemon and
its metrics endpoint up after the replay until Ctrl-C.
"""

from __future__ import annotations

import argparse
import gzip
import json
import socket
import sys
import tempfile
import threading
import time
from importlib import resources
from pathlib import Path

import numpy as np
import orjson

CONFIG = """
kafka:
  bootstrap_servers: {bootstrap}
  group_id: rnnstream-demo
  auto_offset_reset: earliest   # the replay may start before the daemon joins
state_dir: {state_dir}
checkpoint: {{interval_seconds: 10}}
metrics: {{host: 127.0.0.1, port: {port}}}
logging: {{level: WARNING}}
detectors:
  - name: demo
    topics: [demo.metrics]
    entity: series
    timestamp: {{field: ts, unit: s}}
    features: [value]
    idle_ttl_seconds: 1.0e+9
    late_tolerance_seconds: 1.0e+9
    time_features: {{daily_profile_bins: 24}}
    model: {{type: gru, hidden: 16}}
    training: {{every_events: 256, every_seconds: 0, min_events: 128, window: 128, batch_windows: 16,
               steps: 10, budget: 1000}}
    scoring: {{novelty_tolerance: 0.01, profile_cap: 0.75, scale_floor: 0.01}}
    outputs: {{anomalies_topic: demo.anomalies, dead_letter_topic: demo.deadletter}}
"""


def load_series() -> tuple[dict[str, tuple[np.ndarray, np.ndarray]], dict[str, list]]:
    """Each bundled series as (epoch seconds, values), and its labelled windows (epoch seconds)."""
    data = resources.files("rnnstream") / "demo_data"
    series = {}
    for item in sorted(data.iterdir(), key=lambda p: p.name):
        if item.name.endswith(".csv.gz"):
            lines = gzip.decompress(item.read_bytes()).decode().splitlines()[1:]
            ts = np.array([line.split(",")[0] for line in lines], dtype="datetime64[s]").astype(np.float64)
            values = np.array([float(line.split(",")[1]) for line in lines])
            series[item.name[: -len(".csv.gz")]] = (ts, values)
    windows = json.loads((data / "windows.json").read_text())
    as_s = lambda text: np.datetime64(text, "s").astype(np.float64)  # noqa: E731
    return series, {k: [(as_s(a), as_s(b)) for a, b in v] for k, v in windows.items()}


def interleave(series: dict[str, tuple[np.ndarray, np.ndarray]]) -> list[tuple[float, bytes, bytes]]:
    """All events as (relative time, key, JSON value), ordered as if every series started together."""
    events = []
    for name, (ts, values) in series.items():
        rel = ts - ts[0]
        for t_rel, t, v in zip(rel.tolist(), ts.tolist(), values.tolist()):
            events.append((t_rel, name.encode(), orjson.dumps({"series": name, "ts": t, "value": v})))
    events.sort(key=lambda e: e[0])
    return events


def free_port(preferred: int) -> int:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", preferred))
            return preferred
        except OSError:
            s.bind(("127.0.0.1", 0))
            return s.getsockname()[1]


def print_anomalies(bootstrap: str, windows: dict, stop: threading.Event, seen: list) -> None:
    from kafka import KafkaConsumer

    consumer = KafkaConsumer("demo.anomalies", bootstrap_servers=bootstrap, auto_offset_reset="earliest",
                             enable_auto_commit=False, consumer_timeout_ms=500)
    while not stop.is_set():
        for record in consumer:
            event = orjson.loads(record.value)
            t = event["event_time"]
            inside = any(a <= t <= b for a, b in windows.get(event["entity"], []))
            seen.append((event["entity"], t, inside))
            f = event["features"]["value"]
            print(f"  ANOMALY {event['timestamp'][:16]}  {event['entity']:<36} score {event['score']:.3f}  "
                  f"observed {f['observed']:.4g} predicted {f['predicted']:.4g}"
                  f"{'  <- labelled anomaly window' if inside else ''}", flush=True)
            if stop.is_set():
                break
    consumer.close()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m rnnstream.demo", description=__doc__.split("\n")[0])
    ap.add_argument("--rate", type=float, default=4000.0, help="events per second to replay")
    ap.add_argument("--keep", action="store_true", help="keep the daemon up after the replay until Ctrl-C")
    args = ap.parse_args(argv)

    from kafka import KafkaProducer
    from prometheus_client import CollectorRegistry

    from .config import load_config_text
    from .daemon.runner import Runner
    from .embedded import EmbeddedKafka

    series, windows = load_series()
    events = interleave(series)
    print(f"demo data: {len(events)} events of {len(series)} NAB series ({', '.join(series)})")
    print("starting Apache Kafka on 127.0.0.1 (the first run fetches its jars with Maven) ...", flush=True)
    stop = threading.Event()
    with EmbeddedKafka() as kafka, tempfile.TemporaryDirectory(prefix="rnnstream-demo-") as tmp:
        kafka.create_topics([("demo.metrics", 2), ("demo.anomalies", 1), ("demo.deadletter", 1)])
        port = free_port(9108)
        config = load_config_text(CONFIG.format(bootstrap=kafka.bootstrap, state_dir=Path(tmp) / "state",
                                                port=port))
        runner = Runner(config, registry=CollectorRegistry())
        daemon = threading.Thread(target=runner.run, name="rnnstream-daemon", daemon=True)
        seen: list = []
        printer = threading.Thread(target=print_anomalies, args=(kafka.bootstrap, windows, stop, seen), daemon=True)
        try:
            daemon.start()
            runner.started.wait(120)
            print(f"kafka {kafka.bootstrap}; daemon up; metrics: http://127.0.0.1:{port}/metrics "
                  f"(/healthz, /readyz)", flush=True)
            printer.start()
            producer = KafkaProducer(bootstrap_servers=kafka.bootstrap, linger_ms=20)
            started = time.monotonic()
            for k, (_, key, value) in enumerate(events):
                producer.send("demo.metrics", key=key, value=value)
                ahead = k / args.rate - (time.monotonic() - started)
                if ahead > 0.05:
                    time.sleep(ahead)
            producer.flush()
            producer.close()
            consumed = lambda: runner.registry.get_sample_value(  # noqa: E731
                "rnnstream_events_consumed_total", {"topic": "demo.metrics"}) or 0
            deadline = time.monotonic() + 120
            while consumed() < len(events) and time.monotonic() < deadline:
                time.sleep(0.2)
            time.sleep(2.0)  # let the last anomalies reach the printer
            inside = sum(1 for *_, i in seen if i)
            hit = {(e, k) for e, t, i in seen if i for k, (a, b) in enumerate(windows.get(e, [])) if a <= t <= b}
            n_windows = sum(len(v) for v in windows.values())
            print(f"replayed {len(events)} events in {time.monotonic() - started:.0f}s: {len(seen)} anomalies, "
                  f"{inside} inside labelled windows, {len(hit)} of {n_windows} labelled windows detected")
            if args.keep:
                print("daemon still running; Ctrl-C to stop", flush=True)
                while True:
                    time.sleep(1)
        except KeyboardInterrupt:
            print("\nstopping ...")
        finally:
            stop.set()
            runner.stop()
            daemon.join(30)
            printer.join(5)
    print("stopped: daemon, Kafka and temporary state")
    return 0


if __name__ == "__main__":
    sys.exit(main())
