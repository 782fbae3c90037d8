"""``rnnstream run -c FILE``: the daemon's poll loop.

One KafkaConsumer (manual commits) subscribes to every detector's input topics. Each assigned
partition of a detector's topic gets its own ``Detector`` instance, a *unit* (``rnnstream.daemon.units``):
a detector's "global" model is therefore kept per partition shard. Records of one partition arrive in
offset order and a unit's output is a function of its input alone (with event-count training
triggers), so a unit's state after offset ``o`` is deterministic: a restart from a checkpoint, or a
partition moved to another replica sharing ``state_dir``, continues exactly where the stream left off.

Per poll, each partition's records are one ``decode_batch`` + one ``Detector.process`` call
(``Unit.handle``). Every ``checkpoint.interval_seconds``, on partition revocation and at shutdown
(``Runner.checkpoint``): 1. ``producer.flush()`` so the outputs of every covered event are durable,
2. save each unit's checkpoint with its next offset, 3. commit those offsets. Hence after a crash:
committed <= checkpointed offset, nothing is lost, and events after the last checkpoint are scored
again (their outputs may be published twice, with the same deterministic ``event_id``).

Invariant kept per detector: consumed = processed + rejected (dead-lettered).

Outputs that cannot be delivered (``rnnstream.daemon.outputs``) never stop the loop: they are retried
with backoff, and meanwhile their detector's partitions are paused and left out of checkpoints and
commits, so nothing is committed past an undelivered output.

Health (``health()``, served as /healthz and gating the systemd watchdog) fails when the loop has not
completed an iteration for ``daemon.loop_stall_seconds``, when a rebalance has not completed for
``daemon.progress_stall_seconds``, or when records waited on owned partitions and none was processed
for that long (while the broker is reachable and outputs are not being retried: those are reported by
readiness, and a restart would not cure them). Readiness (``readiness()``, /readyz and
``rnnstream_ready``) also fails while the group coordinator is unreachable, while outputs are being
retried, and while an input topic is missing.

Signals (``main`` installs them): SIGTERM/SIGINT stop after the current batch, checkpoint, commit and
close (exit 0). Every blocking call on that path has a deadline within
``daemon.shutdown_timeout_seconds``; what could not be committed in time is replayed after the restart
(at least once), and the process exits at that budget plus 1.5 s whatever the broker does.
SIGHUP re-reads the config file: detectors added or removed are (un)subscribed, changed detectors get
fresh units from their checkpoints, unchanged ones keep theirs.

With ``processing.changelog`` (``rnnstream.daemon.statelog``) a checkpoint also writes the changed
state to the detector's changelog topic before committing, and a partition's unit is restored from
the local cache plus that changelog (or from the changelog alone) when it is assigned; a restore that
fails pauses the partition and is retried. With ``processing.guarantee: exactly_once`` the outputs,
changelog records and offsets of each interval are one transaction (``_commit_transaction``); a
failed one is aborted and every unit restored from the changelog (``_abort_and_recover``). With
``processing.standby_replicas`` (``rnnstream.daemon.standby``) the group assignment also names
partitions of which this replica keeps a warm copy; a partition assigned here restores from its copy
plus the changelog's tail.

A consumer that kafka-python leaves subscribed without partitions nobody else holds is closed and
replaced after a session timeout (``_check_stranded``).
"""

from __future__ import annotations

import gc
import logging
import math
import os
import signal
import socket
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from typing import Any, Callable

from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.consumer.subscription_state import AsyncConsumerRebalanceListener
from kafka.errors import KafkaError, KafkaTimeoutError
from kafka.structs import OffsetAndMetadata
from prometheus_client import CollectorRegistry

from ..config import Config, load_config
from ..detector import Detector
from ..errors import RnnstreamError
from ..metrics import Metrics
from ..ops.preflight import lock_state_dir, port_problem, state_dir_problem
from . import fetch, scorerecords
from .checkpoint import CheckpointStore
from .decode import decode_batch
from .changelog import Reader, restore_consumer
from .outputs import Outputs
from .standby import Standbys
from .statelog import StateLog
from .units import Unit

log = logging.getLogger("rnnstream.daemon")

COMMIT_TIMEOUT_S = 10.0
"""Longest a synchronous commit may take (less at shutdown: what is left of the budget). A slow broker
under load can take seconds; while the coordinator is known unreachable, commits are skipped."""

REBALANCE_POLL_MS = 500
"""Poll timeout while a rebalance is in progress, and no checkpoint (nor its gc.collect) meanwhile.

kafka-python 3.0.12 drives JoinGroup/SyncGroup as a task that ``poll`` awaits for at most its
timeout. When that task completes while the application is *outside* ``poll``, the next ``poll``
finds it done, takes that for a failed attempt and sends a fresh JoinGroup: the assignment is
discarded and a new generation begins (``join_group_async`` in kafka/coordinator/base.py tests
``self._join_task.is_done`` before awaiting the result). With short polls and work between them
this repeats: the group never stabilises. Minimal reproduction, on a 3-partition topic with one
consumer: ``while not c.assignment(): c.poll(timeout_ms=1); time.sleep(0.2)`` climbs generations
for ever; with ``sleep(0)`` it is assigned in about 2 s. The daemon's poll loop did work between
polls even while rebalancing (a checkpoint, a full ``gc.collect()``): the most likely cause of the
start that hung in about one in nine (its log shows a new generation and "performing partition
assignments", then no assignment), though that hang did not recur here unforced (30 process
restarts, 50 in-process starts). Staying inside ``poll`` for long stretches while rebalancing, with
no other work between them, shrinks the window to a few milliseconds per stretch.

This timeout only applies once the runner knows a rebalance is on (from a revocation): the one every
start used to begin right after its first assignment (an empty metadata snapshot at the first join,
``_subscribe``) started inside an ordinary ``kafka.poll_timeout_ms`` poll, with records processed
and checkpoints written between polls, which is this window at its widest. That rebalance is gone;
one that another member starts still opens the window for its first poll."""


class _Listener(AsyncConsumerRebalanceListener):
    """Rebalance callbacks. kafka-python 3 awaits them on its I/O loop, whose heartbeats and group
    protocol stall while a callback blocks; so the work (flushing outputs, writing checkpoints) runs
    in a worker thread and the callback yields to the loop until it is done. The poll loop thread is
    blocked in ``poll`` meanwhile, so the units are not touched concurrently.
    """

    def __init__(self, runner: Runner):
        self.runner = runner

    async def _run(self, fn, arg) -> None:
        done = threading.Event()
        failure: list[BaseException] = []

        def work():
            try:
                fn(list(arg))
            except BaseException as exc:  # re-raised on the loop, where kafka-python logs it
                failure.append(exc)
            finally:
                done.set()

        threading.Thread(target=work, name="rnnstream-rebalance", daemon=True).start()
        net = getattr(self.runner.consumer, "_net", None)
        while not done.is_set():
            if net is None:
                done.wait()
            else:
                await net.sleep(0.005)
        if failure:
            raise failure[0]

    async def on_partitions_revoked(self, revoked):
        await self._run(self.runner._on_revoked, revoked)

    async def on_partitions_assigned(self, assigned):
        await self._run(self.runner._on_assigned, assigned)

    async def on_partitions_lost(self, lost):
        await self._run(self.runner._on_lost, lost)


