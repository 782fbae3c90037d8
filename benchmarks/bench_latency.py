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

Before the first case the fresh broker gets ``--broker-warmup`` seconds of traffic without a daemon
(``warm_broker``): the "start-up backlog" every invocation's first case showed (p99 growing to 1-4 s in
its first seconds) was the broker's, not the daemon's. ``--probe-input`` shows it: a second reader,
of the input topic (stamped by the broker at append), per second. ``--variants`` runs each case again
with settings added to the daemon's ``kafka`` section; ``--profile DIR`` samples the daemon with py-spy.

Prints p50/p99/p99.9/max over ``--duration`` seconds after ``--warmup`` seconds (the p99 of the first
seconds with scores is reported apart), the worst seconds with what the daemon logged around them
(checkpoints, retrainings), the daemon's CPU time per event from its assignment on, its polls (scored
batches) a second, the events published against scored, and the machine.
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
{kafka_extra}state_dir: {state_dir}
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


def consume(bootstrap: str, topic: str, seconds: float, out: str, field: str = "event_time") -> None:
    """Read ``topic`` for ``seconds``; save, for every score, its arrival time, its latency (arrival
    minus the event's ``ts``) and the score record's own Kafka timestamp (the daemon's producer sets it
    when it publishes: the split between the daemon's side and the way back) to ``out`` (.npy).

    Each record is stamped as soon as the client hands it over: the reader blocks for the first record
    (``poll``) and then takes only what is already there, never waiting to fill a batch (a
    ``consume(1000, timeout=0.05)`` had added up to 50 ms to every latency at these rates)."""
    from rnnstream.daemon import scoresbatch      # reads either version (a --baseline daemon's too)

    arrivals: list[float] = []
    latencies: list[float] = []
    published: list[float] = []
    loads = orjson.loads

    def take(value: bytes, created_ms: float, now: float) -> None:
        if value.startswith(b'{"schema":'):        # batched scores (per-record values start with event_id)
            times = scoresbatch.decode(value)["event_time"].tolist()
        else:
            times = (loads(value)[field],)
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


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of process ``pid`` so far, every thread included."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


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


