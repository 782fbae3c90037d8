"""What a detector writes back to Kafka: anomaly events, per-event scores, dead letters.

Anomaly event (JSON, key = entity, UTF-8)::

    {"event_id": "<detector>:<topic>:<partition>:<offset>", "detector", "entity",
     "timestamp": ISO-8601 UTC of the event time, "event_time": epoch seconds, "score", "error",
     "features": {name: {"observed", "predicted", "z", "kind"}}, "blamed": [feature names],
     "model_version", "instance_id", "source": {"topic", "partition", "offset"}}

A feature's ``kind`` is what the scorer blames it for (``spike``, ``drop``, ``level_shift``,
``flatline``, ``novelty``; see ``kernels.calibrate``), or null; ``blamed`` lists the features with a kind.

``event_id`` names the source record, so a consumer can drop the duplicates a restart replays (the
daemon guarantees at-least-once delivery, not exactly-once). Score events carry the same ids and a
subset of the fields plus ``anomaly``/``suppressed``/``anomalous``. A dead letter is the ORIGINAL key
and value bytes with the source record's headers followed by ``rnnstream.*`` headers saying why.

Scores, ``outputs.scores_format: batch`` (schema ``rnnstream.scores`` version 2: the layout in
``scoresbatch``, which also decodes it): one record per poll and source partition, key
``<detector>:<topic>:<partition>`` (so the batches of one source partition stay in order on one output
partition), every scored event of it once, in offset order: a JSON header (source, count, offsets and
model versions as runs, entities) and the float64 event times, scores and errors and a flags byte per
event in binary columns.

Event ``k``'s id is ``<detector>:<source.topic>:<source.partition>:<offset[k]>``, as in the record
format. A poll whose batch would exceed the producer's record size limit is split into several
records (each a valid batch of consecutive events). Rejected events have no score in either format.

Delivery. Sends are asynchronous (the producer batches). Scores, in either format, are handed to a
kafka-python producer as whole record batches, one per poll and output partition (``rawbatch``: a few
µs an event instead of a ``send`` each, and no linger), with the producer's acks, retries, idempotence
and transactions; any other producer, a topic whose partitions are not known, and a failing topic go
through ``send``. Under the daemon's loop (``deferred_wake``) a poll's scores continue the output
partition's *open* batch, and while polls come full (``hold_scores``) the next polls' do too, up to a
produce request's size or ``SCORES_HOLD_S``: a produce request costs the producer and the broker
about the same CPU whatever its size, so several polls share one. A poll that is not full, a flush and
a transaction's commit send what is held; scores wait at most ``SCORES_HOLD_S`` longer, and only
while the loop is behind. No output failure raises out of this module:

* an output larger than the producer's ``max_request_size``, or refused by the broker as too large
  (the topic's ``max.message.bytes``), is replaced by a *reference*: value
  ``{"reference": {"topic", "partition", "offset"}, "size", "reason", "detector"}`` naming the source
  record, key kept when short, the ``rnnstream.*`` headers kept, and a header ``rnnstream.truncated``
  saying why (counted in ``rnnstream_outputs_truncated_total``);
* any other failure (a missing topic, a broker outage, a send blocked past ``max_block_ms``) keeps the
  record in a retry queue: ``service()``, called by the loop, sends it again with exponential backoff
  (``retry_backoff_ms`` doubling up to ``retry_backoff_max_ms``); meanwhile new outputs to a failing
  topic join the queue without blocking the loop. Counted in ``rnnstream_output_send_failures_total``,
  queued records in ``rnnstream_outputs_pending``;
* an output that can never be sent (the producer refuses its types, or is closed) is logged with its
  source and counted in ``rnnstream_outputs_dropped_total``.

Asynchronous failures are found without a callback per record (a callback cost as much as a third of
what publishing a score costs): every record's future is kept until it is done, and ``service()`` takes
the failed ones; after ``producer.flush()`` every future is done, so a checkpoint's ``service()`` sees
every failure of what it covers.

While ``pending`` is non-zero the runner neither checkpoints nor commits this detector's partitions, and
pauses them, so what was not delivered is re-sent, or replayed after a restart (at least once). A topic
set to null in the config is not written, and the call returns False.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from operator import attrgetter
from typing import Any, Callable, Sequence

import orjson
import numpy as np
from kafka.errors import KafkaError, MessageSizeTooLargeError, RecordListTooLargeError
from kafka.partitioner.default import murmur2

from ..kernels.calibrate import KIND_NAMES, score_flags
from . import rawbatch, scoresbatch, scorerecords

log = logging.getLogger(__name__)

MAX_DETAIL_BYTES = 1024
MAX_REFERENCE_KEY_BYTES = 1024
DEFAULT_MAX_REQUEST_BYTES = 1048576          # kafka-python's max_request_size default
RECORD_OVERHEAD_BYTES = 512                  # batch and record framing, with a margin
_TOO_LARGE = (MessageSizeTooLargeError, RecordListTooLargeError)
MAX_KEY_PARTITIONS_CACHED = 1 << 20
SCORE_NUMBERS_BYTES = 256                    # a per-record score value's numbers and framing, at most
SCORES_HOLD_S = 0.2     # scores held for a fuller produce request while the loop is behind, at most


def iso_utc(seconds: float) -> str:
    """``2024-01-02T03:04:05.678Z`` for epoch ``seconds``."""
    return datetime.fromtimestamp(seconds, timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def event_id(detector: str, topic: str, partition: int, offset: int) -> str:
    return f"{detector}:{topic}:{partition}:{offset}"


_OFFSET = attrgetter("offset")


def _selected(raw: Sequence[Any], entities: Sequence[str], index: np.ndarray) -> tuple[list, np.ndarray]:
    """The entities and source offsets of events ``index`` (``entities[i]`` is ``raw[i]``'s; ``raw`` is
    one partition's records, offsets increasing). The entities list may be ``entities`` itself."""
    n = len(index)
    first = raw[0].offset
    if raw[-1].offset - first == len(raw) - 1:     # no gap in the poll: record i is at first + i
        offsets = index.astype(np.int64) + first
    elif n == len(raw):
        offsets = np.fromiter(map(_OFFSET, raw), np.int64, n)
    else:
        offsets = np.fromiter([raw[i].offset for i in index.tolist()], np.int64, n)
    if n == len(entities) == len(raw):     # every event scored: index is 0 .. n-1
        return entities if type(entities) is list else list(entities), offsets
    return [entities[i] for i in index.tolist()], offsets


@dataclass(slots=True)
class _Batch:
    """Score records published as one record batch (``rawbatch``), kept until the batch is delivered.
    A batch ``scorerecords`` encoded has no ``keys``/``values``/``sources`` lists: they are read
    back from its ``buffer`` and ``raw[rows]`` if it fails."""

    topic: str
    keys: list | None
    values: list | None
    sources: list | None
    watch: Any = None       # its rawbatch.SplitWatch
    first: int = 0          # coalesced (``RawPublisher.publish_coalesced``): where its records start in
    count: int | None = None   # the record batch, and how many (None: the whole batch is this one's)
    buffer: Any = None      # encoded: scorerecords.ROOM bytes, then the records
    raw: Any = None         # encoded: the poll's source records ...
    rows: Any = None        # ... and the positions in ``raw`` of this batch's events, in record order


@dataclass(slots=True)
class _Out:
    """One output record, kept until delivered (``source`` is the input record it came from)."""

    topic: str
    key: bytes | None
    value: bytes | None
    headers: list | None
    kind: str
    source: Any
    reference: bool = False


class Outputs:
    """Writes one detector's outputs through a kafka-python ``KafkaProducer`` (or anything with ``send``).

    The producer must have no serializers: keys, values and header values are passed as bytes.
    """

    def __init__(self, producer: Any, cfg: Any, instance_id: str, *, metrics: Any = None,
                 retry_backoff_ms: int = 500, retry_backoff_max_ms: int = 30000,
                 clock: Callable[[], float] = time.monotonic):
        self.producer = producer
        self.cfg = cfg
        self.detector = cfg.name
        self.instance_id = instance_id
        self.features = tuple(cfg.features)
        self.anomalies_topic = cfg.outputs.anomalies_topic
        self.scores_topic = cfg.outputs.scores_topic
        self.dead_letter_topic = cfg.outputs.dead_letter_topic
        self.metrics = metrics          # an rnnstream.metrics.DetectorMetrics, or None
        config = getattr(producer, "config", None)
        limit = config.get("max_request_size") if isinstance(config, dict) else None
        self.max_record_bytes = int(limit or DEFAULT_MAX_REQUEST_BYTES)
        self._backoff_first = retry_backoff_ms / 1000.0
        self._backoff_max = retry_backoff_max_ms / 1000.0
        self._backoff = self._backoff_first
        self._clock = clock
        self.scores_format = cfg.outputs.scores_format
        # Records sent and not known delivered: (future, _Out), or for per-record scores
        # (future, (topic, key, value, source)) so that no _Out is built unless one fails.
        self._inflight: list[tuple[Any, Any]] = []
        self._partitions: dict[bytes, int] = {}   # scores: key -> partition, as the default partitioner
        self._partition_count = 0
        self._entity_partition: dict[str, int] = {}   # the same, by entity (per-record scores' keys)
        self._pieces: dict = {}                   # (topic, partition) -> scorerecords.pieces_for(...)
        # Scores go to kafka-python's accumulator as whole record batches when the producer allows it.
        self._raw = rawbatch.RawPublisher(producer) if rawbatch.available(producer) else None
        # True (the daemon's loop): record batches are queued without waking the producer's sender,
        # and the caller calls ``wake()`` once its poll's outputs are all queued.
        self.deferred_wake = False
        # True (set by the loop while it is behind: Runner._behind): scores, in either format, stay
        # in each output partition's open record batch, filled by the next polls, until it is full,
        # until SCORES_HOLD_S passes, or until a ``wake()`` with this False (a poll that was not
        # behind, an empty one), a flush or a commit. Needs ``deferred_wake``.
        self.hold_scores = False
        self._pending: list[_Out] = []
        self._blocked: dict[str, str] = {}      # topic -> last error, while it is failing
        self._failing_since: float | None = None
        self._next_retry = 0.0
        self.sent = {"anomaly": 0, "score": 0, "dead_letter": 0}
        self.truncated = 0
        self.dropped = 0
        self.send_failures = 0
        if metrics is not None:                 # every series exists from the start, at 0
            for topic in cfg.outputs.topics():
                metrics.output_failed(topic)

    # -- single records ---------------------------------------------------------------------------

    def anomaly(self, record: Any, entity: str, event_time: float, score: float, error: float,
                observed: Sequence[float], predicted: Sequence[float], z: Sequence[float],
                model_version: int, kind: Sequence[int] | None = None) -> bool:
        """Publish the anomaly event of source ``record`` (anything with topic/partition/offset)."""
        if self.anomalies_topic is None:
            return False
        event = self.anomaly_event(record, entity, event_time, score, error, observed, predicted, z,
                                   model_version, kind)
        self._send(_Out(self.anomalies_topic, entity.encode(), orjson.dumps(event), None, "anomaly", record))
        return True

    def anomaly_event(self, record: Any, entity: str, event_time: float, score: float, error: float,
                      observed: Sequence[float], predicted: Sequence[float], z: Sequence[float],
                      model_version: int, kind: Sequence[int] | None = None) -> dict[str, Any]:
        """The anomaly event as a dict (what ``anomaly`` serialises)."""
        kinds = [KIND_NAMES[int(k)] or None for k in kind] if kind is not None else [None] * len(self.features)
        feats = {name: {"observed": float(observed[i]), "predicted": float(predicted[i]), "z": float(z[i]),
                        "kind": kinds[i]}
                 for i, name in enumerate(self.features)}
        return {
            "event_id": event_id(self.detector, record.topic, record.partition, record.offset),
            "detector": self.detector,
            "entity": entity,
            "timestamp": iso_utc(event_time),
            "event_time": float(event_time),
            "score": float(score),
            "error": float(error),
            "features": feats,
            "blamed": [name for name, k in zip(self.features, kinds) if k],
            "model_version": int(model_version),
            "instance_id": self.instance_id,
            "source": {"topic": record.topic, "partition": int(record.partition), "offset": int(record.offset)},
        }

    def score(self, record: Any, entity: str, event_time: float, score: float, error: float,
              flag: int, model_version: int) -> bool:
        """Publish one event's score to ``scores_topic`` (key = entity)."""
        if self.scores_topic is None:
            return False
        anomaly, suppressed, anomalous = (bool(b) for b in score_flags(flag))
        event = {
            "event_id": event_id(self.detector, record.topic, record.partition, record.offset),
            "detector": self.detector,
            "entity": entity,
            "event_time": float(event_time),
            "score": float(score),
            "error": float(error),
            "anomaly": anomaly,
            "suppressed": suppressed,
            "anomalous": anomalous,
            "model_version": int(model_version),
        }
        self._send(_Out(self.scores_topic, entity.encode(), orjson.dumps(event), None, "score", record))
        return True

    def scores(self, raw: Sequence[Any], entities: Sequence[str], ts: np.ndarray, index: np.ndarray,
               score: np.ndarray, error: np.ndarray, flag: np.ndarray, model_version: Any) -> int:
        """Publish the scores of one poll's events of one source partition: event ``j`` is source record
        ``raw[index[j]]`` (``index`` increasing), with ``score[j]``, ``error[j]``, ``flag[j]`` and
        ``model_version`` (one int, or one per event). In ``outputs.scores_format`` (module docstring).
        Returns the number of events published (0 when the scores topic is not set)."""
        n = len(index)
        if self.scores_topic is None or n == 0:
            return 0
        versions = np.broadcast_to(np.asarray(model_version, dtype=np.int64), (n,))
        if self.scores_format == "batch":
            self._score_batches(raw, entities, ts, index, score, error, flag, versions)
        else:
            self._score_records(raw, entities, ts, index, score, error, flag, versions)
        return n

    def _score_records(self, raw, entities, ts, index, score, error, flag, versions) -> None:
        topic = self.scores_topic
        partition_of = self._partitioner(topic)
        limit = self.max_record_bytes - RECORD_OVERHEAD_BYTES
        as_batches = self._raw is not None and partition_of is not None and topic not in self._blocked
        if as_batches and self._score_encoded(raw, entities, ts, index, score, error, flag, versions,
                                              partition_of, limit):
            return
        records = self._score_values(raw, entities, ts, index, score, error, flag, versions)
        if as_batches:
            # Grouped by output partition, each group one record batch (``rawbatch``).
            groups: dict[int, _Batch] = {}
            for record, key, value in records:
                if len(key) + len(value) > limit:
                    self._send(_Out(topic, key, value, None, "score", record))   # a reference
                    continue
                p = partition_of(key)
                group = groups.get(p)
                if group is None:
                    group = groups[p] = _Batch(topic, [], [], [])
                group.keys.append(key)
                group.values.append(value)
                group.sources.append(record)
            for p, group in groups.items():
                self._publish(p, group)
            return
        send, inflight = self.producer.send, self._inflight
        sent = 0
        for record, key, value in records:
            if topic in self._blocked or len(key) + len(value) > limit:
                self._send(_Out(topic, key, value, None, "score", record))   # queue, or reference
                continue
            try:
                future = send(topic, key=key, value=value,
                              partition=None if partition_of is None else partition_of(key))
            except Exception as exc:
                self._send_failed(_Out(topic, key, value, None, "score", record), exc)
                continue
            sent += 1
            inflight.append((future, (topic, key, value, record)))
        self.sent["score"] += sent

    def _score_encoded(self, raw, entities, ts, index, score, error, flag, versions, partition_of, limit) -> bool:
        """The poll's score records encoded at once (``scorerecords``) and queued as record batches.
        False (nothing done) when an entity is so long that a record could exceed ``limit`` (those
        take the record-at-a-time path, which replaces such a record by a reference)."""
        topic = self.scores_topic
        ents, offsets = _selected(raw, entities, index)
        src = raw[int(index[0])]
        key = (src.topic, src.partition)
        pieces = self._pieces.get(key)
        if pieces is None:
            pieces = self._pieces[key] = scorerecords.pieces_for(self.detector, src.topic, src.partition)
        # A JSON-escaped character takes at most 6 bytes (a \u escape), a UTF-8 one at most 4.
        if 10 * max(map(len, ents)) + len(pieces[0]) + SCORE_NUMBERS_BYTES > limit:
            return False
        parts = self._entity_partitions(partition_of, ents)
        # With the loop (deferred_wake), records go into each output partition's open batch, as
        # batched scores do (``_publish_coalesced``): fewer, fuller produce requests.
        coalesce = self.deferred_wake
        raw_pub = self._raw
        budget = (raw_pub.max_coalesced_bytes if coalesce else raw_pub.max_batch_bytes) - rawbatch.HEADER.size
        batches = scorerecords.encode(pieces, ents, offsets, ts[index], score, error, *score_flags(flag),
                                      versions, parts, budget,
                                      raw_pub.open_batches(topic, self._partition_count) if coalesce else None)
        rows = np.asarray(index)
        for b in batches:
            group = _Batch(topic, None, None, None, buffer=b.buffer, raw=raw, rows=rows[b.events])
            try:
                if coalesce:
                    future, group.watch, group.first = raw_pub.publish_coalesced_framed(
                        topic, b.partition, b.buffer, b.count, b.first, b.ts_delta, SCORES_HOLD_S)
                    group.count = b.count
                else:
                    future, group.watch = raw_pub.publish_framed(topic, b.partition, b.buffer, b.count)
            except Exception as exc:
                for out in self._outs(group):
                    self._send_failed(out, exc)
            else:
                self.sent["score"] += b.count
                self._inflight.append((future, group))
        return True

    def _entity_partitions(self, partition_of: Callable[[bytes], int], ents: list) -> np.ndarray:
        """Output partition of each entity's score record (its key is the entity), by
        ``partition_of`` (``_partitioner``), cached per entity."""
        cache = self._entity_partition
        parts = list(map(cache.get, ents))
        if None in parts:
            for j, p in enumerate(parts):
                if p is None:
                    e = ents[j]
                    p = cache.get(e)
                    if p is None:
                        p = cache[e] = partition_of(e.encode())
                    parts[j] = p
        return np.array(parts, dtype=np.int64)

    def _score_values(self, raw, entities, ts, index, score, error, flag, versions):
        """(source record, key, value) of each event's score record, in the per-record format."""
        det, dumps = self.detector, orjson.dumps
        src = raw[int(index[0])]
        prefix = f"{det}:{src.topic}:{src.partition}:"
        anomaly, suppressed, anomalous = (column.tolist() for column in score_flags(flag))
        for i, t, sc, er, an, su, ao, ver in zip(index.tolist(), ts[index].tolist(), score.tolist(), error.tolist(),
                                                 anomaly, suppressed, anomalous, versions.tolist()):
            record, entity = raw[i], entities[i]
            yield record, entity.encode(), dumps({
                "event_id": prefix + str(record.offset), "detector": det, "entity": entity, "event_time": t,
                "score": sc, "error": er, "anomaly": an, "suppressed": su, "anomalous": ao, "model_version": ver})

    def _publish(self, partition: int, group: _Batch) -> None:
        """The records of ``group`` to ``partition``, as record batches of at most the publisher's size."""
        budget = self._raw.max_batch_bytes - rawbatch.HEADER.size
        keys, values = group.keys, group.values
        sizes = [len(k) + len(v) + rawbatch.RECORD_OVERHEAD for k, v in zip(keys, values)]
        lo, n = 0, len(keys)
        while lo < n:
            hi, used = lo, 0
            while hi < n and (hi == lo or used + sizes[hi] <= budget):
                used += sizes[hi]
                hi += 1
            part = group if lo == 0 and hi == n else _Batch(group.topic, keys[lo:hi], values[lo:hi],
                                                              group.sources[lo:hi])
            try:
                future, part.watch = self._raw.publish(group.topic, partition, part.keys, part.values,
                                                       wake=not self.deferred_wake)
            except Exception as exc:
                for out in self._outs(part):
                    self._send_failed(out, exc)
            else:
                self.sent["score"] += hi - lo
                self._inflight.append((future, part))
            lo = hi

    def _publish_coalesced(self, partition: int, group: _Batch) -> None:
        """The records of ``group`` to ``partition``, appended to its open record batch when it has
        room (``RawPublisher.publish_coalesced``): a poll's and, while ``hold_scores``, the next
        polls' batched scores go out in one produce request. Without ``deferred_wake`` (no loop to
        call ``wake``) the batch is released at once."""
        try:
            future, group.watch, group.first = self._raw.publish_coalesced(
                group.topic, partition, group.keys, group.values, SCORES_HOLD_S)
        except Exception as exc:
            for out in self._outs(group):
                self._send_failed(out, exc)
            return
        group.count = len(group.keys)
        self.sent["score"] += group.count
        self._inflight.append((future, group))
        if not self.deferred_wake:
            self._raw.release()
            self._raw.wake()

    @staticmethod
    def _outs(batch: _Batch) -> list[_Out]:
        if batch.keys is None:      # encoded by scorerecords: read its records back
            sources = [batch.raw[i] for i in batch.rows.tolist()]
            keys, values = rawbatch.decode_records(batch.buffer, len(sources), scorerecords.ROOM)
        else:
            keys, values, sources = batch.keys, batch.values, batch.sources
        return [_Out(batch.topic, k, v, None, "score", src) for k, v, src in zip(keys, values, sources)]

    def _partitioner(self, topic: str) -> Callable[[bytes], int] | None:
        """key -> partition of ``topic`` as kafka-python's default partitioner picks it (murmur2 of
        the key), cached per key (and per entity by ``_entity_partitions``; both cleared together):
        the pure-Python hash was a fifth of a send. None when the producer
        cannot say how many partitions the topic has (a test double; a topic not known yet)."""
        partitions_for = getattr(self.producer, "partitions_for", None)
        if partitions_for is None:
            return None
        try:
            count = len(partitions_for(topic) or ())
        except KafkaError:
            return None
        if count == 0:
            return None
        cache = self._partitions
        if count != self._partition_count or len(cache) > MAX_KEY_PARTITIONS_CACHED:
            cache.clear()
            self._entity_partition.clear()
            self._partition_count = count

        def partition_of(key: bytes) -> int:
            p = cache.get(key)
            if p is None:
                p = cache[key] = (murmur2(key) & 0x7FFFFFFF) % count
            return p
        return partition_of

    def _score_batches(self, raw, entities, ts, index, score, error, flag, versions) -> None:
        src = raw[int(index[0])]
        ents, offsets = _selected(raw, entities, index)
        columns = (offsets, ents, np.ascontiguousarray(ts[index], dtype=np.float64), score, error,
                   *score_flags(flag), versions)
        key = f"{self.detector}:{src.topic}:{src.partition}".encode()
        self._send_batch(key, src, columns, 0, len(offsets))

    def _send_batch(self, key: bytes, src: Any, columns: tuple, lo: int, hi: int) -> None:
        """Events ``lo:hi`` of ``columns`` as one batch record (``scoresbatch``); halves that exceed
        the size limit."""
        offsets, ents, *numbers = columns
        whole = lo == 0 and hi == len(offsets)
        value = scoresbatch.encode(self.detector, self.instance_id, src.topic, src.partition, offsets[lo:hi],
                                   ents if whole else ents[lo:hi], *(c[lo:hi] for c in numbers))
        if len(key) + len(value) + RECORD_OVERHEAD_BYTES > self.max_record_bytes and hi - lo > 1:
            mid = (lo + hi) // 2
            self._send_batch(key, src, columns, lo, mid)
            self._send_batch(key, src, columns, mid, hi)
            return
        partition_of = self._partitioner(self.scores_topic) if self._raw is not None else None
        if (partition_of is not None and self.scores_topic not in self._blocked
                and len(key) + len(value) + RECORD_OVERHEAD_BYTES <= self._raw.max_coalesced_bytes):
            self._publish_coalesced(partition_of(key), _Batch(self.scores_topic, [key], [value], [src]))
            return
        self._send(_Out(self.scores_topic, key, value, None, "score", src))

    def dead_letter(self, record: Any, reason: str, detail: str) -> bool:
        """Forward ``record``'s original key and value to ``dead_letter_topic`` with the reason in headers."""
        if self.dead_letter_topic is None:
            return False
        headers = list(record.headers or [])
        headers += [
            ("rnnstream.reason", reason.encode()),
            ("rnnstream.detail", detail.encode("utf-8", "replace")[:MAX_DETAIL_BYTES]),
            ("rnnstream.source.topic", record.topic.encode()),
            ("rnnstream.source.partition", str(record.partition).encode()),
            ("rnnstream.source.offset", str(record.offset).encode()),
            ("rnnstream.detector", self.detector.encode()),
        ]
        key, value = record.key, record.value
        if key is None and value is None:   # a tombstone: Kafka needs one of them
            value = b""
        self._send(_Out(self.dead_letter_topic, key, value, headers, "dead_letter", record))
        return True

    # -- delivery ---------------------------------------------------------------------------------

    def wake(self) -> None:
        """Send what was queued with ``deferred_wake``: one wake-up of the producer's sender for all;
        unless ``hold_scores``, open batches of batched scores are released first (sent now)."""
        if self._raw is not None:
            if not self.hold_scores:
                self._raw.release()
            self._raw.wake()

    @property
    def pending(self) -> int:
        """Output records waiting to be sent again (0 when everything sent was accepted so far)."""
        return len(self._pending)

    def problem(self) -> str:
        """Why outputs are not being delivered ('' when they are): for /readyz and logs."""
        if not self._pending:
            return ""
        since = self._clock() - (self._failing_since or self._clock())
        topics = ", ".join(f"{t} ({e})" for t, e in sorted(self._blocked.items())) or "retrying"
        return (f"detector {self.detector}: {len(self._pending)} output record(s) undeliverable for "
                f"{since:.0f} s: {topics}")

    def service(self, force: bool = False) -> None:
        """Take the failures the producer reported, and re-send the queue once its backoff is over
        (``force``: now). Call from the loop thread, often; cheap when there is nothing to do."""
        self._collect()
        if not self._pending or (not force and self._clock() < self._next_retry):
            return
        queue, self._pending = self._pending, []
        self._blocked.clear()
        for out in queue:
            self._send(out, retry=True)
        if self._pending:
            self._backoff = min(self._backoff * 2, self._backoff_max)
            self._next_retry = self._clock() + self._backoff
        else:
            log.warning("outputs delivered again", extra={"detector": self.detector, "records": len(queue)})
            self._backoff = self._backoff_first
            self._failing_since = None
        self._set_pending_gauge()

    def discard_pending(self) -> int:
        """Forget every record waiting to be sent again (exactly_once: their transaction was aborted,
        and the events are processed again). Returns how many."""
        self._inflight.clear()
        dropped, self._pending = len(self._pending), []
        self._blocked.clear()
        self._failing_since = None
        self._backoff = self._backoff_first
        self._set_pending_gauge()
        return dropped

    def _send(self, out: _Out, retry: bool = False) -> None:
        if out.topic in self._blocked:           # failing: queue without blocking the loop again
            self._pending.append(out)
            return
        size = (len(out.key or b"") + len(out.value or b"") + RECORD_OVERHEAD_BYTES
                + sum(len(k) + len(v) for k, v in out.headers or ()))
        if size > self.max_record_bytes and not out.reference:
            out = self._reference(out, size, f"{size} bytes exceed the producer's {self.max_record_bytes}-byte limit")
        kwargs: dict[str, Any] = {"key": out.key, "value": out.value}
        if out.headers is not None:
            kwargs["headers"] = out.headers
        try:
            future = self.producer.send(out.topic, **kwargs)
        except Exception as exc:
            self._send_failed(out, exc)
            return
        if not retry:
            self.sent[out.kind] += 1
        if future is not None:
            self._inflight.append((future, out))

    def _send_failed(self, out: _Out, exc: BaseException) -> None:
        """What a send that raised becomes: a reference, a retry, or a drop."""
        if isinstance(exc, _TOO_LARGE):
            self._handle_failure(out, exc)
        elif isinstance(exc, KafkaError):           # KafkaTimeoutError (metadata, buffer), ...
            self._queue(out, exc)
        else:                                        # TypeError, IllegalStateError: never deliverable
            self._drop(out, exc)

    def _collect(self) -> None:
        """Forget the delivered records; take the failed ones (their futures failed) for a retry.
        Futures complete on the producer's I/O thread; ``is_done`` is read without a lock (set
        once, after the exception)."""
        inflight = self._inflight
        if not inflight:
            return
        keep, failed, lost = [], [], []
        for entry in inflight:
            future, item = entry
            if type(item) is _Batch:
                fate = rawbatch.outcome(future, item.watch, item.first, item.count)
                if fate is None:
                    keep.append(entry)
                elif fate:
                    lost.append((item, fate))
            elif not getattr(future, "is_done", False):
                keep.append(entry)
            elif getattr(future, "exception", None) is not None:
                failed.append(entry)
        self._inflight = keep
        for item, fate in lost:
            outs = self._outs(item)
            for j, exc in fate:
                self._handle_failure(outs[j], exc)
        for future, item in failed:
            out = item if isinstance(item, _Out) else _Out(item[0], item[1], item[2], None, "score", item[3])
            self._handle_failure(out, future.exception)

    def _handle_failure(self, out: _Out, exc: BaseException) -> None:
        if isinstance(exc, _TOO_LARGE):
            if out.reference:
                self._drop(out, exc)
            else:
                self._send(self._reference(out, len(out.value or b""), f"refused as too large: {type(exc).__name__}"))
            return
        self._queue(out, exc)

    def _queue(self, out: _Out, exc: BaseException) -> None:
        self.send_failures += 1
        if self.metrics is not None:
            self.metrics.output_failed(out.topic).inc()
        if out.topic not in self._blocked:
            log.warning("output topic unavailable; records are kept and retried with backoff",
                        extra={"detector": self.detector, "topic": out.topic, "error": f"{type(exc).__name__}: {exc}"})
        self._blocked[out.topic] = type(exc).__name__
        if self._failing_since is None:
            self._failing_since = self._clock()
            self._next_retry = self._clock() + self._backoff
        self._pending.append(out)
        self._set_pending_gauge()

    def _drop(self, out: _Out, exc: BaseException) -> None:
        self.dropped += 1
        if self.metrics is not None:
            self.metrics.outputs_dropped.inc()
        src = out.source
        log.error("output record cannot be sent; dropped", extra={
            "detector": self.detector, "topic": out.topic, "kind": out.kind, "error": f"{type(exc).__name__}: {exc}",
            "source": f"{src.topic}[{src.partition}]@{src.offset}" if src is not None else None})

    def _reference(self, out: _Out, size: int, why: str) -> _Out:
        """A small stand-in for ``out`` naming its source record, with the rnnstream headers kept."""
        self.truncated += 1
        if self.metrics is not None:
            self.metrics.outputs_truncated.inc()
        src = out.source
        value = orjson.dumps({"reference": {"topic": src.topic, "partition": int(src.partition),
                                            "offset": int(src.offset)},
                              "size": int(size), "reason": why, "kind": out.kind, "detector": self.detector})
        headers = [(k, v[:MAX_DETAIL_BYTES]) for k, v in out.headers or () if k.startswith("rnnstream.")]
        headers.append(("rnnstream.truncated", f"value replaced by a reference to the source record: {why}".encode()))
        key = out.key if out.key is not None and len(out.key) <= MAX_REFERENCE_KEY_BYTES else None
        log.warning("output too large; sent a reference to its source record instead", extra={
            "detector": self.detector, "topic": out.topic, "kind": out.kind, "size": size,
            "source": f"{src.topic}[{src.partition}]@{src.offset}"})
        return _Out(out.topic, key, value, headers, out.kind, src, reference=True)

    def _set_pending_gauge(self) -> None:
        if self.metrics is not None:
            self.metrics.outputs_pending.set(len(self._pending))