class Runner:
    """The daemon loop for one ``Config``. ``run()`` blocks until ``stop()`` (any thread) and returns 0
    (1 when it stopped by itself: exactly_once and no transactional producer could be started).

    ``consumer_factory`` / ``producer_factory`` exist for tests; by default they build kafka-python
    clients from ``config.kafka``. ``http`` starts the /metrics, /healthz, /readyz server.
    """

    def __init__(self, config: Config, *, config_path: str | None = None,
                 registry: CollectorRegistry | None = None, http: bool = True,
                 instance_id: str | None = None,
                 consumer_factory: Callable[[Config, list[str]], Any] | None = None,
                 producer_factory: Callable[[Config], Any] | None = None,
                 admin_factory: Callable[[], Any] | None = None):
        if config.kafka is None:
            raise RnnstreamError(f"{config_path or 'config'}: the 'kafka' section is required to run the daemon")
        self.config = config
        self.config_path = config_path
        self.registry = registry if registry is not None else CollectorRegistry()
        self.metrics = Metrics(self.registry, top_k_entities=config.metrics.top_k_entities)
        self.instance_id = instance_id or f"{socket.gethostname()}-{os.getpid()}"
        self.store = CheckpointStore(config.state_dir, keep_generations=config.checkpoint.keep_generations,
                                     metrics=self.metrics)
        self._consumer_factory = consumer_factory or _default_consumer
        self._admin_factory = admin_factory or (lambda: _admin(self.config))
        self._producer_factory = producer_factory or _default_producer
        self._http_enabled = http
        self.http = None
        self.units: dict[TopicPartition, Unit] = {}
        self._parked: dict[TopicPartition, Unit] = {}
        self._stop = threading.Event()
        self._reload = threading.Event()
        self.started = threading.Event()   # consumer created and subscribed
        self.consumer = None
        self.producer = None
        self.outputs: dict[str, Outputs] = {}
        self._topic_map = config.topic_map()
        self.checkpoints = 0
        self._ready_reason = "starting"
        self._state_lock = None
        self._last_iteration = time.monotonic()   # liveness: end of the last loop iteration
        self._last_progress = time.monotonic()    # liveness: records processed, or none waiting
        self._rebalancing_since: float | None = None
        self._broker_down_since: float | None = None
        self._disconnected_since: float | None = None
        self._missing_topics: list[str] = []
        self._paused: set[str] = set()             # detectors whose partitions wait for their outputs
        self._deadline: float | None = None        # monotonic end of the shutdown budget, once stopping
        self._unrestored: dict = {}                # assigned partitions whose restore failed -> config
        self._failed = False                       # stopped because it could not go on (exit 1)
        self._last_restore_try = 0.0
        self._last_check = 0.0
        self._unowned_since: float | None = None   # owning no partition while subscribed, since (monotonic)
        self._last_group_check = -math.inf
        self.eos = config.processing.guarantee == "exactly_once"
        self.statelog: StateLog | None = None      # with processing.changelog: the changelog topics
        self.standbys: Standbys | None = None      # with processing.standby_replicas: warm copies
        self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="rnnstream-checkpoint")
        self._writing: _Writing | None = None      # a periodic checkpoint whose files are being written
        self._pacing = fetch.Pacing(None, 1, 0)     # the consumer's fetch settings (set by _subscribe)
        self._committing: tuple | None = None       # exactly_once: a commit started, not yet settled

    # -- lifecycle ---------------------------------------------------------------------------------

    def stop(self) -> None:
        """Ask the loop to finish its batch, checkpoint, commit and return. Safe from any thread/signal."""
        self._stop.set()

    def request_reload(self) -> None:
        """Ask the loop to re-read ``config_path`` between two polls (what SIGHUP does)."""
        self._reload.set()

    def run(self) -> int:
        cfg = self.config
        for det in cfg.detectors:
            self.metrics.for_detector(det.name)
        self._preflight()
        try:
            self._start_http()
        except RnnstreamError:
            self._state_lock.release()
            raise
        self._set_ready(False, "compiling kernels and connecting to Kafka")
        self._load_kernels()
        self.producer = self._producer_factory(cfg)
        self._start_changelog()
        self._build_outputs()
        self._subscribe(cfg)
        self.started.set()
        notify("READY=1")
        log.info("daemon started", extra={"instance_id": self.instance_id, "topics": self._topics(),
                                           "state_dir": cfg.state_dir})
        last_ckpt = last_dog = self._last_iteration = self._last_progress = time.monotonic()
        dog_every = watchdog_interval()
        timeout_ms = cfg.kafka.poll_timeout_ms
        # Python's cyclic collector, run by allocation count, kept re-traversing each poll's live
        # records: ~40% of throughput. Objects alive now are frozen out of it, and it runs once per
        # checkpoint interval instead, mostly over the young generations (``_collect_cycles``).
        gc_was_enabled = gc.isenabled()
        gc.freeze()
        gc.disable()
        try:
            while not self._stop.is_set():
                if self._reload.is_set():
                    self._reload.clear()
                    self._do_reload()
                rebalancing = self._rebalancing_since is not None
                try:
                    batch = self.consumer.poll(timeout_ms=max(timeout_ms, REBALANCE_POLL_MS) if rebalancing else timeout_ms)
                except KafkaError as exc:   # the client recovers by itself; the loop must go on
                    log.warning("poll failed; polling again", extra={"error": f"{type(exc).__name__}: {exc}"})
                    batch = {}
                    self._stop.wait(0.2)
                self._pacing.polled(bool(batch))
                if not self._finish_commit():   # aborted: the units went back to the last commit
                    batch = {}                  # and the consumer with them (these come again)
                if batch:
                    self._process(batch)
                else:   # outputs a full poll left queued (_process), when no more records came
                    for outputs in self.outputs.values():
                        outputs.hold_scores = False
                        outputs.wake()
                self._retry_restores()
                self._service_outputs()
                now = time.monotonic()
                self._track_progress(now, bool(batch))
                self._finish_checkpoint()
                if (not rebalancing and self._writing is None
                        and now - last_ckpt >= self.config.checkpoint.interval_seconds):
                    # While the coordinator is unreachable a commit can only time out: save, commit later.
                    reachable = self._disconnected_since is None and self._broker_down_since is None
                    self.checkpoint(list(self.units), commit="sync" if reachable else "none", background=True)
                    _collect_cycles()
                    last_ckpt = time.monotonic()
                self._last_iteration = time.monotonic()
                if dog_every is not None and now - last_dog >= dog_every and self.health()[0]:
                    notify("WATCHDOG=1")   # withheld while unhealthy: systemd then restarts us
                    last_dog = now
            notify("STOPPING=1")
            self._deadline = time.monotonic() + self.config.daemon.shutdown_timeout_seconds
            log.info("stopping: final checkpoint", extra={"partitions": len(self.units)})
            if not self._failed:
                self.checkpoint(list(self.units))
        finally:
            self._shutdown()
            gc.unfreeze()
            if gc_was_enabled:
                gc.enable()
        return 1 if self._failed else 0

    def _load_kernels(self) -> None:
        """Load (or compile) the scoring and training kernels of the configured model types before
        joining the group. Loaded lazily instead, the first unit's kernels were loaded inside the
        assignment and the first training's in the background thread, holding the GIL: the events
        of the first seconds waited 1-4 s for it (the start-up backlog)."""
        from ..warmup import warmup

        models = sorted({(d.model.type, getattr(d.model, "layers", 1)) for d in self.config.detectors})
        took = warmup(models)
        if any(d.outputs.scores_topic and d.outputs.scores_format == "record" for d in self.config.detectors):
            started = time.perf_counter()
            scorerecords.warm()
            took += time.perf_counter() - started
        log.info("kernels loaded", extra={"model_types": [t for t, _ in models], "duration_s": round(took, 3)})

    # -- health ------------------------------------------------------------------------------------

    def health(self) -> tuple[bool, str]:
        """``(alive, reason)`` for /healthz and the systemd watchdog (see the module docstring)."""
        d, now = self.config.daemon, time.monotonic()
        stalled = now - self._last_iteration
        if stalled > d.loop_stall_seconds:
            return False, f"the poll loop has not completed an iteration for {stalled:.0f} s"
        if self._rebalancing_since is not None and now - self._rebalancing_since > d.progress_stall_seconds:
            return False, f"no rebalance has completed for {now - self._rebalancing_since:.0f} s"
        if now - self._last_progress > d.progress_stall_seconds:
            return False, (f"records are waiting on owned partitions and none was processed for "
                           f"{now - self._last_progress:.0f} s")
        return True, ""

    def readiness(self) -> tuple[bool, str]:
        """``(ready, reason)`` for /readyz and ``rnnstream_ready``."""
        if self._ready_reason:
            return False, self._ready_reason
        if self._broker_down_since is not None:
            return False, (f"Kafka unreachable (group coordinator not connected) for "
                           f"{time.monotonic() - self._broker_down_since:.0f} s")
        problems = [o.problem() for o in self.outputs.values() if o.pending]
        if problems:
            return False, "; ".join(problems)
        if self._missing_topics:
            return False, f"input topic(s) missing: {', '.join(self._missing_topics)}"
        return True, ""

    def _track_progress(self, now: float, processed: bool) -> None:
        """Liveness and readiness bookkeeping, once per loop iteration (topic checks once a second)."""
        if now - self._last_check >= 1.0:
            self._last_check = now
            connected = broker_connected(self.consumer)
            if connected is False:
                # A coordinator move or a rebalance disconnects it for a moment: 3 s before it counts.
                self._disconnected_since = self._disconnected_since or now
                if self._broker_down_since is None and now - self._disconnected_since >= 3.0:
                    self._broker_down_since = self._disconnected_since
                    log.warning("Kafka unreachable: the group coordinator is not connected")
            else:
                self._disconnected_since = None
                if self._broker_down_since is not None:
                    log.warning("Kafka reachable again", extra={"after_s": round(now - self._broker_down_since, 1)})
                    self._broker_down_since = None
            self.metrics.broker_connected.set(0 if self._broker_down_since is not None else 1)
            self._missing_topics = missing_topics(self.consumer, self._topics())
            self._check_stranded(now)
            self.metrics.set_ready(self.readiness()[0])
        if processed or self._broker_down_since is not None or self._paused or not self._waiting():
            self._last_progress = now

    def _check_stranded(self, now: float) -> None:
        """Rejoin the group when left without partitions that nobody else has.

        When this process has owned no partition for a session timeout while subscribed, the group is
        asked (``stranded_reason``, at most once per session timeout) whether that is the assignment:
        the group stable, this consumer a member without partitions, every partition of its topics
        with another member. Otherwise (the group assigned this member partitions it does not hold,
        or gave them to nobody, or does not know it, or has been rebalancing all that time) the
        consumer is closed and a new one subscribes (``_rejoin``), counted in
        ``rnnstream_consumer_rejoins_total``. This is what kafka-python's rejoin right after the first
        assignment (``REBALANCE_POLL_MS``, before ``_subscribe`` fetched the metadata after subscribing) left behind: a member waiting for an assignment that never
        came, until a liveness probe restarted the process. A member idle by the group's choice (more
        replicas than partitions) is left alone."""
        if self.units or self._unrestored or self._broker_down_since is not None or self._stop.is_set():
            self._unowned_since = None
            return
        if self._unowned_since is None:
            self._unowned_since = now
        session = self.config.kafka.session_timeout_ms / 1000
        if now - self._unowned_since < session or now - self._last_group_check < session:
            return
        self._last_group_check = now
        try:
            why = stranded_reason(self.consumer, self._admin_factory, self.config.kafka.group_id, self._topics())
        except Exception as exc:   # cannot tell now; asked again a session timeout later
            log.info("could not describe the consumer group", extra={"error": f"{type(exc).__name__}: {exc}"})
            return
        if why:
            self._rejoin(why, now - self._unowned_since)

    def _rejoin(self, why: str, waited: float) -> None:
        """Close the consumer (this process owns no partition: nothing to commit) and subscribe anew."""
        self.metrics.consumer_rejoins.inc()
        log.warning("consumer left without partitions; closing it and joining the group again",
                    extra={"reason": why, "without_partitions_s": round(waited, 1)})
        try:
            self.consumer.close(autocommit=False, timeout_ms=5000)
        except Exception:
            log.exception("closing the stranded consumer failed")
        self._subscribe(self.config)

    def _waiting(self) -> bool:
        """Whether records wait on a partition this process owns (its high watermark is past it)."""
        for tp, unit in self.units.items():
            hw = self.consumer.highwater(tp)
            if hw is not None and unit.next_offset is not None and hw > unit.next_offset:
                return True
        return False

    def _service_outputs(self) -> None:
        """Retry undelivered outputs; pause the partitions of detectors that have some, resume the rest."""
        for name, outputs in self.outputs.items():
            outputs.service()
            tps = [tp for tp, u in self.units.items() if u.name == name]
            if outputs.pending:
                if tps:
                    self.consumer.pause(*tps)
                if name not in self._paused:
                    self._paused.add(name)
                    log.warning("detector paused until its outputs are delivered",
                                extra={"detector": name, "reason": outputs.problem()})
            elif name in self._paused:
                self._paused.discard(name)
                if tps:
                    self.consumer.resume(*tps)
                log.warning("detector resumed: its outputs are delivered again", extra={"detector": name})

    def _remaining(self, cap: float) -> float:
        """``cap`` seconds, or less when the shutdown budget ends sooner (never below 0.1)."""
        if self._deadline is None:
            return cap
        return max(min(cap, self._deadline - time.monotonic()), 0.1)

    def _preflight(self) -> None:
        """Fail with one clear error, before joining the group, when state_dir is unusable; then hold
        its shared lock (``rnnstream state reset`` refuses while any daemon holds it)."""
        problem = state_dir_problem(self.config.state_dir)
        if problem:
            raise RnnstreamError(f"{problem} (checked before joining the consumer group)")
        self._state_lock = lock_state_dir(self.config.state_dir)

    def _subscribe(self, cfg: Config) -> None:
        """A new consumer, subscribed to every configured topic, with their metadata fetched before
        its first ``poll`` joins the group.

        The group leader assigns only the partitions its client knows of. Joining before the metadata
        of a just-created topic arrived left the daemon without that topic's partitions until
        kafka-python's next metadata refresh (minutes), so each topic's partitions are asked for here.
        A topic that does not exist yet is left to that refresh.

        The fetch comes *after* ``subscribe``: kafka-python 3.0.12's leader compares the metadata
        snapshot it assigned with (taken from the coordinator's metadata listener, which only counts
        subscribed topics) with the next one, and rejoins when they differ. Fetched before
        ``subscribe``, the snapshot at the first join was empty, the next metadata response differed,
        and every start began a second generation right after its first assignment (the rebalance
        ``REBALANCE_POLL_MS`` and ``bench_daemon.RebalanceTrace`` describe).
        """
        topics = self._topics()
        extra = {} if self.standbys is None else {"assignors": self.standbys.assignors()}
        self.consumer = self._consumer_factory(cfg, topics, **extra)
        self._pacing = fetch.Pacing(self.consumer, cfg.kafka.fetch_min_bytes, cfg.kafka.fetch_max_wait_ms)
        self._rebalancing_since = time.monotonic()
        self._unowned_since = None
        self.consumer.subscribe(topics, listener=_Listener(self))
        for topic in topics:
            try:
                self.consumer.partitions_for_topic(topic)
            except KafkaError as exc:   # only a head start: the metadata refresh finds them later
                log.warning("could not fetch a topic's metadata before joining",
                            extra={"topic": topic, "error": f"{type(exc).__name__}: {exc}"})

    def _shutdown(self) -> None:
        """Close everything, each blocking call within what is left of the shutdown budget."""
        if self._deadline is None:
            self._deadline = time.monotonic() + self.config.daemon.shutdown_timeout_seconds
        self._set_ready(False, "shutting down")
        if self.standbys is not None:
            self.standbys.close(self._remaining(3.0))
        for unit in list(self.units.values()) + list(self._parked.values()):
            unit.close()
        self.units.clear()
        self._parked.clear()
        if self._writing is not None:   # files of a checkpoint left uncommitted (stopped by a failure)
            try:
                self._writing.write.exception(timeout=self._remaining(3.0))
            except FutureTimeout:
                log.warning("a checkpoint's files were still being written at shutdown")
            self._writing = None
        self._writer.shutdown(wait=False)
        if self.consumer is not None:
            try:
                self.consumer.close(autocommit=False, timeout_ms=int(self._remaining(3.0) * 1000))
            except Exception:
                log.exception("closing the consumer failed")
        if self.producer is not None:
            try:
                self.producer.close(timeout=self._remaining(3.0))
            except Exception:
                log.exception("closing the producer failed")
        undelivered = sum(o.pending for o in self.outputs.values())
        if undelivered:
            log.warning("stopped with undelivered outputs; their partitions were not committed past them "
                        "and are replayed after the restart", extra={"records": undelivered})
        if self.http is not None:
            self.http.stop()
        if self._state_lock is not None:
            self._state_lock.release()

    # -- per poll ----------------------------------------------------------------------------------

    def _process(self, batch: dict) -> None:
        """Handle one poll's records. Its outputs are sent at the end (one wake-up of the producer's
        sender for all), unless the poll was full: then more records wait, and the outputs go out
        when the next unit's scoring kernel starts (``Unit.handle``), so that the sender's work (its
        Python holds the GIL for a ms or two a request, which the loop's thread would otherwise wait
        for) runs while the kernel does not need the GIL; or, when the next poll returns nothing,
        then (at most ``kafka.poll_timeout_ms`` later). While the loop is behind, scores (either format)
        also wait in an open record batch for the next polls' (``Outputs.hold_scores``): one produce
        request for several polls, released by the first poll that is neither full nor followed by a
        full poll's records already waiting in its partitions (``_behind``)."""
        m = self.metrics
        full = sum(len(records) for records in batch.values()) >= self.config.kafka.max_poll_records
        behind = full or self._behind(batch)
        for outputs in self.outputs.values():   # more records wait: scores may wait for theirs
            outputs.hold_scores = behind
        for tp, records in batch.items():
            m.for_topic(tp.topic).inc(len(records))
            unit = self.units.get(tp)
            if unit is None:  # cannot happen with subscribe(topics); keep the invariant anyway
                m.rejected_unrouted("unrouted").inc(len(records))
                continue
            unit.handle(records, self.outputs[unit.name], decode_batch)
            hw = self.consumer.highwater(tp)
            if hw is not None and unit.next_offset is not None:
                m.lag(tp.topic, tp.partition).set(max(hw - unit.next_offset, 0))
        if not full:
            for outputs in self.outputs.values():
                outputs.wake()
        for name, dm in self._detector_metrics():
            dm.entities.set(sum(len(u.detector.state) for u in self.units.values() if u.name == name))
            if self.config.metrics.top_k_entities:
                latest = {}
                for u in self.units.values():
                    if u.name == name:
                        latest.update(u.latest)
                m.set_entity_scores(name, latest)

    def _behind(self, batch: dict) -> bool:
        """Whether at least a full poll's records (``kafka.max_poll_records``) wait behind this poll's
        in one of its partitions (by the highwater mark of the last fetch): the loop is behind even
        when the fetches, not the loop, are what limit its polls."""
        limit = self.config.kafka.max_poll_records
        for tp, records in batch.items():
            hw = self.consumer.highwater(tp)
            if records and hw is not None and hw - records[-1].offset - 1 >= limit:
                return True
        return False

    def _detector_metrics(self):
        for det in self.config.detectors:
            yield det.name, self.metrics.for_detector(det.name)

    # -- checkpoints -------------------------------------------------------------------------------

    def checkpoint(self, tps: list, *, commit: str = "sync", background: bool = False) -> bool:
        """Flush outputs, save the units of ``tps``, commit their offsets. False if any step failed.

        ``commit`` is "sync" (the loop thread), "async" (inside a rebalance callback, which runs on
        kafka-python's I/O thread and must not block on the consumer) or "none".

        Units of detectors with undelivered outputs are left out (their outputs are retried, and a
        restart replays them from the previous checkpoint); when the producer cannot deliver within
        ``daemon.flush_timeout_seconds`` nothing is saved or committed, and the next checkpoint tries again.

        ``background`` (the loop's periodic checkpoint, file checkpoints only): the units' states are
        copied now and written by a thread while the loop goes on; their offsets are committed by
        ``_finish_checkpoint`` once every file is durable (writing 20 MB and fsyncing it had held the
        loop 0.2-0.5 s). A checkpoint that is not in the background first completes one that is.
        """
        if self.eos:   # one transaction holds every unit's outputs: all commit together, or none
            return commit != "none" and self._commit_transaction(periodic=background, defer=background)
        self._finish_checkpoint(wait=True, commit=commit)
        periodic, background = background, background and self.statelog is None
        units = [self.units[tp] for tp in tps if tp in self.units and self.units[tp].next_offset is not None]
        if not units:
            return True
        started = time.perf_counter()
        ok = True
        try:
            self._flush_or_skip("the outputs")
            for name in {u.name for u in units}:
                self.outputs[name].service()
            held = sorted({u.name for u in units if self.outputs[u.name].pending})
            if held:
                units = [u for u in units if u.name not in held]
                log.warning("checkpoint leaves out detectors with undelivered outputs", extra={"detectors": held})
                ok = False
            offsets = {}
            if self.statelog is not None:
                # The changelog records go before the offsets are committed: a crash in between
                # replays events whose state is already written, and restore ignores a commit whose
                # head did not make it (rnnstream.daemon.changelog).
                sent = self.statelog.write(units)
                self._flush_or_skip("the changelog records")
                written = self.statelog.confirm(sent, periodic=periodic)
                ok = ok and len(written) == len(units)
                units = written
            prepared = []
            for unit in units:
                if background:
                    prepared.append((unit, self.store.prepare(unit.name, unit.tp, unit.detector, unit.next_offset)))
                elif self.statelog is None:
                    unit.saved_path = self.store.save(unit.name, unit.tp, unit.detector, unit.next_offset)
                offsets[unit.tp] = OffsetAndMetadata(unit.next_offset, "", -1)
            if background and prepared:
                write = self._writer.submit(lambda: [self.store.write(p) for _, p in prepared])
                self._writing = _Writing(write, [u for u, _ in prepared], offsets, commit, started,
                                         time.perf_counter() - started, ok)
                return ok
            if offsets and commit == "sync":
                self.consumer.commit(offsets, timeout_ms=int(self._remaining(COMMIT_TIMEOUT_S) * 1000))
            elif offsets and commit == "async":
                self.consumer.commit_async(offsets)
        except _Skipped as exc:
            ok = False
            log.warning("checkpoint skipped; retried at the next one", extra={"reason": str(exc)})
        except Exception:
            ok = False
            log.exception("checkpoint failed", extra={"partitions": _names(u.tp for u in units)})
        took = time.perf_counter() - started
        self.metrics.record_checkpoint(ok, took, time.time())
        self.checkpoints += ok
        if ok:
            log.info("checkpoint written", extra={"partitions": len(units), "duration_s": round(took, 3)})
        return ok

    def _finish_checkpoint(self, *, wait: bool = False, commit: str | None = None) -> None:
        """Complete the background checkpoint once its files are written (``wait``: now): commit the
        offsets of its units that this process still owns, with ``commit`` ("sync", "async"; its own
        mode when None; never when it was started with "none")."""
        w = self._writing
        if w is None or (not wait and not w.write.done()):
            return
        self._writing = None
        ok = w.ok
        try:
            paths = w.write.result()
            for unit, path in zip(w.units, paths):
                unit.saved_path = path
            mine = {u.tp for u in w.units if self.units.get(u.tp) is u}   # not lost meanwhile
            offsets = {tp: om for tp, om in w.offsets.items() if tp in mine}
            mode = "none" if w.commit == "none" else (commit or w.commit)
            if offsets and mode == "sync":
                self.consumer.commit(offsets, timeout_ms=int(self._remaining(COMMIT_TIMEOUT_S) * 1000))
            elif offsets and mode == "async":
                self.consumer.commit_async(offsets)
        except Exception:
            ok = False
            log.exception("checkpoint failed", extra={"partitions": _names(u.tp for u in w.units)})
        took = time.perf_counter() - w.started
        self.metrics.record_checkpoint(ok, took, time.time())
        self.checkpoints += ok
        if ok:
            log.info("checkpoint written", extra={"partitions": len(w.units), "duration_s": round(took, 3),
                                                  "loop_s": round(w.loop_s, 3)})

    def _flush_or_skip(self, what: str) -> None:
        """Flush the producer within ``daemon.flush_timeout_seconds`` (and the shutdown budget), or
        skip this checkpoint: ``_Skipped`` names ``what`` was not delivered."""
        try:
            self.producer.flush(timeout=self._remaining(self.config.daemon.flush_timeout_seconds))
        except KafkaTimeoutError:
            raise _Skipped(f"the producer did not deliver {what} in time") from None

    # -- rebalance ---------------------------------------------------------------------------------
    # kafka-python 3 calls these on its I/O thread while the loop thread waits inside poll(), so they
    # may touch the units but must not block on the consumer (no commit(), committed(), position()).
    # The checkpoint written at revocation, not the group offset, is what the next owner resumes from.

    def _on_revoked(self, revoked: list) -> None:
        self._set_ready(False, "rebalancing")
        if self.standbys is not None:
            self.standbys.revoked()
        if self._rebalancing_since is None:
            self._rebalancing_since = time.monotonic()
        for tp in revoked:   # kafka-python may keep the pause of a partition it assigns again
            if self._unrestored.pop(tp, None) is not None:
                self.consumer.resume(tp)
        mine = [tp for tp in revoked if tp in self.units]
        self.checkpoint(mine, commit="async")
        for tp in mine:
            self._parked[tp] = self.units.pop(tp)
            self.metrics.forget_partition(tp.topic, tp.partition, self._parked[tp].name)
        log.info("partitions revoked", extra={"partitions": _names(mine)})

    def _on_lost(self, lost: list) -> None:
        # Another member may own these already: its checkpoints win, ours would be stale.
        self._finish_commit()
        for tp in lost:
            unit = self.units.pop(tp, None)
            if unit is not None:
                unit.close()
        if self.eos:   # the open transaction holds outputs of the lost partitions: none may commit
            self._abort_and_recover("partitions lost")
        log.warning("partitions lost (group membership expired); their progress since the last "
                    "checkpoint will be replayed", extra={"partitions": _names(lost)})

    def _on_assigned(self, assigned: list) -> None:
        self._finish_commit()
        if self.statelog is not None:
            todo = [tp for tp in assigned if tp.topic in self._topic_map and tp not in self.units]
            if todo:
                self._set_ready(False, f"restoring the state of {len(todo)} partition(s) from the changelog")
        for tp in assigned:
            cfg = self._topic_map.get(tp.topic)
            if cfg is None or tp in self.units:
                continue
            self._take(tp, cfg)
        if assigned:
            # The rest went to other members (an empty assignment can be a transient first round,
            # e.g. while the metadata of a new topic is unknown, so parked units wait for a real one).
            for unit in self._parked.values():
                unit.close()
            self._parked.clear()
        if self.standbys is not None:
            self.standbys.assigned(self.config)
        self._rebalancing_since = None
        self._last_progress = time.monotonic()
        self._set_ready(not self._unrestored, self._unrestored_reason())
        log.info("partitions assigned", extra={"partitions": _names(assigned)})

    def _take(self, tp, cfg) -> None:
        """Make the unit of ``tp``. A restore that fails (the changelog unreadable for now) leaves the
        partition paused, and the loop tries again (``_retry_restores``); its records wait in Kafka."""
        try:
            self.units[tp] = self._unit_for(tp, cfg)
            if self._unrestored.pop(tp, None) is not None:
                self.consumer.resume(tp)
        except Exception as exc:
            log.error("restoring the partition's state failed; it stays paused and is retried",
                      extra={"partition": _names([tp])[0], "error": f"{type(exc).__name__}: {exc}"})
            self._unrestored[tp] = cfg
            self.consumer.pause(tp)

    def _unrestored_reason(self) -> str:
        return f"restoring failed, retrying: {', '.join(_names(self._unrestored))}" if self._unrestored else ""

    def _retry_restores(self) -> None:
        """Every 5 s: restore again the assigned partitions whose restore failed."""
        now = time.monotonic()
        if not self._unrestored or now - self._last_restore_try < 5.0:
            return
        self._last_restore_try = now
        assigned = set(self.consumer.assignment())
        for tp, cfg in list(self._unrestored.items()):
            if tp not in assigned:
                del self._unrestored[tp]
                continue
            self._take(tp, cfg)
        self._set_ready(not self._unrestored, self._unrestored_reason())

    def _unit_for(self, tp, cfg) -> Unit:
        """The unit of ``tp``: the parked one when nobody wrote the partition's state since we did
        (our in-memory state is current), else rebuilt from the changelog or the newest checkpoint,
        else fresh."""
        if self.statelog is not None:
            self.statelog.ensure(cfg, self._partition_count(cfg))
        parked = self._parked.pop(tp, None)
        if parked is not None and parked.cfg == cfg and self._is_current(parked, tp, cfg):
            if parked.next_offset is not None:
                self.consumer.seek(tp, parked.next_offset)
            return parked
        if parked is not None:
            parked.close()
        unit = self._restored_unit(tp, cfg)
        if unit.next_offset is not None:
            self.consumer.seek(tp, unit.next_offset)
        else:
            log.info("no saved state; starting fresh at the group's committed offset, else at "
                     "kafka.auto_offset_reset", extra={"partition": _names([tp])[0]})
        unit.top_k = self.config.metrics.top_k_entities
        unit.metrics.start_partition(tp, unit.detector.model.version)
        self._hook_training(unit)
        return unit

    def _is_current(self, parked: Unit, tp, cfg) -> bool:
        """Whether no other replica has saved ``tp``'s state since ``parked`` was."""
        if self.statelog is not None:
            return (parked.changelog_offset is not None
                    and self.statelog.end_offset(cfg.name, tp.partition) == parked.changelog_offset)
        gens = self.store.generations(cfg.name, tp)
        return parked.saved_path == (gens[0][1] if gens else None)

    def _restored_unit(self, tp, cfg) -> Unit:
        """A new unit of ``tp`` with the saved state (changelog or newest checkpoint), or fresh."""
        dm = self.metrics.for_detector(cfg.name)
        if self.statelog is not None:
            warm = None if self.standbys is None else self.standbys.take(self.config, cfg, tp)
            detector, next_offset, writer, changelog_offset = self.statelog.restore(cfg, tp, warm)
            unit = Unit(cfg.name, tp, cfg, detector, dm, next_offset, restored=next_offset is not None)
            unit.changelog, unit.changelog_offset = writer, changelog_offset
            return unit
        loaded = self.store.load(cfg.name, tp, cfg)
        if loaded is None:
            return Unit(cfg.name, tp, cfg, Detector(cfg), dm)
        detector, next_offset = loaded
        return Unit(cfg.name, tp, cfg, detector, dm, next_offset, restored=True)

    def _partition_count(self, cfg) -> int:
        """Partitions of the detector's input topics (the most of any), from the consumer's metadata."""
        cluster = getattr(getattr(self.consumer, "_client", None), "cluster", None)
        counts = [len(cluster.partitions_for_topic(t) or ()) for t in cfg.topics] if cluster is not None else []
        return max(counts + [1])

    # -- changelog and transactions -------------------------------------------------------------------

    def _start_changelog(self) -> None:
        cfg = self.config
        if not cfg.processing.changelog:
            return
        self.statelog = StateLog(cfg, self.producer, Reader(lambda: restore_consumer(cfg)), self.store,
                                 self.metrics, admin_factory=lambda: _admin(cfg))
        if self.eos:
            self.producer.init_transactions()
            self.producer.begin_transaction()
        if cfg.processing.standby_replicas:
            self.standbys = Standbys(cfg, self.metrics, lambda: set(self.units) | set(self._parked))
            self.standbys.start()

    def _commit_transaction(self, periodic: bool = False, defer: bool = False) -> bool:
        """exactly_once: the open transaction (outputs since the last commit) gets every unit's
        changelog records and input offsets, and commits. A failure aborts it and restores every unit
        from the changelog, seeking back to what was committed.

        The offsets' round trips to the coordinators run while the changelog records are encoded.
        ``defer`` (the loop's periodic commit): the commit is only started; the loop's next
        ``consumer.poll`` runs while the broker completes it, and ``_finish_commit``, called before
        anything else may touch the units or the producer (the next batch, any checkpoint, a
        rebalance callback, shutdown), waits for it and opens the next transaction. Returns True when
        committed or started."""
        self._finish_commit()
        units = [u for u in self.units.values() if u.next_offset is not None]
        started = time.perf_counter()
        for outputs in self.outputs.values():
            outputs.service()
        if any(o.pending for o in self.outputs.values()):
            log.warning("transaction kept open: outputs are not delivered yet")
            return False
        tm = getattr(self.producer, "_transaction_manager", None)
        try:
            offsets = {u.tp: OffsetAndMetadata(u.next_offset, "", -1) for u in units}
            in_flight = None
            if offsets and tm is not None:     # kafka-python: what send_offsets_to_transaction does, unawaited
                in_flight = tm.send_offsets_to_transaction(offsets, self.consumer.group_metadata())
                self.producer._sender.wakeup()
            elif offsets:
                self.producer.send_offsets_to_transaction(offsets, self.consumer.group_metadata())
            sent = self.statelog.write(units)
            if in_flight is not None:
                in_flight.wait()
            if defer and tm is not None:       # what commit_transaction does, awaited by _finish_commit
                self._committing = (tm.begin_commit(), sent, started, periodic)
                self.producer._sender.wakeup()
                return True
            self.producer.commit_transaction()
        except Exception as exc:
            self._transaction_failed(exc, started)
            return False
        self._committed(sent, started, periodic)
        return True

    def _finish_commit(self) -> bool:
        """Wait for the commit ``_commit_transaction(defer=True)`` started, if any, and settle it:
        the next transaction begins, or (failed) every unit is restored. False when it failed."""
        if self._committing is None:
            return True
        result, sent, started, periodic = self._committing
        self._committing = None
        try:
            result.wait()
        except Exception as exc:
            self._transaction_failed(exc, started)
            return False
        self._committed(sent, started, periodic)
        return True

    def _committed(self, sent: list, started: float, periodic: bool) -> None:
        self.metrics.transactions.labels("committed").inc()
        self.statelog.confirm(sent, periodic=periodic)
        self.producer.begin_transaction()
        self.metrics.record_checkpoint(True, time.perf_counter() - started, time.time())
        self.checkpoints += 1

    def _transaction_failed(self, exc: BaseException, started: float) -> None:
        log.error("transaction failed; aborting it and restoring the partitions' state",
                  extra={"error": f"{type(exc).__name__}: {exc}"})
        self.metrics.record_checkpoint(False, time.perf_counter() - started, time.time())
        self._abort_and_recover("the transaction failed")

    def _abort_and_recover(self, why: str) -> None:
        """Abort the open transaction (a new producer when this one cannot: fenced or failed fatally),
        drop what the outputs still hold, and rebuild every unit from the changelog. When not even a
        new producer can start a transaction, the daemon stops (exit 1): its restart recovers the
        same way, and nothing uncommitted was visible."""
        try:
            self.producer.abort_transaction()
        except Exception as exc:
            log.error("the producer cannot abort; replacing it", extra={"error": f"{type(exc).__name__}: {exc}"})
            try:
                self.producer.close(timeout=self._remaining(3.0))
            except Exception:
                log.exception("closing the failed producer failed")
            try:
                self.producer = self._producer_factory(self.config)
                self.producer.init_transactions()
            except Exception as exc2:
                log.error("no transactional producer can be started; stopping",
                          extra={"error": f"{type(exc2).__name__}: {exc2}"})
                self._failed = True
                self.stop()
                return
            self.statelog.producer = self.producer
            self._build_outputs()
        self.metrics.transactions.labels("aborted").inc()
        for outputs in self.outputs.values():
            outputs.discard_pending()
        for tp, unit in list(self.units.items()):
            unit.close()
            del self.units[tp]
            self._take(tp, unit.cfg)
        self.producer.begin_transaction()
        log.warning("transaction aborted; partitions restored to their last commit",
                    extra={"reason": why, "partitions": _names(self.units)})

    def _hook_training(self, unit: Unit) -> None:
        dm, model = unit.metrics, unit.detector.model
        where = _names([unit.tp])[0]

        def on_result(result, duration):
            dm.record_training(result is not None, duration,
                               None if result is None else float(result.loss_after), model.version,
                               partition=unit.tp)
            if result is not None:   # a failure is logged where it happens (training.schedule)
                log.info("model retrained", extra={"detector": unit.name, "partition": where,
                                                   "model_version": model.version, "loss": float(result.loss_after),
                                                   "duration_s": round(duration, 3)})
        unit.detector.training.on_result = on_result
        unit.detector.training.on_skip = dm.training_skipped.inc

    # -- config --------------------------------------------------------------------------------------

    def _topics(self) -> list[str]:
        return sorted(self._topic_map)

    def _build_outputs(self) -> None:
        d = self.config.daemon
        self.outputs = {det.name: Outputs(self.producer, det, self.instance_id, metrics=self.metrics.for_detector(det.name),
                                          retry_backoff_ms=d.output_retry_backoff_ms,
                                          retry_backoff_max_ms=d.output_retry_backoff_max_ms)
                        for det in self.config.detectors}
        for outputs in self.outputs.values():   # one wake-up of the producer per poll (_process)
            outputs.deferred_wake = True

    def _do_reload(self) -> None:
        if not self.config_path:
            log.warning("reload requested but the daemon was not started from a file")
            return
        try:
            new = load_config(self.config_path)
        except RnnstreamError as exc:
            log.error("config reload failed; keeping the running config", extra={"error": str(exc)})
            return
        old = {d.name: d for d in self.config.detectors}
        changed = sorted(name for name, d in old.items() if new_detector(new, name) != d)
        # 1. Checkpoint and commit every unit, then leave the group: changing the subscription of a
        #    live kafka-python 3 consumer can strand it without an assignment (seen in tests).
        self._set_ready(False, "reloading the configuration")
        self.checkpoint(list(self.units))
        self._parked.update(self.units)
        self.units.clear()
        self.consumer.close(autocommit=False, timeout_ms=5000)
        # 2. Switch the config. Parked units of unchanged detectors are taken back at the next
        #    assignment if nobody checkpointed their partition since; changed detectors restart
        #    from their checkpoints; removed ones are closed once the assignment is known.
        self.config = new
        self._topic_map = new.topic_map()
        for det in new.detectors:
            self.metrics.for_detector(det.name)
        self._build_outputs()
        # 3. Join the group again with the new subscription.
        self._subscribe(new)
        log.info("config reloaded", extra={"changed": sorted(changed), "topics": self._topics()})

    def _start_http(self) -> None:
        if not self._http_enabled:
            return
        from .httpserver import HttpServer

        self.http = HttpServer(self.registry, ready=self.readiness, health=self.health)
        host, port = self.config.metrics.host, self.config.metrics.port
        try:
            self.http_port = self.http.start(host, port)
        except OSError as exc:
            self.http = None
            raise RnnstreamError(port_problem(host, port) or f"metrics port {port} on {host}: {exc.strerror or exc}") from None
        log.info("metrics endpoint up", extra={"port": self.http_port})

    def _set_ready(self, ready: bool, reason: str) -> None:
        self._ready_reason = "" if ready else reason
        self.metrics.set_ready(self.readiness()[0])