def histogram_count(text: str, name: str) -> float:
    """Observations of Prometheus histogram ``name`` (summed over labels)."""
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(name + "_count"))


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
             code: str | None = None, kafka_extra: str = "") -> dict:
    """One measured run; the daemon imports ``rnnstream`` from ``code`` when given (``--baseline``),
    with ``kafka_extra`` (``key: value`` pairs, comma separated) added to its ``kafka`` section."""
    topic = f"lat-{rate}-{time.time_ns() % 10**9}"
    input_topic = (topic, PARTITIONS)
    if args.probe_input:   # the broker stamps each input record when it appends it: the probe's split
        from kafka.admin import NewTopic

        input_topic = NewTopic(topic, PARTITIONS, 1, topic_configs={"message.timestamp.type": "LogAppendTime"})
    admin_create([input_topic, (f"{topic}.scores", PARTITIONS), (f"{topic}.anomalies", 1)])
    cfg = tmp / f"{topic}.yaml"
    port = free_port()
    cfg.write_text(CONFIG.format(bootstrap=bootstrap, group=f"g-{topic}", state_dir=tmp / f"state-{topic}",
                                 port=port, topic=topic, scores_format=scores_format,
                                 kafka_extra="".join(f"  {kv.strip()}\n" for kv in kafka_extra.split(",") if kv.strip())))
    log_path = tmp / f"{topic}.log"
    total = args.warmup + args.duration
    lat_file = tmp / f"{topic}.npy"
    me = [sys.executable, __file__]
    env = dict(os.environ)
    if code:
        env["PYTHONPATH"] = code
    daemon = subprocess.Popen([sys.executable, "-m", "rnnstream", "run", "-c", str(cfg)], cwd=tmp, env=env,
                              stdout=open(log_path, "wb"), stderr=subprocess.STDOUT)
    if args.profile:   # py-spy samples every thread of the daemon until it exits; raw stacks into DIR
        Path(args.profile).mkdir(parents=True, exist_ok=True)
        subprocess.Popen(["py-spy", "record", "-r", "100", "--threads", "--nonblocking", "-f", "raw", "-p",
                          str(daemon.pid), "-o", str(Path(args.profile) / f"{rate}-{scores_format}.txt")],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 120
        while b"partitions assigned" not in log_path.read_bytes():
            if daemon.poll() is not None or time.time() > deadline:
                raise SystemExit(f"the daemon did not start:\n{log_path.read_text()[-3000:]}")
            time.sleep(0.1)
        started = time.time()
        cpu_at_start = cpu_seconds(daemon.pid)   # what start-up cost is left out of the CPU per event
        consumer = subprocess.Popen(me + ["--role", "consume", "--bootstrap", bootstrap, "--topic", f"{topic}.scores",
                                          "--seconds", str(total + 5), "--out", str(lat_file)])
        probe = None
        if args.probe_input:   # a second reader, of the input topic: the broker's and producer's share
            probe = subprocess.Popen(me + ["--role", "consume", "--bootstrap", bootstrap, "--topic", topic, "--field", "ts",
                                           "--seconds", str(total + 5), "--out", str(tmp / f"{topic}-input.npy")])
        producer = subprocess.run(me + ["--role", "produce", "--bootstrap", bootstrap, "--topic", topic,
                                        "--rate", str(rate), "--seconds", str(total), "--entities", str(args.entities)],
                                  capture_output=True, text=True, check=True)
        sent = json.loads(producer.stdout.strip().splitlines()[-1])["sent"]
        consumer.wait(60)
        if probe is not None:
            probe.wait(60)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as resp:
            metrics = resp.read().decode()
        cpu_s = cpu_seconds(daemon.pid) - cpu_at_start
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
    if not steady.any():
        raise SystemExit(f"no score read back in the measured seconds ({len(latencies)} in all): the daemon "
                         f"fell behind by more than the run; its log: {log_path}")
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
    # ... split like the whole run: the daemon's side (to the score's publication) and the way back
    first_split = [(s, float(np.percentile(((published - (arrivals - latencies)) * 1000)[seconds == s], 99)),
                    float(np.percentile(((arrivals - published) * 1000)[seconds == s], 99))) for s in first]
    events = daemon_events(log_path)
    probe_seconds = None
    if args.probe_input:
        p_arr, p_lat, p_app = np.load(tmp / f"{topic}-input.npy")
        p_sec = np.floor(p_arr - started).astype(int)
        to_append = (p_app - (p_arr - p_lat)) * 1000      # event ts to the broker's append time
        p99 = lambda v: float(np.percentile(v, 99))  # noqa: E731
        probe_seconds = [(int(s), p99(p_lat[p_sec == s] * 1000), p99(to_append[p_sec == s]))
                         for s in np.unique(p_sec)[:6]]
        p_steady = ((p_arr - started) >= args.warmup) & ((p_arr - started) < total)
        probe_seconds.append(("teady", p99(p_lat[p_steady] * 1000), p99(to_append[p_steady])))
    return {"rate": rate, "format": scores_format, "sent": sent, "scored": int(len(latencies)), "steady_n": int(steady.sum()),
            "p50": float(np.percentile(lat_ms, 50)), "p99": float(np.percentile(lat_ms, 99)),
            "p999": float(np.percentile(lat_ms, 99.9)), "max": float(lat_ms.max()),
            "to_published": [float(np.percentile(to_published, q)) for q in (50, 99)],
            "to_read": [float(np.percentile(to_read, q)) for q in (50, 99)],
            "first_seconds": [(s, per_second[s]) for s in first], "first_split": first_split,
            "per_second": per_second, "events": [(t - started, m, d) for t, m, d in events],
            "target": target, "probe": probe_seconds, "cpu_us_per_event": cpu_s / max(len(latencies), 1) * 1e6, "cpu_share": cpu_s / (time.time() - started),
            "inside": histogram_quantiles(metrics, "rnnstream_event_to_score_latency_seconds"),
            "batch": histogram_quantiles(metrics, "rnnstream_batch_duration_seconds"),
            "batches_per_s": histogram_count(metrics, "rnnstream_batch_duration_seconds") / total}


def warm_broker(bootstrap: str, admin_create, rate: int, seconds: float, tmp: Path) -> None:
    """Produce at ``rate`` into a scratch topic, read back by a reader, for ``seconds``, no daemon.

    A fresh broker's first seconds of traffic are slow: in the first case of an invocation a reader of
    the *input* topic, with no daemon involved, saw its p99 grow to 1-4.5 s, nearly all of it before the
    broker's append time (a LogAppendTime topic, ``--probe-input``), while in later cases it stayed
    at tens of ms. The JVM compiling the broker's produce and fetch paths on a loaded 2-core machine
    fits; whatever it is, it belongs to the broker, not to the daemon being measured."""
    topic = f"warmup-{time.time_ns() % 10**9}"
    admin_create([(topic, PARTITIONS)])
    me = [sys.executable, __file__]
    out = tmp / f"{topic}.npy"
    reader = subprocess.Popen(me + ["--role", "consume", "--bootstrap", bootstrap, "--topic", topic, "--field", "ts",
                                    "--seconds", str(seconds + 3), "--out", str(out)])
    subprocess.run(me + ["--role", "produce", "--bootstrap", bootstrap, "--topic", topic, "--rate", str(rate),
                         "--seconds", str(seconds), "--entities", "1000"], capture_output=True, check=True)
    reader.wait(60)
    arrivals, latencies, _ = np.load(out)
    rel = arrivals - arrivals.min() if len(arrivals) else arrivals
    last = latencies[rel >= rel.max() - 3] * 1000 if len(rel) else latencies
    print(f"broker warm-up: {seconds:g} s at {rate:,} events/s through a scratch topic, no daemon: p99 "
          f"{np.percentile(latencies * 1000, 99):.0f} ms over the whole warm-up, "
          f"{np.percentile(last, 99) if len(last) else float('nan'):.0f} ms in its last 3 s")


def report(res: dict, args) -> None:
    print(f"-- {res['rate']:,} events/s over {args.entities:,} entities, scores_format {res['format']}: "
          f"{res['sent']:,} sent, {res['scored']:,} scores read back")
    print(f"   steady state ({args.duration:g} s after {args.warmup:g} s of warm-up, {res['steady_n']:,} scores): "
          f"p50 {res['p50']:.1f} ms, p99 {res['p99']:.1f} ms, p99.9 {res['p999']:.1f} ms, max {res['max']:.1f} ms "
          f"(target p99 <= {res['target']:g} ms)")
    print(f"   split: event ts to the score record's timestamp (set when the daemon publishes) p50 "
          f"{res['to_published'][0]:.1f} ms, p99 {res['to_published'][1]:.1f} ms; from there to the reader p50 "
          f"{res['to_read'][0]:.1f} ms, p99 {res['to_read'][1]:.1f} ms (ms clocks: ±1 ms)")
    print(f"   daemon CPU time from the assignment on: {res['cpu_us_per_event']:.0f} µs per event scored, "
          f"{res['cpu_share']:.2f} of a core")
    print("   start (seconds after the assignment): p99 of the first seconds with scores: "
          + ", ".join(f"s{s}: {p:.0f} ms" for s, p in res["first_seconds"]))
    print("   ... of which event to published, published to read back (p99 of each): "
          + ", ".join(f"s{s}: {a:.0f} + {b:.0f} ms" for s, a, b in res["first_split"]))
    print(f"   inside the daemon (record timestamp to score computed, whole run, bucket bounds): "
          f"p50 <= {res['inside'][0] * 1000:g} ms, p99 <= {res['inside'][1] * 1000:g} ms; "
          f"scoring one poll's batch: p50 <= {res['batch'][0] * 1000:g} ms, p99 <= {res['batch'][1] * 1000:g} ms, "
          f"{res['batches_per_s']:.0f} batches a second")
    if res.get("probe"):
        print("   a reader of the INPUT topic (no daemon in the way), p99 per second (of which event ts to the "
              "broker's append): " + ", ".join(f"s{s}: {p:.0f} ({a:.0f}) ms" for s, p, a in res["probe"]))
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
    parser.add_argument("--profile", metavar="DIR", help="run each daemon under py-spy (every thread, 200 Hz) "
                        "and save its raw stacks in DIR (py-spy is not a dependency: pip install py-spy)")
    parser.add_argument("--variants", nargs="*", default=[], metavar="'KEY: VALUE, ...'",
                        help="also run each case with these settings added to the daemon's kafka section "
                        "(one run per variant, before the run with the configuration as it is)")
    parser.add_argument("--broker-warmup", type=float, default=20.0, metavar="SECONDS",
                        help="traffic through the fresh broker before the first case, without a daemon "
                        "(see warm_broker; 0: none)")
    parser.add_argument("--probe-input", action="store_true", help="also read the input topic in a separate "
                        "process and print its latency per second (what the broker and producer add, without the daemon)")
    parser.add_argument("--field", default="event_time", help=argparse.SUPPRESS)
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
        consume(args.bootstrap, args.topic, args.seconds, args.out, args.field)
        return
    from bench_daemon import ensure_confluent

    why = ensure_confluent()
    client = "confluent-kafka" if why is None else f"kafka-python ({why})"
    from rnnstream.embedded import EmbeddedKafka

    print(machine_line())
    print(f"producer and consumer: {client}")
    with EmbeddedKafka(heap="1g") as broker, tempfile.TemporaryDirectory() as tmp:
        if args.broker_warmup > 0:
            warm_broker(broker.bootstrap, broker.create_topics, max(args.rates), args.broker_warmup, Path(tmp))
        for rate in args.rates:
            for fmt in args.formats:
                if args.baseline:
                    base = run_rate(broker.bootstrap, broker.create_topics, rate, fmt, args, Path(tmp), args.baseline)
                    print(f"== baseline ({args.baseline}):")
                    report(base, args)
                    print("== this code:")
                for extra in args.variants:
                    print(f"== kafka settings added: {extra}")
                    report(run_rate(broker.bootstrap, broker.create_topics, rate, fmt, args, Path(tmp),
                                    kafka_extra=extra), args)
                if args.variants:
                    print("== the configured settings:")
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
