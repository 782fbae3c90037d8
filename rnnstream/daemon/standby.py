"""Standby replicas (``processing.standby_replicas``): warm copies of partitions this replica does not own.

Who keeps which copy is decided inside the consumer group's own assignment, with no coordinator of
our own (as Kafka Streams does). Every replica joins with ``StandbyAssignor``: its subscription's
user data says which partitions the replica holds (units it owns or just gave up, and standby copies).
The group leader's assignor (``plan``) gives each partition to a member, preferring its previous
owner, then a member with a warm copy, within balanced counts, and names ``standby_replicas`` other
members to keep a copy, preferring those that already have one. Each member reads its standby
partitions from its own assignment's user data. A group where some member does not offer this
assignor (a rolling config change) falls back to range assignment, without standbys meanwhile.

``Tailer`` keeps the copies: a thread with its own group-less ``read_committed`` consumer, assigned the
changelog partitions of the standby partitions from their beginning, folds their records into the same
``Collector`` a restore uses. When such a partition is assigned here, ``take`` hands its copy over and
the restore reads only the changelog records after it (``StateLog.restore(warm=...)``): the result is
the one a restore from the whole changelog gives.

Not guaranteed: that a partition lands on a replica holding its copy (it does while that replica is
under its fair share of partitions; a replica that joins gets partitions it has no copy of), nor that a
copy is current (``rnnstream_standby_lag_records``). A copy costs the memory of the partition's rows.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any, Callable

import orjson
from kafka.coordinator.assignors.abstract import AbstractPartitionAssignor
from kafka.protocol.consumer.metadata import ConsumerProtocolAssignment, ConsumerProtocolSubscription

from .changelog import Collector

log = logging.getLogger(__name__)

LAG_EVERY_S = 2.0     # how often the copies' lag is measured (one offsets request)


# -- the assignment -----------------------------------------------------------------------------------

def plan(partitions: list[int], members: list[str], active: dict[str, set], warm: dict[str, set],
         replicas: int) -> tuple[dict[str, list[int]], dict[str, list[int]]]:
    """One topic's ``(owned, standby)`` partitions per member. Each member owns floor(n/m) or
    ceil(n/m) partitions; a partition goes to its previous owner (``active``) if that fits, else to a
    member with a copy (``warm``), else to the least loaded; then up to ``replicas`` other members keep
    a copy of it, those holding one first, then the fewest copies. Deterministic in its arguments."""
    floor, extra = divmod(len(partitions), max(len(members), 1))
    load = {m: 0 for m in members}
    owner: dict[int, str] = {}
    spare = [extra]

    def room(m: str) -> bool:
        return load[m] < floor or (load[m] == floor and spare[0] > 0)

    def give(p: int, m: str) -> None:
        if load[m] == floor:
            spare[0] -= 1
        load[m] += 1
        owner[p] = m

    for prefer in (active, warm):
        for p in partitions:
            if p not in owner:
                for m in members:
                    if p in prefer.get(m, ()) and room(m):
                        give(p, m)
                        break
    for p in partitions:
        if p not in owner:
            give(p, min((m for m in members if room(m)), key=lambda m: (load[m], members.index(m))))
    owned: dict[str, list[int]] = {m: [] for m in members}
    copies: dict[str, list[int]] = {m: [] for m in members}
    for p in partitions:
        owned[owner[p]].append(p)
        others = sorted((m for m in members if m != owner[p]),
                        key=lambda m: (p not in warm.get(m, ()) and p not in active.get(m, ()),
                                       len(copies[m]), members.index(m)))
        for m in others[:replicas]:
            copies[m].append(p)
    return owned, copies


class StandbyAssignor(AbstractPartitionAssignor):
    """The group assignment with standby copies (see the module docstring). ``held()`` returns this
    replica's ``(active, warm)`` sets of ``(topic, partition)``; ``standby`` is what the last
    assignment asked this replica to keep (emptied by ``clear`` at each revocation, so a generation
    assigned by another assignor leaves it empty)."""

    name = "rnnstream-standby"
    version = 0

    def __init__(self, replicas: int, held: Callable[[], tuple[set, set]]):
        self.replicas = replicas
        self._held = held
        self.standby: set[tuple[str, int]] = set()

    def metadata(self, topics):
        active, warm = self._held()
        data = orjson.dumps({"active": sorted(active), "warm": sorted(warm)})
        return ConsumerProtocolSubscription(self.version, sorted(topics), data)

    def assign(self, cluster, members):
        topics: dict[str, list[str]] = {}
        active: dict[str, dict[str, set]] = {}
        warm: dict[str, dict[str, set]] = {}
        for member in sorted(members, key=lambda m: m.member_id):
            info = _decode(member.metadata.user_data)
            for t in member.metadata.topics:
                topics.setdefault(t, []).append(member.member_id)
            for kind, into in (("active", active), ("warm", warm)):
                for t, p in info.get(kind, ()):
                    into.setdefault(t, {}).setdefault(member.member_id, set()).add(int(p))
        owned: dict[str, dict[str, list[int]]] = {m.member_id: {} for m in members}
        copies: dict[str, list] = {m.member_id: [] for m in members}
        for t, subscribers in sorted(topics.items()):
            partitions = sorted(cluster.partitions_for_topic(t) or ())
            if not partitions:
                log.warning("no partition metadata for a subscribed topic; not assigned", extra={"topic": t})
                continue
            mine, theirs = plan(partitions, subscribers, active.get(t, {}), warm.get(t, {}), self.replicas)
            for m in subscribers:
                if mine[m]:
                    owned[m][t] = mine[m]
                copies[m] += [[t, p] for p in theirs[m]]
        return {m: ConsumerProtocolAssignment(self.version, sorted(owned[m].items()),
                                              orjson.dumps({"standby": copies[m]}))
                for m in owned}

    def on_assignment(self, assignment, generation):
        self.standby = {(t, int(p)) for t, p in _decode(assignment.user_data).get("standby", ())}

    def clear(self) -> None:
        self.standby = set()


def _decode(data: Any) -> dict:
    """A member's user data (ours: JSON), or {} for anything else (another assignor's, or none)."""
    if not data:
        return {}
    try:
        out = orjson.loads(bytes(data))
    except (orjson.JSONDecodeError, TypeError, ValueError):
        return {}
    return out if isinstance(out, dict) else {}


# -- the copies ---------------------------------------------------------------------------------------

class Tailer:
    """Standby copies, each a ``Collector`` of one input partition fed from its changelog partition by
    a thread (``start``/``close``). ``set_tasks`` says which copies to keep; ``take`` hands one over.
    ``consumer_factory()`` builds the thread's group-less read_committed consumer."""

    def __init__(self, consumer_factory: Callable[[], Any], metrics: Any, poll_ms: int = 200,
                 lag_every_s: float = LAG_EVERY_S):
        self._factory = consumer_factory
        self._lag_every_s = lag_every_s
        self._metrics = metrics
        self._poll_ms = poll_ms
        self._lock = threading.Lock()
        # (changelog topic, partition) -> {input topic: (detector, Collector)}
        self._copies: dict[tuple[str, int], dict[str, tuple[str, Collector]]] = {}
        self._position: dict[tuple[str, int], int] = {}   # changelog offset the copies have read to
        self._reset: set[tuple[str, int]] = set()         # to read again from the beginning
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lag_at = 0.0
        self._detectors: set[str] = set()   # every detector a copy was kept of (its gauges are set)

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="rnnstream-standby", daemon=True)
        self._thread.start()

    def close(self, timeout: float = 3.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def set_tasks(self, tasks: list[tuple[str, str, str, int]]) -> None:
        """Keep copies of exactly ``tasks``: ``(detector, changelog topic, input topic, partition)``.
        Copies kept before stay warm; new ones are read from their changelog's beginning."""
        with self._lock:
            want: dict[tuple[str, int], dict[str, str]] = {}
            for det, cl_topic, topic, p in tasks:
                self._detectors.add(det)
                want.setdefault((cl_topic, p), {})[topic] = det
            for key in list(self._copies):
                if key not in want:
                    del self._copies[key]
                    self._position.pop(key, None)
                    self._reset.discard(key)
            for key, topics in want.items():
                have = self._copies.setdefault(key, {})
                for topic in list(have):
                    if topic not in topics:
                        del have[topic]
                for topic, det in topics.items():
                    if topic not in have:
                        have[topic] = (det, Collector(topic))
                        self._reset.add(key)
            self._restart(set(self._reset))
            self._export_counts()

    def _restart(self, keys: set) -> None:
        """Read every copy of the changelog partitions ``keys`` again from their beginning (lock held)."""
        for key in keys:
            self._copies[key] = {t: (d, Collector(t)) for t, (d, _) in self._copies[key].items()}
            self._position.pop(key, None)
            self._reset.add(key)

    def take(self, cl_topic: str, partition: int, topic: str) -> tuple[Collector, int] | None:
        """The copy of input partition ``(topic, partition)`` and the changelog offset it has read to,
        removed from the copies kept; None when there is none (or it has not started reading)."""
        with self._lock:
            key = (cl_topic, partition)
            entry = self._copies.get(key)
            if entry is None or topic not in entry:
                return None
            _, collector = entry.pop(topic)
            position = None if key in self._reset else self._position.get(key)
            if not entry:
                del self._copies[key]
                self._position.pop(key, None)
                self._reset.discard(key)
            self._export_counts()
        return None if position is None else (collector, position)

    def warm(self) -> set[tuple[str, int]]:
        """The input partitions ``(topic, partition)`` of which a copy is being read."""
        with self._lock:
            return {(t, p) for (_, p), entry in self._copies.items() for t in entry}

    def positions(self) -> dict[tuple[str, int], int]:
        """Changelog offset each kept changelog partition has been read to (for tests and tools)."""
        with self._lock:
            return {k: v for k, v in self._position.items() if k not in self._reset}

    # -- the thread ------------------------------------------------------------------------------------

    def _run(self) -> None:
        consumer = None
        try:
            while not self._stop.is_set():
                try:
                    if consumer is None:
                        consumer = self._factory()
                    if not self._step(consumer):
                        self._stop.wait(self._poll_ms / 1000)
                except Exception as exc:   # the broker away, a topic recreated: try again shortly
                    log.warning("standby copies: reading the changelog failed; retrying",
                                extra={"error": f"{type(exc).__name__}: {exc}"})
                    with self._lock:
                        self._restart(set(self._copies))
                    self._stop.wait(1.0)
        finally:
            if consumer is not None:
                consumer.close()

    def _step(self, consumer: Any) -> bool:
        """One poll of the kept changelog partitions; False when there is none."""
        from kafka import TopicPartition

        with self._lock:
            keys, reset = set(self._copies), set(self._reset)
        tps = {TopicPartition(*k) for k in keys}
        if set(consumer.assignment()) != tps:
            consumer.assign(sorted(tps))
        if not tps:
            return False
        if reset:
            begins = consumer.beginning_offsets([TopicPartition(*k) for k in reset], timeout_ms=15000)
            for tp, offset in begins.items():
                consumer.seek(tp, offset)
            with self._lock:   # a copy asked for meanwhile is reset again at the next step
                for tp, offset in begins.items():
                    key = (tp.topic, tp.partition)
                    if key in self._reset and key in self._copies:
                        self._reset.discard(key)
                        self._position[key] = int(offset)
        batch = consumer.poll(timeout_ms=self._poll_ms, max_records=5000)
        positions = {tp: consumer.position(tp) for tp in tps}
        with self._lock:
            for tp in tps:
                key = (tp.topic, tp.partition)
                if key in self._reset or key not in self._copies:   # asked for again during the poll
                    continue
                for r in batch.get(tp, ()):
                    for _, collector in self._copies[key].values():
                        collector.add(r.key, r.value)
                if positions.get(tp) is not None:
                    self._position[key] = int(positions[tp])
        now = time.monotonic()
        if now - self._lag_at >= self._lag_every_s:
            self._lag_at = now
            ends = consumer.end_offsets(sorted(tps), timeout_ms=15000)
            with self._lock:
                lag = dict.fromkeys(self._detectors, 0)
                for tp, end in ends.items():
                    key = (tp.topic, tp.partition)
                    for det, _ in self._copies.get(key, {}).values():
                        lag[det] = lag.get(det, 0) + max(int(end) - self._position.get(key, 0), 0)
                for det, n in lag.items():
                    self._metrics.for_detector(det).standby_lag.set(n)
        return True

    def _export_counts(self) -> None:
        counts: dict[str, int] = {}
        for entry in self._copies.values():
            for det, _ in entry.values():
                counts[det] = counts.get(det, 0) + 1
        for det in self._detectors:
            self._metrics.for_detector(det).standby_partitions.set(counts.get(det, 0))


# -- the runner's side --------------------------------------------------------------------------------

class Standbys:
    """What the daemon (``rnnstream.daemon.runner``) uses: the assignor to join with, the copies to
    keep after each assignment, and a copy to restore from. ``owned()`` returns the input partitions
    whose units the replica holds (owned, or just given up at a revocation)."""

    def __init__(self, config: Any, metrics: Any, owned: Callable[[], set]):
        from .changelog import restore_consumer

        self.assignor = StandbyAssignor(config.processing.standby_replicas, self._held)
        self.tailer = Tailer(lambda: restore_consumer(config), metrics)
        self._owned = owned

    def _held(self) -> tuple[set, set]:
        return {(tp.topic, tp.partition) for tp in self._owned()}, self.tailer.warm()

    def assignors(self) -> list:
        """``partition_assignment_strategy`` of the group consumer: ours, then kafka-python's
        defaults, which a group takes while one of its members does not offer ours."""
        from kafka.coordinator.assignors.range import RangePartitionAssignor
        from kafka.coordinator.assignors.roundrobin import RoundRobinPartitionAssignor

        return [self.assignor, RangePartitionAssignor, RoundRobinPartitionAssignor]

    def start(self) -> None:
        self.tailer.start()

    def revoked(self) -> None:
        self.assignor.clear()

    def assigned(self, config: Any) -> None:
        """Keep the copies the assignment just asked for (call once the assigned units are taken)."""
        from .changelog import changelog_topic

        topics = config.topic_map()
        self.tailer.set_tasks([(topics[t].name, changelog_topic(config, topics[t].name), t, p)
                               for t, p in sorted(self.assignor.standby) if t in topics])

    def take(self, config: Any, det_cfg: Any, tp: Any) -> tuple[Collector, int] | None:
        from .changelog import changelog_topic

        return self.tailer.take(changelog_topic(config, det_cfg.name), tp.partition, tp.topic)

    def close(self, timeout: float = 3.0) -> None:
        self.tailer.close(timeout)