def _collect_cycles() -> None:
    """Collect cyclic garbage among the objects allocated since the last call (the two young
    generations; survivors go to the oldest), and every ``FULL_GC_EVERY``-th call all of it. A full
    ``gc.collect()`` each checkpoint re-traversed every unit, kafka-python structure and module object
    (0.1-0.3 s with the loop stopped: a latency spike). Survivors are not frozen (``gc.freeze``):
    kafka-python's group coordination leaves reference cycles that must still be collected (with them
    frozen, a consumer that had just been assigned rejoined and never got its partitions back)."""
    global _collections
    started = time.perf_counter()
    _collections += 1
    full = _collections % FULL_GC_EVERY == 0
    found = gc.collect() if full else gc.collect(1)
    log.debug("cyclic garbage collected", extra={"objects": found, "full": full,
                                                  "duration_s": round(time.perf_counter() - started, 4)})


FULL_GC_EVERY = 10
_collections = 0


@dataclass
class _Writing:
    """A background checkpoint: the write of its units' files, and what to commit when it is done."""

    write: Future
    units: list
    offsets: dict
    commit: str
    started: float         # perf_counter at its start
    loop_s: float          # how long it held the loop (flush, copies)
    ok: bool               # False when some detector was left out (undelivered outputs)


class _Skipped(Exception):
    """A checkpoint that could not run now (outputs not delivered in time); the next one retries."""


