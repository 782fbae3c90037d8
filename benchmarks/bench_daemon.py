"""Daemon throughput against a local embedded broker, end to end, next to bare consumer loops.

    python benchmarks/bench_daemon.py [--events 1000000] [--entities 10000] [--rounds 5]

Pre-fills one topic with JSON events ({"host", "ts", "cpu"}, keyed by host), then measures, each in a
fresh process and consumer group over the same topic, alternating in every round so that all see the
same machine load:

- ``kafka-python``: a bare ``KafkaConsumer.poll`` + ``orjson.loads`` of every value;
- ``confluent-kafka``: a bare ``Consumer.consume`` + ``orjson.loads`` loop (librdkafka). Installed into
  this interpreter with pip when missing (a benchmark-only package, not a dependency of rnnstream);
  left out, with the reason printed, when it cannot be;
- ``daemon``: GRU H=32, time features on, background training, anomalies to a topic, checkpoints;
- ``daemon+scores(record)`` / ``daemon+scores(batch)``: the same with ``outputs.scores_topic`` set,
  one record per event / one per poll and partition (``outputs.scores_format``).

``--baseline DIR`` adds the daemon variants again with the ``rnnstream`` package found in ``DIR`` (e.g. an
export of the code before a change: ``git archive main rnnstream | tar -x -C DIR``), named ``base:...``, in
the same rounds: a before/after comparison under the same load.

Each daemon is timed from its first consumed record to its last event scored and every output the
producer holds delivered (``producer.flush()``), the bare loops from their first record to their
last decoded. A daemon run whose group rebalanced after its first record and that then scored
nothing for more than ``STALL_RETRY_S`` (kafka-python's rejoin, ``RebalanceTrace``) is measured again
once, and says so. Prints events/s per round, medians and the ratios of medians (targets: daemon >= 0.85x
kafka-python; scores on >= 0.6x (record) and >= 0.9x (batch) of the daemon without them). Kernel
compilation is excluded (warmed up before timing).
"""

from __future__ import annotations

import argparse
import importlib
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import orjson
from kafka import KafkaConsumer, KafkaProducer
from kafka.admin import NewTopic
from prometheus_client import CollectorRegistry

sys.path.insert(0, str(Path(__file__).resolve().parent))
from report import cpu_model, figure, load_average, machine_line  # noqa: E402

from rnnstream.config import load_config_text  # noqa: E402
from rnnstream.daemon.runner import Runner  # noqa: E402
from rnnstream.detector import Detector  # noqa: E402
from rnnstream.embedded import EmbeddedKafka  # noqa: E402
from rnnstream.kernels.jit import configure_cache  # noqa: E402

configure_cache()  # as the command line does at start-up: the training kernels load from the cache

PARTITIONS = 2
SCORES = {"daemon": None, "daemon+scores(record)": "record", "daemon+scores(batch)": "batch"}
BARE = ("kafka-python", "confluent-kafka")
__all__ = ["CONFIG", "cpu_model", "ensure_confluent", "fill", "timed_runner"]   # what bench_eos.py and bench_latency.py reuse

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


OUTPUT_SEGMENT_BYTES = 1 << 30


def output_topics(topic: str) -> list[NewTopic]:
    """The anomalies and scores topics, with Kafka's default segment size (1 GiB) rather than the
    embedded test broker's 8 MiB (``rnnstream.embedded.settings``, small for the tests' disks): a
    segment roll every 8 MiB cost the broker about 1.5 ms of CPU per MB of scores (4.6-5.5 against
    2.9-3.9 ns a byte, 1 MB requests), the test broker's cost rather than the daemon's."""
    configs = {"segment.bytes": str(OUTPUT_SEGMENT_BYTES)}
    return [NewTopic(f"{topic}.anomalies", 1, 1, topic_configs=configs),
            NewTopic(f"{topic}.scores", PARTITIONS, 1, topic_configs=configs)]


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


