"""Latency of the daemon under a steady load, measured from outside: produce time to score read back.

    python benchmarks/bench_latency.py [--rates 5000 20000] [--formats record batch] [--entities 10000]
                                       [--warmup 15] [--duration 30] [--baseline DIR]

Per rate and scores format, against a local embedded broker: a fresh input topic (2 partitions) and scores topic; the
daemon (`rnnstream run`, its own process, default settings but every event's score published, the
background training and 30 s checkpoints on); a producer process sending the events at a steady rate
over ``--entities`` entities, each event's time (``ts``) the wall clock when it was sent; a consumer
process reading the scores topic, each score's latency its arrival time minus that ``ts``. The
producer and consumer use confluent-kafka when it can be imported or installed (cheap per record, so
they disturb the daemon least on a small machine), else kafka-python.

The reader stamps each score as soon as its client hands the record over (it never waits to fill a
batch), and the latency is also split at the score record's Kafka timestamp, which the daemon's
producer sets when the score is published: event to published, published to read back.
``--baseline DIR`` runs each case a second time, first, with the ``rnnstream`` package in ``DIR``.

Prints p50/p99/p99.9/max over ``--duration`` seconds after ``--warmup`` seconds (the start-up backlog
is reported apart: the p99 of the first seconds with scores), the worst seconds with what the daemon
logged around them (checkpoints, retrainings), the events published against scored, and the machine.
Targets (issue 12): p99 <= 50 ms at 5,000 events/s, <= 100 ms at 20,000 events/s.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from datetime import datetime
from pathlib import Path

import numpy as np
import orjson

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from report import figure, machine_line  # noqa: E402

TARGETS_MS = {5000: 50.0, 20000: 100.0}
PARTITIONS = 2

CONFIG = """\
kafka:
  bootstrap_servers: {bootstrap}
  group_id: {group}
  auto_offset_reset: earliest
state_dir: {state_dir}
metrics: {{host: 127.0.0.1, port: {port}}}
logging: {{level: INFO, loggers: ['rnnstream.daemon=DEBUG']}}
detectors:
  - name: lat
    topics: [{topic}]
    entity: host
    timestamp: {{field: ts, unit: s}}
    features: [cpu]
    outputs: {{anomalies_topic: {topic}.anomalies, scores_topic: {topic}.scores, scores_format: {scores_format}}}