def broker_connected(consumer: Any) -> bool | None:
    """Whether ``consumer`` talks to its group coordinator (None: unknown, e.g. a test double).

    False when no coordinator is known or its connection is down, and when, in the group, no
    heartbeat has been answered for a session timeout (a hung broker keeps its connections open).
    Reads kafka-python 3's state without side effects (``coordinator_unknown()`` would mark the
    coordinator dead from this thread); a missing attribute means "unknown", never an error.
    """
    coordinator = getattr(consumer, "_coordinator", None)
    conns = getattr(getattr(consumer, "_manager", None), "_conns", None)
    if coordinator is None or conns is None:
        return None
    node = getattr(coordinator, "coordinator_id", None)
    if node is None:
        return False
    conn = conns.get(node)
    if conn is None or not getattr(conn, "connected", False):
        return False
    beat = getattr(coordinator, "heartbeat", None)
    # The last heartbeat answered, or the join (before the first heartbeat).
    answered = max(getattr(beat, "last_receive", -math.inf), getattr(beat, "last_reset", -math.inf))
    session = getattr(beat, "config", {}).get("session_timeout_ms") if beat is not None else None
    stable = getattr(coordinator, "stable", None)
    if callable(stable) and stable() and session and time.monotonic() - answered > session / 1000:
        return False   # in the group, yet no heartbeat answered for a whole session timeout
    return True