def bare_confluent_loop(bootstrap: str, topic: str, n: int) -> float:
    from confluent_kafka import Consumer

    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"bare-ck-{time.time_ns()}",
                         "auto.offset.reset": "earliest", "enable.auto.commit": False})
    consumer.subscribe([topic])
    seen, started = 0, None
    loads = orjson.loads
    while seen < n:
        for m in consumer.consume(num_messages=5000, timeout=0.5):
            if m.error() is not None:
                continue
            if started is None:
                started = time.perf_counter()
            loads(m.value())
            seen += 1
    took = time.perf_counter() - started
    consumer.close()
    return n / took


def ensure_confluent() -> str | None:
    """Import confluent-kafka, pip-installing it into this interpreter when missing. None when usable,
    else why not (the column is then left out)."""
    try:
        importlib.import_module("confluent_kafka")
        return None
    except ImportError:
        pass
    done = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "confluent-kafka"],
                          capture_output=True, text=True)
    if done.returncode != 0:
        return f"pip install confluent-kafka failed: {(done.stderr or done.stdout).strip().splitlines()[-1:]}"
    importlib.invalidate_caches()
    try:
        importlib.import_module("confluent_kafka")
    except ImportError as exc:
        return f"confluent-kafka installed but not importable: {exc}"
    return None


ASSIGN_TIMEOUT_S = 120.0
STALL_TIMEOUT_S = 60.0


