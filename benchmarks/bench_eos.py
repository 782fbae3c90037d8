"""What state in Kafka costs: the daemon with file checkpoints, with the changelog (at least once) and
with exactly-once transactions, at a 1 s commit interval, against a local embedded broker.

    python benchmarks/bench_eos.py [--events 300000] [--entities 10000] [--rounds 3] [--rate 2000]

Throughput: for each mode, in a fresh process and consumer group over the same pre-filled topic
(bench_daemon's events): events/s from the first record to the last one consumed; the p99 of the
commit's duration (the pause a checkpoint or transaction adds to the loop, from the histogram's
buckets: an upper bound); changelog bytes per event. The modes alternate within each round, so all
see the same machine load; medians over the rounds.

Latency: for each mode once, a fresh topic fed at ``--rate`` events/s (each event's ``ts`` its send
time, bench_latency.py's producer) to a daemon publishing every score (``scores_format: batch``);
a ``read_committed`` consumer takes each score's latency as its arrival time minus that ``ts``, so
with exactly once it includes the wait for the transaction's commit. p50/p99 over ``--duration``
seconds after ``--warmup``.

Then the time to restore every partition from the changelog alone (empty cache), per million
entities. Benchmarks measure; they assert nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from kafka import TopicPartition
from prometheus_client import CollectorRegistry

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_daemon import CONFIG, cpu_model, fill, timed_runner  # noqa: E402

from rnnstream.config import load_config_text  # noqa: E402
from rnnstream.daemon.changelog import Reader, restore_consumer  # noqa: E402
from rnnstream.daemon.checkpoint import CheckpointStore  # noqa: E402
from rnnstream.daemon.statelog import StateLog  # noqa: E402
from rnnstream.embedded import EmbeddedKafka  # noqa: E402
from rnnstream.metrics import Metrics  # noqa: E402

PARTITIONS = 2
MODES = {
    "files": "",
    "changelog": "processing: {changelog: true}",
    "exactly_once": "processing: {guarantee: exactly_once, changelog: true, transactional_id: 'bench-{group_id}'}",
}


def _config(mode: str, bootstrap: str, topic: str, state_dir: str, group: str, scores: bool = False):
    text = CONFIG.format(bootstrap=bootstrap, group=group, state_dir=state_dir, topic=topic)
    text = text.replace("checkpoint: {interval_seconds: 10}", "checkpoint: {interval_seconds: 1}")
    if scores:   # every event's score, batched per poll and partition (what the latency is read from)
        text = text.replace(f"outputs: {{anomalies_topic: {topic}.anomalies}}",
                            f"outputs: {{anomalies_topic: {topic}.anomalies, scores_topic: {topic}.scores, "
                            "scores_format: batch}")
    return load_config_text(MODES[mode] + "\n" + text)


def _p99(reg, name: str) -> float:
    """Upper bound of the 99th percentile of histogram ``name`` (no labels), from its buckets."""
    buckets = []
    for metric in reg.collect():
        for s in metric.samples:
            if s.name == name + "_bucket":
                buckets.append((float(s.labels["le"]), s.value))
    buckets.sort()
    total = buckets[-1][1] if buckets else 0
    for le, count in buckets:
        if total and count >= 0.99 * total:
            return le
    return float("nan")


def run_latency(mode: str, bootstrap: str, topic: str, state_dir: str, rate: int, warmup: float, duration: float,
                entities: int) -> dict:
    """Latency of ``mode`` at ``rate`` events/s on the empty ``topic`` (see the module docstring)."""
    import threading

    from rnnstream.daemon.runner import Runner

    cfg = _config(mode, bootstrap, topic, state_dir, f"lat-{mode}-{time.time_ns()}", scores=True)
    runner = Runner(cfg, registry=CollectorRegistry(), http=False)
    thread = threading.Thread(target=runner.run, daemon=True)
    thread.start()
    deadline = time.time() + 120
    while len(runner.units) < PARTITIONS:
        if time.time() > deadline or not thread.is_alive():
            raise SystemExit(f"{mode}: the daemon was not assigned its partitions")
        time.sleep(0.1)
    out = Path(state_dir) / "latency.npy"
    total = warmup + duration
    started = time.time()
    consumer = subprocess.Popen([sys.executable, __file__, "--consume", f"{topic}.scores", "--bootstrap", bootstrap,
                                 "--seconds", str(total + 5), "--out", str(out)])
    subprocess.run([sys.executable, str(Path(__file__).with_name("bench_latency.py")), "--role", "produce",
                    "--bootstrap", bootstrap, "--topic", topic, "--rate", str(rate), "--seconds", str(total),
                    "--entities", str(entities)], capture_output=True, check=True)
    consumer.wait(120)
    runner.stop()
    thread.join(60)
    arrivals, latencies = np.load(out)
    rel = arrivals - started
    ms = latencies[(rel >= warmup) & (rel < total)] * 1000
    return {"p50_ms": float(np.percentile(ms, 50)), "p99_ms": float(np.percentile(ms, 99)), "n": int(ms.size)}


def consume(bootstrap: str, topic: str, seconds: float, out: str) -> None:
    """Read ``topic`` (read_committed) for ``seconds``; save (arrival, latency) of every score to ``out``."""
    from kafka import KafkaConsumer

    from rnnstream.daemon import scoresbatch

    arrivals: list[float] = []
    latencies: list[float] = []
    c = KafkaConsumer(topic, bootstrap_servers=bootstrap, group_id=None, auto_offset_reset="earliest",
                      enable_auto_commit=False, fetch_max_wait_ms=5, isolation_level="read_committed")
    end = time.time() + seconds
    while time.time() < end:
        for records in c.poll(timeout_ms=50).values():
            now = time.time()
            for r in records:
                for t in scoresbatch.decode(r.value)["event_time"].tolist():
                    arrivals.append(now)
                    latencies.append(now - t)
    c.close()
    np.save(out, np.array([arrivals, latencies]))


def run_mode(mode: str, bootstrap: str, topic: str, n: int, state_dir: str) -> dict:
    cfg = _config(mode, bootstrap, topic, state_dir, f"{mode}-{time.time_ns()}")
    took, runner = timed_runner(cfg, topic, n)
    reg = runner.registry
    written = reg.get_sample_value("rnnstream_changelog_bytes_total", {"detector": "bench"}) or 0.0
    return {"events_per_s": n / took, "commit_p99_s": _p99(reg, "rnnstream_checkpoint_duration_seconds"),
            "changelog_bytes_per_event": written / n, "group": cfg.kafka.group_id}


def restore_all(bootstrap: str, topic: str, group: str) -> tuple[float, int]:
    """Seconds to restore every partition of ``group``'s changelog with an empty cache, and the entities."""
    cfg = _config("exactly_once", bootstrap, topic, tempfile.mkdtemp(), group)
    reader = Reader(lambda: restore_consumer(cfg))
    log = StateLog(cfg, None, reader, CheckpointStore(tempfile.mkdtemp()), Metrics(CollectorRegistry()))
    started, entities = time.perf_counter(), 0
    for p in range(PARTITIONS):
        det, _, _, _ = log.restore(cfg.detectors[0], TopicPartition(topic, p))
        entities += len(det.state)
        det.close()
    reader.close()
    return time.perf_counter() - started, entities


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=300_000)
    parser.add_argument("--entities", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--rate", type=int, default=2000, help="events/s of the latency phase (0: none)")
    parser.add_argument("--warmup", type=float, default=5.0)
    parser.add_argument("--duration", type=float, default=20.0)
    parser.add_argument("--measure", choices=list(MODES), help=argparse.SUPPRESS)
    parser.add_argument("--latency", choices=list(MODES), help=argparse.SUPPRESS)
    parser.add_argument("--consume", help=argparse.SUPPRESS)
    parser.add_argument("--seconds", type=float, help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    parser.add_argument("--bootstrap", help=argparse.SUPPRESS)
    parser.add_argument("--topic", help=argparse.SUPPRESS)
    parser.add_argument("--state-dir", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        print(json.dumps(run_mode(args.measure, args.bootstrap, args.topic, args.events, args.state_dir)))
        return
    if args.latency:
        print(json.dumps(run_latency(args.latency, args.bootstrap, args.topic, args.state_dir, args.rate,
                                     args.warmup, args.duration, args.entities)))
        return
    if args.consume:
        consume(args.bootstrap, args.consume, args.seconds, args.out)
        return
    with EmbeddedKafka(heap="1g") as broker, tempfile.TemporaryDirectory() as tmp:
        topic = "bench-eos"
        broker.create_topics([(topic, PARTITIONS), (f"{topic}.anomalies", 1)])
        fill(broker.bootstrap, topic, args.events, args.entities)
        results: dict[str, list[dict]] = {m: [] for m in MODES}
        for r in range(args.rounds):   # alternate the modes, so all see the same machine load
            for mode in MODES:
                out = subprocess.run([sys.executable, __file__, "--measure", mode, "--bootstrap", broker.bootstrap,
                                      "--topic", topic, "--events", str(args.events),
                                      "--state-dir", str(Path(tmp) / f"{mode}{r}")],
                                     capture_output=True, text=True)
                if out.returncode != 0:
                    sys.exit(f"{mode} failed:\n{out.stderr[-3000:]}")
                out = out.stdout
                results[mode].append(json.loads(out.strip().splitlines()[-1]))
                got = results[mode][-1]
                print(f"round {r + 1} {mode:>12}: {got['events_per_s']:,.0f} events/s, commit p99 <= "
                      f"{got['commit_p99_s']:.3g} s, changelog {got['changelog_bytes_per_event']:.0f} B/event",
                      flush=True)
        base = float(np.median([x["events_per_s"] for x in results["files"]]))
        alo = float(np.median([x["events_per_s"] for x in results["changelog"]]))
        for mode, runs in results.items():
            eps = float(np.median([x["events_per_s"] for x in runs]))
            print(f"{mode:>12}: median {eps:,.0f} events/s ({eps / base:.2f} of file checkpoints, "
                  f"{eps / alo:.2f} of the changelog at least once), "
                  f"commit p99 <= {max(x['commit_p99_s'] for x in runs):.3g} s, "
                  f"changelog {np.median([x['changelog_bytes_per_event'] for x in runs]):.0f} B/event")
        latency: dict[str, dict] = {}
        for mode in MODES if args.rate else ():
            lat_topic = f"lat-{mode}"
            broker.create_topics([(lat_topic, PARTITIONS), (f"{lat_topic}.scores", PARTITIONS), (f"{lat_topic}.anomalies", 1)])
            state_dir = Path(tmp) / f"lat-{mode}"
            state_dir.mkdir()
            out = subprocess.run([sys.executable, __file__, "--latency", mode, "--bootstrap", broker.bootstrap,
                                  "--topic", lat_topic, "--state-dir", str(state_dir), "--rate", str(args.rate),
                                  "--warmup", str(args.warmup), "--duration", str(args.duration),
                                  "--entities", str(args.entities)], capture_output=True, text=True)
            if out.returncode != 0:
                sys.exit(f"{mode} latency failed:\n{out.stderr[-3000:]}")
            latency[mode] = json.loads(out.stdout.strip().splitlines()[-1])
            got = latency[mode]
            print(f"latency at {args.rate:,} events/s {mode:>12}: p50 {got['p50_ms']:.0f} ms, p99 {got['p99_ms']:.0f} ms "
                  f"({got['n']:,} scores read back, read_committed)", flush=True)
        seconds, entities = restore_all(broker.bootstrap, topic, results["exactly_once"][-1]["group"])
        from report import figure

        for mode, runs in results.items():
            eps = float(np.median([x["events_per_s"] for x in runs]))
            lat = (f"; p99 latency {latency[mode]['p99_ms']:.0f} ms at {args.rate:,} events/s"
                   if mode in latency else "")
            figure(f"daemon with state in {mode.replace('_', ' ')}, commit every 1 s ({args.events // 1000} k events)",
                   f"{eps / 1e3:,.0f} k events/s, **{eps / base:.2f}x** file checkpoints; commit p99 <= "
                   f"{max(x['commit_p99_s'] for x in runs):.3g} s{lat}")
        print(f"restore from the changelog alone: {entities} entities in {seconds:.2f} s "
              f"= {seconds / max(entities, 1) * 1e6:.1f} s per million entities")
        print(f"{args.events} events over {args.entities} entities, {PARTITIONS} partitions, commit every 1 s; "
              f"CPU: {cpu_model()}, {os.cpu_count()} cores; load average {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