def stranded_reason(consumer: Any, admin_factory: Callable[[], Any], group: str, topics: list[str]) -> str | None:
    """Why a consumer that holds no partition should rejoin (``Runner._check_stranded``), or None when
    that is the group's assignment (or nothing can be told: no metadata, a test double)."""
    cluster = getattr(getattr(consumer, "_client", None), "cluster", None)
    generation = getattr(getattr(consumer, "_coordinator", None), "_generation", None)
    if cluster is None or generation is None:
        return None
    wanted = {(t, p) for t in topics for p in (cluster.partitions_for_topic(t) or ())}
    if not wanted:
        return None   # no partition to have (missing topics are reported by readiness)
    admin = admin_factory()
    try:
        view = admin.describe_groups([group]).get(group) or {}
    finally:
        admin.close()
    state, members = view.get("group_state"), view.get("members") or []
    if state != "Stable":
        return f"the group has been {state or 'unknown'} for a session timeout"
    held: dict[str, set] = {}
    for m in members:
        parts = (m.get("member_assignment") or {}).get("assigned_partitions") or []
        held[m.get("member_id")] = {(a["topic"], p) for a in parts for p in a["partitions"]}
    me = getattr(generation, "member_id", None)
    if me not in held:
        return "the group does not know this consumer"
    if held[me] & wanted:
        return f"the group assigned it {len(held[me] & wanted)} partition(s) it does not hold"
    nobody = wanted - set().union(*held.values())
    if nobody:
        return f"{len(nobody)} partition(s) are assigned to no member"
    return None