def thread_cpu() -> dict[int, float]:
    """CPU seconds (user + system) of each thread of this process, by native thread id."""
    tick = os.sysconf("SC_CLK_TCK")
    out = {}
    for tid in os.listdir("/proc/self/task"):
        try:
            with open(f"/proc/self/task/{tid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:      # the thread ended meanwhile
            continue
        out[int(tid)] = (int(fields[11]) + int(fields[12])) / tick
    return out


def process_cpu(pid: int) -> float:
    """CPU seconds (user + system, all threads) of process ``pid`` so far; nan when unreadable."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return float("nan")
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class ProduceTrace:
    """Counts the produce requests of a kafka-python producer's sender, their record batches and bytes
    (wraps the sender's ``_produce_request``: a benchmark's instrument, not the daemon's)."""

    def __init__(self, producer):
        self.requests = self.batches = self.bytes = 0
        sender = producer._sender
        make = sender._produce_request

        def counted(node_id, acks, timeout, batches):
            self.requests += 1
            self.batches += len(batches)
            self.bytes += sum(b.records.size_in_bytes() for b in batches)
            return make(node_id, acks, timeout, batches)
        sender._produce_request = counted


class PollTrace:
    """Counts a consumer's polls, the empty ones and the records they returned (wraps ``poll``: a
    benchmark's instrument, not the daemon's)."""

    def __init__(self, consumer):
        self.polls = self.empty = self.records = 0
        poll = consumer.poll

        def counted(*args, **kwargs):
            batch = poll(*args, **kwargs)
            self.polls += 1
            got = sum(len(r) for r in batch.values())
            self.records += got
            self.empty += not got
            return batch
        consumer.poll = counted


class RebalanceTrace:
    """Counts a runner's partition revocations and consumer rejoins from now on (wraps the runner's
    ``_on_revoked`` and ``_rejoin``: a benchmark's instrument). kafka-python 3.0.12 often starts a new
    group generation right after the first assignment (``runner.REBALANCE_POLL_MS``'s docstring):
    usually the partitions come back within a tenth of a second, but at times the consumer then
    polls nothing for about 30 s (its loop waiting in ``ensure_coordinator_ready``) until the group
    settles or the runner rejoins: such a run measures the rebalance (the "6-24 k events/s" rounds
    of 2026-11-30), not the throughput."""

    def __init__(self, runner):
        self.count = 0
        for name in ("_on_revoked", "_rejoin"):
            method = getattr(runner, name)

            def counted(*args, _method=method, _name=name, **kwargs):
                if _name == "_rejoin" or args[0]:        # a revocation of no partition changes nothing
                    self.count += 1
                return _method(*args, **kwargs)
            setattr(runner, name, counted)


STALL_RETRY_S = 2.0   # a run that rebalanced and then scored nothing for longer is measured again


SAMPLE_EVERY_S = 0.02
STACKS_KEPT = 8


def sample_stack(ident: int | None, counts: dict[str, int], depth: int = 4) -> None:
    """Count where thread ``ident``'s Python is right now: its innermost ``depth`` frames (file:line
    function), innermost first; a wait in C (a lock, a socket, a nogil kernel) shows as its caller."""
    frame = sys._current_frames().get(ident)
    where = []
    while frame is not None and len(where) < depth:
        code = frame.f_code
        where.append(f"{Path(code.co_filename).name}:{frame.f_lineno} {code.co_name}")
        frame = frame.f_back
    key = " < ".join(where) or "(no Python frame)"
    counts[key] = counts.get(key, 0) + 1


def timed_runner(cfg, topic: str, n: int, trace: dict | None = None) -> tuple[float, Runner]:
    """Run a daemon on ``cfg`` in a thread; seconds from its first consumed record until its ``n``-th
    event is scored and the producer has delivered every output (flushed), and the stopped runner (its
    registry holds the run's metrics). Kernels are compiled first.

    Progress is read from the units' own counters every 5 ms (a whole-registry collect every 2 ms had
    held the GIL against the daemon's thread). ``TimeoutError`` when the daemon gets no records within
    ``ASSIGN_TIMEOUT_S`` or stops progressing for ``STALL_TIMEOUT_S`` (kafka-python's group join can
    hang on a loaded machine; see runner.REBALANCE_POLL_MS).

    ``trace`` (a dict) receives where the timed interval's CPU went: ``threads`` (CPU seconds by
    thread name: ``loop`` is the daemon's, the producer's sender is ``*-network-thread``), the
    producer's ``requests``, ``batches`` and ``bytes`` sent, the consumer's ``polls`` (``empty_polls``,
    ``polled_records``: ``PollTrace``), and ``stacks``: the loop thread's most
    frequent Python stacks, sampled every SAMPLE_EVERY_S (``sample_stack``)."""
    Detector(cfg.detectors[0], background=False).close()   # load/compile kernels before timing
    runner = Runner(cfg, registry=CollectorRegistry(), http=False)
    thread = threading.Thread(target=runner.run, daemon=True, name="loop")
    thread.start()

    def done() -> int:
        units = list(runner.units.values()) + list(runner._parked.values())
        return sum(u.totals.processed + u.totals.rejected for u in units)

    def fail(why: str):
        runner.stop()
        thread.join(30)
        raise TimeoutError(why)

    deadline = time.monotonic() + ASSIGN_TIMEOUT_S
    while not any(u.totals.consumed for u in list(runner.units.values())):
        if time.monotonic() > deadline:
            fail(f"no record consumed in {ASSIGN_TIMEOUT_S:.0f} s (the group join hung?)")
        time.sleep(0.001)
    started = time.perf_counter()
    rebalances = RebalanceTrace(runner)
    if trace is not None:
        produced = ProduceTrace(runner.producer)
        polled = PollTrace(runner.consumer)
        cpu0 = thread_cpu()
        stacks: dict[str, int] = {}
        next_sample = time.monotonic()
    last, last_change = 0, time.monotonic()
    longest = 0.0       # the longest time without an event scored
    while (now := done()) < n:
        if now != last:
            longest = max(longest, time.monotonic() - last_change)
            last, last_change = now, time.monotonic()
        elif time.monotonic() - last_change > STALL_TIMEOUT_S:
            fail(f"stalled at {now} of {n} events for {STALL_TIMEOUT_S:.0f} s")
        if trace is not None and time.monotonic() >= next_sample:
            sample_stack(thread.ident, stacks)
            next_sample += SAMPLE_EVERY_S
        time.sleep(0.005)
    runner.producer.flush(timeout=60)    # the last outputs delivered: the end of the run
    took = time.perf_counter() - started
    runner.rebalanced_while_timed = (rebalances.count, longest)
    if trace is not None:
        cpu1 = thread_cpu()
        names = {t.native_id: t.name for t in threading.enumerate()}
        threads: dict[str, float] = {}
        for tid, c in cpu1.items():
            name = "main (the benchmark's watcher)" if tid == threading.main_thread().native_id else names.get(tid, "other")
            threads[name] = threads.get(name, 0.0) + c - cpu0.get(tid, 0.0)
        trace.update(threads=threads, requests=produced.requests, batches=produced.batches, bytes=produced.bytes,
                     polls=polled.polls, empty_polls=polled.empty, polled_records=polled.records,
                     stacks=sorted(stacks.items(), key=lambda kv: -kv[1])[:STACKS_KEPT])
    runner.stop()
    thread.join(60)
    return took, runner


def daemon_config(bootstrap: str, topic: str, state_dir: str, scores: str | None):
    text = CONFIG.format(bootstrap=bootstrap, group=f"daemon-{time.time_ns()}", state_dir=state_dir, topic=topic)
    if scores:
        text = text.replace(f"outputs: {{anomalies_topic: {topic}.anomalies}}",
                            f"outputs: {{anomalies_topic: {topic}.anomalies, scores_topic: {topic}.scores, "
                            f"scores_format: {scores}}}")
    return load_config_text(text)


def daemon_run(bootstrap: str, topic: str, n: int, state_dir: str, scores: str | None) -> tuple[float, dict]:
    """Events/s of one daemon run, and its trace (``timed_runner``)."""
    trace: dict = {}
    took, runner = timed_runner(daemon_config(bootstrap, topic, state_dir, scores), topic, n, trace)
    processed = runner.registry.get_sample_value("rnnstream_events_processed_total", {"detector": "bench"})
    assert processed == n, f"processed {processed} of {n}"
    if scores:
        sent = runner.registry.get_sample_value("rnnstream_output_send_failures_total",
                                                {"detector": "bench", "topic": f"{topic}.scores"})
        assert not sent, f"{sent} score records failed"
    trace["seconds"] = took
    trace["rebalances"], trace["longest_pause_s"] = runner.rebalanced_while_timed
    return n / took, trace


def measure(kind: str, bootstrap: str, topic: str, n: int, state_dir: str, baseline: str | None = None,
            broker_pid: int | None = None) -> tuple[float, dict]:
    """Events/s of one loop, measured in a fresh process (no heap or GC state carried over), and the
    daemon's trace with the broker's CPU seconds over the whole child process (``broker_cpu``; its
    start-up and group join included); a ``base:`` variant imports ``rnnstream`` from ``baseline``."""
    env = dict(os.environ)
    if kind.startswith("base:"):
        kind = kind[len("base:"):]
        env["PYTHONPATH"] = os.pathsep.join([baseline, env["PYTHONPATH"]]) if env.get("PYTHONPATH") else baseline
    for attempt in (1, 2):     # a hung group join, or a rebalance while timed, is measured again once
        broker0 = process_cpu(broker_pid) if broker_pid else float("nan")
        out = subprocess.run([sys.executable, __file__, "--measure", kind, "--bootstrap", bootstrap,
                              "--topic", topic, "--events", str(n), "--state-dir", f"{state_dir}-{attempt}"],
                             capture_output=True, text=True, env=env)
        if out.returncode == 0:
            result = orjson.loads(out.stdout.strip().splitlines()[-1])
            trace = result.get("trace", {})
            trace["broker_cpu"] = (process_cpu(broker_pid) if broker_pid else float("nan")) - broker0
            if trace.get("rebalances") and trace.get("longest_pause_s", 0.0) > STALL_RETRY_S and attempt == 1:
                print(f"{kind}: {float(result['rate']):,.0f} events/s, but the group rebalanced after its "
                      f"first record and nothing was scored for {trace['longest_pause_s']:.1f} s "
                      f"(RebalanceTrace): measured again", flush=True)
                continue
            return float(result["rate"]), trace
        print(f"{kind} failed (attempt {attempt}); the end of its log:\n" + "\n".join(out.stderr.strip().splitlines()[-15:]),
              flush=True)
    return float("nan"), {}


def describe(v: str, rate: float, trace: dict, n: int, slow_below: float = 0.0, verbose: bool = False) -> str:
    """One line: where a daemon run's time went (CPU by thread, produce requests, the broker's CPU);
    with the loop thread's sampled stacks when ``verbose`` or the run was slower than ``slow_below``."""
    if not trace.get("threads"):
        return f"{v}: {rate:,.0f} events/s"
    secs = trace["seconds"]
    threads = sorted(trace["threads"].items(), key=lambda kv: -kv[1])
    cpu = ", ".join(f"{name} {c / n * 1e6:.2f}" for name, c in threads if c / n * 1e6 >= 0.05)
    line = (f"{v}: {rate:,.0f} events/s in {secs:.2f} s"
            + (f" (rebalanced {trace['rebalances']} time(s) while timed)" if trace.get("rebalances") else "")
            + f", longest pause {trace.get('longest_pause_s', 0.0):.2f} s"
            + f"; CPU µs an event: {cpu}; "
            f"broker {trace['broker_cpu'] / n * 1e6:.2f} (its whole process, the child's start included)")
    if trace.get("requests"):
        line += (f"; produce requests {trace['requests'] / secs:,.0f}/s, {trace['batches'] / trace['requests']:.1f} "
                 f"batches and {trace['bytes'] / trace['requests'] / 1024:,.0f} KiB a request, "
                 f"{trace['bytes'] / n:.1f} B an event")
    if trace.get("polls"):
        line += (f"; polls {trace['polls'] / secs:,.0f}/s ({trace['empty_polls']} empty), "
                 f"{trace['polled_records'] / max(trace['polls'] - trace['empty_polls'], 1):,.0f} records a poll")
    if trace.get("stacks") and (rate < slow_below or verbose):
        line += "".join(f"\n      {c:4d} samples of the loop: {where}" for where, c in trace["stacks"])
    return line


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--entities", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=5,
                        help="rounds; the ratios are medians of per-round ratios, which swing by 10-30%% at load 2-7")
    parser.add_argument("--only", nargs="*", help="measure only these variants (names as printed)")
    parser.add_argument("--baseline", help="also measure the daemon variants with the rnnstream package in this directory")
    parser.add_argument("--trace", action="store_true",
                        help="print where each daemon run's CPU went: by thread, the broker's, produce requests")
    parser.add_argument("--stacks", action="store_true",
                        help="with --trace: print every run's sampled loop stacks (else only a slow run's)")
    parser.add_argument("--measure", choices=list(BARE) + list(SCORES), help=argparse.SUPPRESS)
    parser.add_argument("--bootstrap", help=argparse.SUPPRESS)
    parser.add_argument("--topic", help=argparse.SUPPRESS)
    parser.add_argument("--state-dir", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure == "kafka-python":
        print(orjson.dumps({"rate": bare_loop(args.bootstrap, args.topic, args.events)}).decode())
        return
    if args.measure == "confluent-kafka":
        print(orjson.dumps({"rate": bare_confluent_loop(args.bootstrap, args.topic, args.events)}).decode())
        return
    if args.measure:
        rate, trace = daemon_run(args.bootstrap, args.topic, args.events, args.state_dir, SCORES[args.measure])
        print(orjson.dumps({"rate": rate, "trace": trace}).decode())
        return
    variants = [v for v in list(BARE) + list(SCORES) if not args.only or v in args.only]
    if args.baseline:
        variants += [f"base:{v}" for v in SCORES if not args.only or v in args.only]
    if "confluent-kafka" in variants:
        why = ensure_confluent()
        if why:
            print(f"confluent-kafka column left out: {why}")
            variants.remove("confluent-kafka")
    print(machine_line())
    with EmbeddedKafka(heap="1g") as broker, tempfile.TemporaryDirectory() as tmp:
        topic = "bench-events"
        broker.create_topics([(topic, PARTITIONS)] + output_topics(topic))
        t0 = time.perf_counter()
        fill(broker.bootstrap, topic, args.events, args.entities)
        print(f"filled {args.events} events over {args.entities} entities in {time.perf_counter() - t0:.1f} s")
        rates: dict[str, list[float]] = {v: [] for v in variants}
        for r in range(args.rounds):
            # Every other round in reverse order: a variant is not always measured right after the same one.
            for v in (variants if r % 2 == 0 else variants[::-1]):
                rate, trace = measure(v, broker.bootstrap, topic, args.events, str(Path(tmp) / f"state-{v}-{r}"),
                                      args.baseline, broker.pid)
                rates[v].append(rate)
                if args.trace:
                    # A run at under half the variant's best so far gets its loop's stacks printed.
                    print(f"  round {r + 1} " + describe(v, rate, trace, args.events, 0.5 * np.nanmax(rates[v]),
                                                         args.stacks), flush=True)
            print(f"round {r + 1} ({load_average()}): " + ", ".join(f"{v} {rates[v][-1]:,.0f}" for v in variants)
                  + " events/s", flush=True)
        med = {v: float(np.nanmedian(x)) for v, x in rates.items() if not np.isnan(x).all()}
        for v in variants:
            print(f"{v:>28}: median {med.get(v, float('nan')):,.0f} events/s (rounds {', '.join(f'{x:,.0f}' for x in rates[v])})")
        print(f"{args.events} events over {args.entities} entities, {PARTITIONS} partitions, {args.rounds} rounds; "
              + machine_line())
        setup = f"{args.events // 1000} k events, {args.entities // 1000} k entities, {PARTITIONS} partitions, {args.rounds} rounds"

        def paired(v: str, ref: str) -> tuple[float, list[float]]:
            """The median of ``v``'s per-round ratios to ``ref`` (each round's two runs were minutes
            apart, so a load swing between rounds cancels), and those ratios."""
            per_round = [a / b for a, b in zip(rates.get(v, []), rates.get(ref, [])) if a == a and b == b]
            return (float(np.median(per_round)) if per_round else float("nan")), per_round

        base = med.get("daemon")
        for bare in BARE:
            if base and bare in med:
                ratio, per_round = paired("daemon", bare)
                print(f"daemon / {bare} loop: {ratio:.2f} (median of the per-round ratios "
                      f"{', '.join(f'{x:.2f}' for x in per_round)})")
                figure(f"daemon vs a bare {bare} poll + orjson loop, to the last event scored ({setup}; "
                       f"median of per-round ratios)",
                       f"daemon {base / 1e3:,.0f} k/s, {bare} {med[bare] / 1e3:,.0f} k/s (medians): **{ratio:.2f}x** "
                       f"(rounds {', '.join(f'{x:.2f}' for x in per_round)})",
                       ">= 0.85x" if bare == "kafka-python" else "")
        if args.baseline:
            for v in SCORES:
                if v in med and f"base:{v}" in med:
                    print(f"{v}: {paired(v, f'base:{v}')[0]:.2f}x the baseline ({args.baseline}; median of per-round ratios)")
            for v in SCORES:
                if f"base:{v}" in med and "base:daemon" in med and v != "daemon":
                    print(f"base:{v} / base:daemon: {paired(f'base:{v}', 'base:daemon')[0]:.2f}")
        for v, target in (("daemon+scores(record)", ">= 0.6x"), ("daemon+scores(batch)", ">= 0.9x")):
            if base and v in med:
                ratio, per_round = paired(v, "daemon")
                print(f"{v} / daemon: {ratio:.2f}, the median of the per-round ratios "
                      f"{', '.join(f'{x:.2f}' for x in per_round)} (target {target}; ratio of medians "
                      f"{med[v] / base:.2f})")
                figure(f"daemon with every event's score published, scores_format: {SCORES[v]}, to the last "
                       f"score delivered ({setup}; median of per-round ratios to the daemon without scores)",
                       f"{med[v] / 1e3:,.0f} k/s (median): **{ratio:.2f}x** the daemon without scores "
                       f"(rounds {', '.join(f'{x:.2f}' for x in per_round)})", target)


if __name__ == "__main__":
    main()