"""


def have_confluent() -> bool:
    try:
        import confluent_kafka  # noqa: F401
        return True
    except ImportError:
        return False


# -- the producer and consumer processes ------------------------------------------------------------

def produce(bootstrap: str, topic: str, rate: int, seconds: float, entities: int) -> None:
    """Send ``rate`` events a second for ``seconds``, in 1 ms steps; each ``ts`` is the send time."""
    rng = np.random.default_rng(1)
    level = rng.uniform(10, 90, entities)
    keys = [f"host-{e:05d}" for e in range(entities)]
    if have_confluent():
        from confluent_kafka import Producer

        p = Producer({"bootstrap.servers": bootstrap, "linger.ms": 1, "acks": "all"})

        def send(key: str, value: bytes) -> None:
            while True:
                try:
                    p.produce(topic, value, key.encode())
                    break
                except BufferError:
                    p.poll(0.001)
            p.poll(0)
        finish = lambda: p.flush(30)  # noqa: E731
    else:
        from kafka import KafkaProducer

        kp = KafkaProducer(bootstrap_servers=bootstrap, linger_ms=1, acks="all", batch_size=256 * 1024)
        send = lambda key, value: kp.send(topic, key=key.encode(), value=value)  # noqa: E731
        finish = lambda: kp.flush(30)  # noqa: E731
    sent, noise = 0, rng.normal(0, 2, 1 << 16)
    started = time.perf_counter()
    end = started + seconds
    while True:
        now = time.perf_counter()
        if now >= end:
            break
        due = int((now - started) * rate)
        while sent < due:
            e = sent % entities
            send(keys[e], b'{"host":"%s","ts":%.6f,"cpu":%.3f}'
                 % (keys[e].encode(), time.time(), level[e] + noise[sent & 0xFFFF]))
            sent += 1
        time.sleep(0.0005)
    finish()
    print(json.dumps({"sent": sent, "seconds": time.perf_counter() - started}))


def consume(bootstrap: str, topic: str, seconds: float, out: str) -> None:
    """Read ``topic`` for ``seconds``; save, for every score, its arrival time, its latency (arrival
    minus the event's ``ts``) and the score record's own Kafka timestamp (the daemon's producer sets it
    when it publishes: the split between the daemon's side and the way back) to ``out`` (.npy).

    Each record is stamped as soon as the client hands it over: the reader blocks for the first record
    (``poll``) and then takes only what is already there, never waiting to fill a batch (a
    ``consume(1000, timeout=0.05)`` had added up to 50 ms to every latency at these rates)."""
    arrivals: list[float] = []
    latencies: list[float] = []
    published: list[float] = []
    loads = orjson.loads

    def take(value: bytes, created_ms: float, now: float) -> None:
        v = loads(value)
        if "schema" in v:
            times = v["event_time"]
        else:
            times = (v["event_time"],)
        for t in times:
            arrivals.append(now)
            latencies.append(now - t)
            published.append(created_ms / 1000.0)

    end = time.time() + seconds
    if have_confluent():
        from confluent_kafka import Consumer

        c = Consumer({"bootstrap.servers": bootstrap, "group.id": f"lat-{time.time_ns()}",
                      "auto.offset.reset": "earliest", "enable.auto.commit": False, "fetch.wait.max.ms": 5})
        c.subscribe([topic])
        while time.time() < end:
            first = c.poll(0.05)                       # returns as soon as one record is there
            if first is None:
                continue
            now = time.time()
            for m in [first] + c.consume(num_messages=10000, timeout=0):   # what is already there
                if m.error() is None:
                    take(m.value(), m.timestamp()[1], now)
        c.close()
    else:
        from kafka import KafkaConsumer

        c = KafkaConsumer(topic, bootstrap_servers=bootstrap, group_id=None, auto_offset_reset="earliest",
                          enable_auto_commit=False, fetch_max_wait_ms=5)
        while time.time() < end:
            for records in c.poll(timeout_ms=50).values():
                now = time.time()
                for r in records:
                    take(r.value, r.timestamp, now)
        c.close()
    np.save(out, np.array([arrivals, latencies, published]))


# -- one measured run --------------------------------------------------------------------------------

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def daemon_events(log_path: Path) -> list[tuple[float, str, float | None]]:
    """(epoch seconds, message, duration_s) of the daemon's checkpoint and training log lines."""
    out = []
    for line in log_path.read_text(errors="replace").splitlines():
        try:
            rec = orjson.loads(line)
        except orjson.JSONDecodeError:
            continue
        if rec.get("msg") in ("checkpoint written", "model retrained", "partitions assigned", "daemon started",
                              "cyclic garbage collected"):
            ts = datetime.fromisoformat(rec["ts"].replace("Z", "+00:00")).timestamp()
            what = rec["msg"] + (f", the loop held {rec['loop_s']:.3f} s" if "loop_s" in rec else "")
            out.append((ts, what, rec.get("duration_s")))
    return out


def histogram_quantiles(text: str, name: str, qs=(0.5, 0.99)) -> list[float]:
    """Upper bounds of quantiles ``qs`` of Prometheus histogram ``name`` (summed over labels)."""
    buckets: dict[float, float] = {}
    for line in text.splitlines():
        if line.startswith(name + "_bucket{"):
            le = line.split('le="', 1)[1].split('"', 1)[0]
            buckets[float(le)] = buckets.get(float(le), 0.0) + float(line.rsplit(" ", 1)[1])
    edges = sorted(buckets)
    total = buckets[edges[-1]] if edges else 0.0
    return [next((le for le in edges if total and buckets[le] >= q * total), float("nan")) for q in qs]


def run_rate(bootstrap: str, admin_create, rate: int, scores_format: str, args, tmp: Path,
             code: str | None = None) -> dict:
    """One measured run; the daemon imports ``rnnstream`` from ``code`` when given (``--baseline``)."""
    topic = f"lat-{rate}-{time.time_ns() % 10**9}"
    admin_create([(topic, PARTITIONS), (f"{topic}.scores", PARTITIONS), (f"{topic}.anomalies", 1)])
    cfg = tmp / f"{topic}.yaml"
    port = free_port()
    cfg.write_text(CONFIG.format(bootstrap=bootstrap, group=f"g-{topic}", state_dir=tmp / f"state-{topic}",
                                 port=port, topic=topic, scores_format=scores_format))
    log_path = tmp / f"{topic}.log"
    total = args.warmup + args.duration
    lat_file = tmp / f"{topic}.npy"
    me = [sys.executable, __file__]
    env = dict(os.environ)
    if code:
        env["PYTHONPATH"] = code
    daemon = subprocess.Popen([sys.executable, "-m", "rnnstream", "run", "-c", str(cfg)], cwd=tmp, env=env,
                              stdout=open(log_path, "wb"), stderr=subprocess.STDOUT)
    try:
        deadline = time.time() + 120
        while b"partitions assigned" not in log_path.read_bytes():
            if daemon.poll() is not None or time.time() > deadline:
                raise SystemExit(f"the daemon did not start:\n{log_path.read_text()[-3000:]}")
            time.sleep(0.1)
        started = time.time()
        consumer = subprocess.Popen(me + ["--role", "consume", "--bootstrap", bootstrap, "--topic", f"{topic}.scores",
                                          "--seconds", str(total + 5), "--out", str(lat_file)])
        producer = subprocess.run(me + ["--role", "produce", "--bootstrap", bootstrap, "--topic", topic,
                                        "--rate", str(rate), "--seconds", str(total), "--entities", str(args.entities)],
                                  capture_output=True, text=True, check=True)
        sent = json.loads(producer.stdout.strip().splitlines()[-1])["sent"]
        consumer.wait(60)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as resp:
            metrics = resp.read().decode()
        fields = Path(f"/proc/{daemon.pid}/stat").read_text().rsplit(")", 1)[1].split()
        cpu_s = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")   # utime + stime
    finally:
        daemon.send_signal(signal.SIGTERM)
        try:
            daemon.wait(30)
        except subprocess.TimeoutExpired:
            daemon.kill()
            daemon.wait(10)
    arrivals, latencies, published = np.load(lat_file)
    rel = arrivals - started
    steady = (rel >= args.warmup) & (rel < total)
    lat_ms = latencies[steady] * 1000
    # Where the time goes: the event's ts to the score record's timestamp (producer, broker, the
    # daemon's fetch, decoding, scoring, publishing), then that timestamp to the reader.
    to_published = (published - (arrivals - latencies))[steady] * 1000
    to_read = (arrivals - published)[steady] * 1000
    target = TARGETS_MS.get(rate, 100.0)
    seconds = np.floor(rel).astype(int)
    per_second = {s: float(np.percentile(latencies[seconds == s] * 1000, 99)) for s in np.unique(seconds)
                  if (seconds == s).sum() > 0}
    first = sorted(per_second)[:5]                 # the first seconds with scores: the start-up backlog
    events = daemon_events(log_path)
    return {"rate": rate, "format": scores_format, "sent": sent, "scored": int(len(latencies)), "steady_n": int(steady.sum()),
            "p50": float(np.percentile(lat_ms, 50)), "p99": float(np.percentile(lat_ms, 99)),
            "p999": float(np.percentile(lat_ms, 99.9)), "max": float(lat_ms.max()),
            "to_published": [float(np.percentile(to_published, q)) for q in (50, 99)],
            "to_read": [float(np.percentile(to_read, q)) for q in (50, 99)],
            "first_seconds": [(s, per_second[s]) for s in first],
            "per_second": per_second, "events": [(t - started, m, d) for t, m, d in events],
            "target": target, "cpu_us_per_event": cpu_s / max(len(latencies), 1) * 1e6, "cpu_share": cpu_s / (time.time() - started),
            "inside": histogram_quantiles(metrics, "rnnstream_event_to_score_latency_seconds"),
            "batch": histogram_quantiles(metrics, "rnnstream_batch_duration_seconds")}


def report(res: dict, args) -> None:
    print(f"-- {res['rate']:,} events/s over {args.entities:,} entities, scores_format {res['format']}: "
          f"{res['sent']:,} sent, {res['scored']:,} scores read back")
    print(f"   steady state ({args.duration:g} s after {args.warmup:g} s of warm-up, {res['steady_n']:,} scores): "
          f"p50 {res['p50']:.1f} ms, p99 {res['p99']:.1f} ms, p99.9 {res['p999']:.1f} ms, max {res['max']:.1f} ms "
          f"(target p99 <= {res['target']:g} ms)")
    print(f"   split: event ts to the score record's timestamp (set when the daemon publishes) p50 "
          f"{res['to_published'][0]:.1f} ms, p99 {res['to_published'][1]:.1f} ms; from there to the reader p50 "
          f"{res['to_read'][0]:.1f} ms, p99 {res['to_read'][1]:.1f} ms (ms clocks: ±1 ms)")
    print(f"   daemon CPU time: {res['cpu_us_per_event']:.0f} µs per event scored, {res['cpu_share']:.2f} of a core "
          f"(start-up included)")
    print("   start (seconds after the assignment): p99 of the first seconds with scores: "
          + ", ".join(f"s{s}: {p:.0f} ms" for s, p in res["first_seconds"]))
    print(f"   inside the daemon (record timestamp to score computed, whole run, bucket bounds): "
          f"p50 <= {res['inside'][0] * 1000:g} ms, p99 <= {res['inside'][1] * 1000:g} ms; "
          f"scoring one poll's batch: p50 <= {res['batch'][0] * 1000:g} ms, p99 <= {res['batch'][1] * 1000:g} ms")
    worst = sorted(res["per_second"].items(), key=lambda kv: -kv[1])[:5]
    print("   worst seconds (p99 ms): " + ", ".join(f"s{s}: {p:.0f}" for s, p in sorted(worst)))
    for t, msg, d in res["events"]:
        if t > -5:
            print(f"   daemon at {t:6.1f} s: {msg}" + (f" ({d:.3f} s)" if d is not None else ""))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rates", type=int, nargs="+", default=[5000, 20000])
    parser.add_argument("--entities", type=int, default=10_000)
    parser.add_argument("--warmup", type=float, default=15.0)
    parser.add_argument("--duration", type=float, default=30.0)
    parser.add_argument("--formats", nargs="+", choices=["record", "batch"], default=["record", "batch"])
    parser.add_argument("--baseline", help="also run each case with the rnnstream package in this directory "
                        "(the code before a change), right after the current code's run")
    parser.add_argument("--role", choices=["produce", "consume"], help=argparse.SUPPRESS)
    parser.add_argument("--bootstrap", help=argparse.SUPPRESS)
    parser.add_argument("--topic", help=argparse.SUPPRESS)
    parser.add_argument("--rate", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--seconds", type=float, help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.role == "produce":
        produce(args.bootstrap, args.topic, args.rate, args.seconds, args.entities)
        return
    if args.role == "consume":
        consume(args.bootstrap, args.topic, args.seconds, args.out)
        return
    from bench_daemon import ensure_confluent

    why = ensure_confluent()
    client = "confluent-kafka" if why is None else f"kafka-python ({why})"
    from rnnstream.embedded import EmbeddedKafka

    print(machine_line())
    print(f"producer and consumer: {client}")
    with EmbeddedKafka(heap="1g") as broker, tempfile.TemporaryDirectory() as tmp:
        for rate in args.rates:
            for fmt in args.formats:
                if args.baseline:
                    base = run_rate(broker.bootstrap, broker.create_topics, rate, fmt, args, Path(tmp), args.baseline)
                    print(f"== baseline ({args.baseline}):")
                    report(base, args)
                    print("== this code:")
                res = run_rate(broker.bootstrap, broker.create_topics, rate, fmt, args, Path(tmp))
                report(res, args)
                figure(f"latency, produce to score read back, {rate:,} events/s over {args.entities // 1000} k entities, "
                       f"scores_format: {fmt}, {args.duration:g} s after {args.warmup:g} s warm-up; daemon CPU "
                       f"{res['cpu_us_per_event']:.0f} µs/event",
                       f"p50 {res['p50']:.0f} ms, **p99 {res['p99']:.0f} ms**, p99.9 {res['p999']:.0f} ms",
                       f"p99 <= {res['target']:g} ms")
    print(machine_line())


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    main()