def missing_topics(consumer: Any, topics: list[str]) -> list[str]:
    """The subscribed ``topics`` of which the consumer's cluster metadata knows no partition (no I/O)."""
    cluster = getattr(getattr(consumer, "_client", None), "cluster", None)
    if cluster is None or not getattr(cluster, "_last_successful_refresh_ms", 0):
        return []   # no metadata answer yet: nothing to say
    return [t for t in topics if not cluster.partitions_for_topic(t)]


def new_detector(config: Config, name: str):
    try:
        return config.detector(name)
    except KeyError:
        return None


def _names(tps) -> list[str]:
    return [f"{tp.topic}[{tp.partition}]" for tp in tps]


def _default_consumer(cfg: Config, topics: list[str], assignors: list | None = None) -> KafkaConsumer:
    extra: dict[str, Any] = {"isolation_level": "read_committed"} if cfg.processing.guarantee == "exactly_once" else {}
    if assignors:
        extra["partition_assignment_strategy"] = assignors
    consumer = KafkaConsumer(enable_auto_commit=False, **cfg.kafka.consumer_kwargs(), **extra)
    fetch.install(consumer)   # v2 record batches parsed in one loop each (rnnstream.daemon.fetch)
    return consumer


def _default_producer(cfg: Config) -> KafkaProducer:
    extra: dict[str, Any] = {}
    if cfg.processing.guarantee == "exactly_once":
        extra = {"transactional_id": transactional_id(cfg),
                 "transaction_timeout_ms": cfg.processing.transaction_timeout_ms}
    # Batching (kafka.linger_ms, kafka.producer_batch_bytes) is what every-event scores and a
    # commit's changelog rows (KBs each) need: with 16 KB batches the sender woke every ~80 records.
    # kafka-python's own client metrics (nothing reads them: the daemon's are Prometheus') cost its
    # sender thread about a sixth of its Python per produce request, GIL held.
    return KafkaProducer(acks="all", max_block_ms=cfg.daemon.output_send_timeout_ms, metrics_enabled=False,
                         **cfg.kafka.producer_kwargs(), **extra)


def transactional_id(cfg: Config) -> str:
    """This replica's transactional.id: ``processing.transactional_id``, default ``<group_id>.<hostname>``.

    Stable across the replica's restarts (so a restart fences its previous incarnation) and unique
    among replicas; fencing of a replica whose partitions moved relies on the consumer group
    generation sent with the offsets (KIP-447), not on the id."""
    template = cfg.processing.transactional_id or "{group_id}." + socket.gethostname()
    return template.replace("{group_id}", cfg.kafka.group_id)


def _admin(cfg: Config):
    from kafka.admin import KafkaAdminClient

    return KafkaAdminClient(**cfg.kafka.client_kwargs())


def notify(state: str) -> None:
    from .notify import sd_notify

    sd_notify(state)


def watchdog_interval() -> float | None:
    from .notify import watchdog_interval as interval

    return interval()


_hard_exit_timer: threading.Timer | None = None


def hard_exit_after(seconds: float) -> None:
    """End the process after ``seconds`` if it is still running (first call only): the last resort of
    the shutdown budget, when a library call ignores its deadline. Offsets not committed by then are
    replayed after the restart."""
    global _hard_exit_timer
    if _hard_exit_timer is not None:
        return

    def bail() -> None:
        log.error("shutdown budget exceeded; exiting without a clean close",
                  extra={"budget_s": seconds})
        logging.shutdown()
        os._exit(3)
    _hard_exit_timer = threading.Timer(seconds, bail)
    _hard_exit_timer.daemon = True
    _hard_exit_timer.start()


def main(config_path: str) -> int:
    """Entry point of ``rnnstream run -c FILE``. Returns the process exit code."""
    from ..kernels.jit import configure_cache, configured_cache
    from .logs import setup_logging

    if configured_cache() is None:   # as the command line does (this is also its entry point)
        configure_cache()

    try:
        config = load_config(config_path)
    except RnnstreamError as exc:
        print(f"rnnstream: {exc}", flush=True)
        return 2
    setup_logging(config.logging)
    runner = Runner(config, config_path=config_path)

    def on_stop(*_: Any) -> None:
        runner.stop()
        hard_exit_after(runner.config.daemon.shutdown_timeout_seconds + 1.5)
    signal.signal(signal.SIGTERM, on_stop)
    signal.signal(signal.SIGINT, on_stop)
    if hasattr(signal, "SIGHUP"):
        signal.signal(signal.SIGHUP, lambda *_: runner.request_reload())
    try:
        return runner.run()
    except RnnstreamError as exc:
        log.error("daemon failed", extra={"error": str(exc)})
        return 1
