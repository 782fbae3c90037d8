"""A detector's state in a compacted Kafka topic: what a replica that takes a partition over restores.

Per detector one changelog topic (``processing.changelog_topic``), co-partitioned with the input:
changelog partition p holds the state of input partition p of every input topic of the detector.
Record keys (every key starts with the input topic, so one detector may read several topics)::

    b<chunk>\\0<input topic>\\0<B>.<b>    bucket b of B: the slot rows (all SlotState fields) of every
                                         live entity whose name hashes to b (``bucket_of``), chunk <chunk>
    m<chunk>\\0<input topic>\\0<parity>    the shard's arrays (model weights and optimiser, training
                                         buffer, a fit not yet in force), chunk <chunk>
    h0\\0<input topic>\\0                   the head: the shard's counters, the input offset the state
                                         reflects, the bucket count B, and which arrays (parity, chunk
                                         count) go with it

Entities are grouped into buckets so that a commit is a few hundred records of tens of KB, not one
record per changed entity: kafka-python spends ~100 us of Python per record sent, which at one record
per entity cost exactly-once two thirds of its throughput. A bucket's record is the whole bucket (its
entities' names and rows), so compaction keeps, per key, a complete bucket: a commit rewrites every
bucket that holds an entity changed or evicted since the previous commit, and a bucket left empty
gets a tombstone. The price: a bucket is rewritten whole for one changed entity, so when few
entities change per commit the bytes written grow by up to the bucket's size (``BUCKET_ENTITIES``
on average), while the record count stays at most one per changed entity. B is a power of two chosen
from the live entity count (about ``BUCKET_ENTITIES`` per bucket, fewer for large rows); when the
count outgrows it fourfold (or shrinks sixteenfold) one commit tombstones every bucket of the old B
and writes all entities under the new one.

Values are at most ``CHUNK_BYTES`` (well under the broker's default 1 MiB ``message.max.bytes``), so
any model size the config allows fits: a longer bucket or array blob is split into chunks (a bucket's
chunk 0 says how many chunks it has; chunks beyond that, left by a longer earlier version, are
ignored). Only buckets changed since the previous commit are written (their rows come from
``SlotState.changes``/``export``), and the shard's arrays only when they changed (a retraining); the
head is written at every commit, last.

Consistency. A commit's records are read as one unit ending at its head: on restore, records after
the last head belong to a commit that did not complete (at-least-once, crash mid-write) and are
ignored. Their keys (buckets) are rewritten at the restorer's first commit (``Restored.fixups``), so
they never count later. The shard's arrays alternate between two parities, so an interrupted write never
damages the arrays the last head names. In exactly-once mode the records go in the same transaction
as the outputs and the input offsets, and a ``read_committed`` reader never sees an aborted one.

Format 2 (one record per entity, keys ``e<chunk>\\0<input topic>\\0<entity>``, the same rows) is
read as well; the first commit after such a restore writes every entity into buckets and tombstones
every format-2 key, in one commit (one transaction with exactly once). Rows of an earlier build's
scorer layout (an earlier ``scorer_layout`` in the head's meta, or none and its ``row_bytes`` one of
``Detector.legacy_scorer_widths``'s) are read and upgraded (``codec_for``), and the first commit after such a restore rewrites every bucket in this
build's layout, also in one commit: a head never names rows of two layouts. A local cache that does
not record the row length of the buckets (written before 2026-12-01) makes that first commit
rewrite every bucket too, once.

Not guaranteed: a local cache (``state_dir``) older than the topic's ``delete.retention.ms`` (1 day
by default) can miss the tombstone of a bucket emptied meanwhile, whose entities then survive in the
restored state until they are evicted again.
"""

from __future__ import annotations

import logging
import math
import struct
import time
import zlib
from dataclasses import dataclass, field, replace
from typing import Any, Callable

import numpy as np
import orjson

from ..detector import Detector
from ..kernels.calibrate import SCORER_LAYOUT
from ..errors import RnnstreamError, StateFormatError
from ..state.fileformat import from_bytes, to_bytes
from ..state.slots import SlotState, StateBlob

log = logging.getLogger(__name__)

FORMAT = "rnnstream-changelog/3"   # 3: entity rows in buckets; 1 is refused
FORMAT_2 = "rnnstream-changelog/2"  # one record per entity (key e<chunk>, the same rows): read, then rewritten
CHUNK_BYTES = 512 * 1024
OFFSETS_TIMEOUT_MS = 15000   # a restore that cannot learn a partition's bounds fails (and is retried)
STALL_S = 30.0               # ... as does one whose reading makes no progress this long
BUCKET_ENTITIES = 32         # entities per bucket record on average (fewer when rows are large)
_BUCKET, _ARRAYS, _HEAD, _ENTITY_2 = b"b", b"m", b"h", b"e"


# -- keys ---------------------------------------------------------------------------------------------

def _key(kind: bytes, chunk: int, topic: str, rest: bytes) -> bytes:
    return kind + str(chunk).encode() + b"\0" + topic.encode() + b"\0" + rest


def parse_key(key: bytes) -> tuple[bytes, int, str, bytes] | None:
    """``(kind, chunk, input topic, rest)`` of a changelog key, or None for a key this module did not write."""
    try:
        head, topic, rest = key.split(b"\0", 2)
        return head[:1], int(head[1:]), topic.decode(), rest
    except (ValueError, UnicodeDecodeError):
        return None


def restore_consumer(config: Any) -> Any:
    """A group-less ``read_committed`` KafkaConsumer for ``Reader``, from the config's kafka section."""
    from kafka import KafkaConsumer

    return KafkaConsumer(group_id=None, enable_auto_commit=False, isolation_level="read_committed",
                         **config.kafka.client_kwargs())


def changelog_topic(config: Any, detector: str) -> str:
    """The changelog topic of ``detector`` (the config's ``processing.changelog_topic``)."""
    return config.processing.changelog_topic_for(config.kafka.group_id, detector)


# -- entity rows ----------------------------------------------------------------------------------------

class RowCodec:
    """Entity rows <-> bytes: every field of ``SlotState.fields`` in name order, raw little-endian.

    New per-entity fields (a model's ``state_fields``, new common fields) are carried without change
    here; a config whose fields differ is told apart by the head's ``shape`` fingerprint."""

    def __init__(self, state: SlotState, scorer: tuple[int, Callable[[np.ndarray], np.ndarray]] | None = None):
        """``scorer``: ``(width, upgrade)`` to read rows whose ``sc`` field is ``width`` numbers long (an
        earlier build's scorer layout), turned into this build's by ``upgrade`` when decoded."""
        self.specs = [(name, state.fields[name]) for name in sorted(state.fields)]
        self._upgrade = None
        if scorer is not None:
            width, self._upgrade = scorer
            self.specs = [(n, replace(spec, shape=(width,)) if n == "sc" else spec) for n, spec in self.specs]
        self.sizes = [int(np.dtype(spec.dtype).itemsize * math.prod(spec.shape)) for _, spec in self.specs]
        self.row_bytes = sum(self.sizes)

    def encode_all(self, blob: StateBlob) -> bytes:
        """The rows of every entity of ``blob``, concatenated in its order (one pass over the fields)."""
        k = len(blob.entities)
        if k == 0:
            return b""
        parts = [np.ascontiguousarray(blob.arrays[name], dtype=np.dtype(spec.dtype).newbyteorder("<"))
                 .reshape(k, -1).view(np.uint8) for name, spec in self.specs]
        return np.concatenate(parts, axis=1).tobytes()

    def encode(self, blob: StateBlob) -> list[bytes]:
        """One byte string per entity of ``blob``."""
        flat, n = self.encode_all(blob), self.row_bytes
        return [flat[i * n:(i + 1) * n] for i in range(len(blob.entities))]

    def decode(self, entities: list[str], values: list[bytes]) -> StateBlob:
        """The rows of ``values`` (as ``encode`` made them) as a StateBlob; ValueError on a bad length."""
        k = len(entities)
        if any(len(v) != self.row_bytes for v in values):
            raise ValueError(f"an entity row is not {self.row_bytes} bytes long")
        raw = np.frombuffer(b"".join(values), dtype=np.uint8).reshape(k, self.row_bytes) if k else \
            np.zeros((0, self.row_bytes), dtype=np.uint8)
        arrays, at = {}, 0
        for (name, spec), size in zip(self.specs, self.sizes):
            dt = np.dtype(spec.dtype).newbyteorder("<")
            part = np.ascontiguousarray(raw[:, at:at + size])
            arrays[name] = part.view(dt).reshape(k, *spec.shape).astype(np.dtype(spec.dtype))
            at += size
        if self._upgrade is not None:
            arrays["sc"] = self._upgrade(arrays["sc"])
        return StateBlob(list(entities), arrays)


def codec_for(det: Detector, head: dict) -> RowCodec | None:
    """The codec that decodes the entity rows a changelog ``head`` names into ``det``'s: its own when
    the head's meta has this build's ``scorer_layout``, or, for a head of an earlier build, one reading
    that build's scorer layout (the recorded one's width, ``Detector.scorer_width``; without a recorded
    layout, ``Detector.legacy_scorer_widths``) and upgrading it. None when the head's ``row_bytes`` fit
    neither (the model's shape changed)."""
    layout = (head.get("meta") or {}).get("scorer_layout")
    if layout == SCORER_LAYOUT:
        codec = RowCodec(det.state)
        return codec if head.get("row_bytes") == codec.row_bytes else None
    if layout is not None:
        width = det.scorer_width(layout)
        widths = () if width is None else (width,)
    else:
        widths = det.legacy_scorer_widths()
    for width in widths:
        old = RowCodec(det.state, (width, lambda rows: det.upgrade_scorer_rows(rows, layout)))
        if old.row_bytes == head.get("row_bytes"):
            return old
    return None


def _split(value: bytes) -> list[bytes]:
    return [value[i:i + CHUNK_BYTES] for i in range(0, len(value), CHUNK_BYTES)] or [b""]


# -- buckets --------------------------------------------------------------------------------------------

def bucket_of(entity: str, buckets: int) -> int:
    """The bucket of ``entity`` among ``buckets`` (a power of two): stable across processes and runs."""
    return zlib.crc32(entity.encode()) & (buckets - 1)


def bucket_count(entities: int, row_bytes: int) -> int:
    """B for ``entities`` live entities: a power of two, about ``BUCKET_ENTITIES`` per bucket (fewer when
    rows are large: a bucket's mean size stays a quarter of ``CHUNK_BYTES``)."""
    per = max(1, min(BUCKET_ENTITIES, CHUNK_BYTES // (4 * max(row_bytes, 1))))
    return 1 << max(0, math.ceil(math.log2(max(entities / per, 1.0))))


def _bucket_name(buckets: int, bucket: int) -> bytes:
    return f"{buckets}.{bucket}".encode()


def encode_bucket(names: list[bytes], rows: bytes) -> list[bytes]:
    """The record values of one bucket: its entities' encoded ``names`` and their ``rows``
    (concatenated, in the same order). Chunk 0 starts with the chunk count."""
    lens = np.fromiter((len(n) for n in names), dtype="<u4", count=len(names))
    chunks = _split(struct.pack("<I", len(names)) + lens.tobytes() + b"".join(names) + rows)
    chunks[0] = struct.pack("<I", len(chunks)) + chunks[0]
    return chunks


def decode_bucket(chunks: list[bytes]) -> dict[str, bytes]:
    """entity -> row of a bucket's chunk values (``encode_bucket``'s, chunk 0 first); ValueError when
    they do not make one."""
    payload = b"".join(chunks)[4:]
    (k,) = struct.unpack_from("<I", payload, 0)
    lens = np.frombuffer(payload, dtype="<u4", count=k, offset=4)
    at = 4 + 4 * k
    names_end = at + int(lens.sum())
    rest = len(payload) - names_end
    if k == 0 or rest < 0 or rest % k:
        raise ValueError(f"a bucket of {k} entities has {rest} bytes of rows")
    n, out = rest // k, {}
    ends = np.cumsum(lens) + at
    start = at
    for i, end in enumerate(ends.tolist()):
        out[payload[start:end].decode()] = payload[names_end + i * n:names_end + (i + 1) * n]
        start = end
    return out


# -- writing --------------------------------------------------------------------------------------------

@dataclass
class WriterState:
    """What a unit's changelog writer remembers between commits (per partition, in memory)."""

    parity: int = 0              # parity of the arrays the last head names
    arrays_id: str | None = None  # which arrays those are (model version, retraining count, pending)
    chunks: int = 0
    fixups: set = field(default_factory=set)   # bucket names ("B.b") whose last records may not count
    buckets: int | None = None   # B of the last head (None: nothing written yet)
    members: dict | None = None  # bucket -> its live entities under ``buckets`` (built at the first commit)
    legacy: dict = field(default_factory=dict)   # format-2 entity key -> chunks, to tombstone
    row_bytes: int | None = None  # row length of the buckets the last head names (None: this build's)


def _members(names, buckets: int) -> dict[int, set[str]]:
    out: dict[int, set[str]] = {}
    for e in names:
        out.setdefault(bucket_of(e, buckets), set()).add(e)
    return out


def commit_records(det: Detector, topic: str, next_offset: int, ws: WriterState, *,
                   fingerprints: dict[str, str]) -> tuple[list[tuple[bytes, bytes | None]], int, WriterState]:
    """The records of one commit of a unit (the buckets of entities changed or evicted since the last
    ``mark_clean``, tombstones of buckets left empty, the shard's arrays when they changed, the head
    last), the number of entity rows among them, and the writer state once they are written.

    Changes nothing but ``ws.members`` (a cache of the live entities by bucket, true whether or not
    the records are written): once they are written, call ``det.state.mark_clean()`` and keep the
    returned writer state (without fixups); on failure keep ``ws``, and the next commit writes again.
    """
    st = det.state
    codec = RowCodec(st)
    changed, removed = st.changes()
    tombstones: list[bytes] = []      # bucket names, written first (before any bucket of a new B)
    target = bucket_count(len(st.index), codec.row_bytes)
    old = ws.buckets
    relaid = ws.row_bytes not in (None, codec.row_bytes)   # rows of an earlier layout: rewrite them all
    if old is None or relaid or target >= 4 * old or 16 * target <= old:   # first write, or resized: all of it
        buckets = target
        members = _members(st.index, buckets)
        dirty = set(members)
        if old is not None:
            tombstones += [_bucket_name(old, b) for b in range(old)]
    else:
        buckets = old
        if ws.members is None:
            ws.members = _members(st.index, buckets)
        else:
            for e in removed:
                b = bucket_of(e, buckets)
                if b in ws.members:
                    ws.members[b].discard(e)
            for e in changed:
                ws.members.setdefault(bucket_of(e, buckets), set()).add(e)
        members = ws.members
        dirty = {bucket_of(e, buckets) for e in changed} | {bucket_of(e, buckets) for e in removed}
    for name in sorted(ws.fixups):
        size, _, b = name.partition(".")
        if int(size) == buckets:
            dirty.add(int(b))
        elif old is None or int(size) != old:   # a commit of another B that did not complete
            tombstones.append(name.encode())
    records: list[tuple[bytes, bytes | None]] = [(_key(_ENTITY_2, i, topic, name.encode()), None)
                                                 for name, n in sorted(ws.legacy.items()) for i in range(n)]
    records += [(_key(_BUCKET, 0, topic, t), None) for t in sorted(set(tombstones))]
    order = sorted(dirty)
    filled = [b for b in order if members.get(b)]
    for b in order:
        if not members.get(b):
            members.pop(b, None)
            if old == buckets:   # (after a resize, every bucket of the old B is tombstoned already)
                records.append((_key(_BUCKET, 0, topic, _bucket_name(buckets, b)), None))
    names = [sorted(members[b]) for b in filled]
    blob = st.export([e for group in names for e in group])
    flat, n, at = codec.encode_all(blob), codec.row_bytes, 0
    for b, group in zip(filled, names):
        chunks = encode_bucket([e.encode() for e in group], flat[at * n:(at + len(group)) * n])
        at += len(group)
        key = _bucket_name(buckets, b)
        records += [(_key(_BUCKET, i, topic, key), part) for i, part in enumerate(chunks)]
    aid = det.arrays_version()   # before the snapshot: a background fit that ends in between then
    arrays, meta = det.snapshot(entities=False)   # makes the next commit write the arrays again
    after = WriterState(ws.parity, ws.arrays_id, ws.chunks, buckets=buckets, members=members)
    if aid != ws.arrays_id:
        parity = 1 - ws.parity
        chunks = _split(to_bytes({k: v for k, v in arrays.items()}, {"arrays_id": aid}))
        records += [(_key(_ARRAYS, i, topic, str(parity).encode()), part) for i, part in enumerate(chunks)]
        after = WriterState(parity, aid, len(chunks), buckets=buckets, members=members)
    head = {"format": FORMAT, "meta": meta, "next_offset": int(next_offset), "parity": after.parity,
            "model_type": det.cfg.model.type, "model_version": int(det.model.version),
            "chunks": after.chunks, "arrays_id": after.arrays_id, "row_bytes": codec.row_bytes,
            "buckets": buckets, "written_at": time.time(), **fingerprints}
    records.append((_key(_HEAD, 0, topic, b""), orjson.dumps(head)))
    return records, len(blob.entities), after


# -- reading --------------------------------------------------------------------------------------------

@dataclass
class Restored:
    """What one changelog partition says about one input partition, up to its last complete commit."""

    head: dict | None = None
    entities: dict[str, list] = field(default_factory=dict)   # entity -> [row] ([None]: gone)
    buckets: dict[str, set] = field(default_factory=dict)     # bucket name "B.b" -> its entities (empty: tombstone)
    sizes: set = field(default_factory=set)      # the bucket counts B of the heads read
    arrays: dict[int, dict[int, bytes]] = field(default_factory=dict)   # parity -> chunk -> bytes
    fixups: set = field(default_factory=set)     # bucket names with records after the last head
    legacy: dict = field(default_factory=dict)   # format-2 entity keys read (-> chunks): rewritten as buckets
    broken: set = field(default_factory=set)     # bucket names whose records do not decode
    records: int = 0
    bytes: int = 0
    end_offset: int = 0          # changelog offset read up to (exclusive)


class Collector:
    """Folds changelog records of one partition, in offset order, into a ``Restored`` for ``input_topic``:
    a commit's records count once its head arrives; ``finish`` reports those after the last head.
    A bucket's record replaces the bucket: its entities that are not in it any more are gone."""

    def __init__(self, input_topic: str, out: Restored | None = None):
        self.input_topic = input_topic
        self.out = out if out is not None else Restored()
        self._prefix = b"\0" + input_topic.encode() + b"\0"
        self._pending: list = []

    def add(self, key: bytes | None, value: bytes | None) -> None:
        if key is None or self._prefix not in key:
            return
        parsed = parse_key(key)
        if parsed is None or parsed[2] != self.input_topic:
            return
        out = self.out
        out.records += 1
        out.bytes += len(key) + len(value or b"")
        self._pending.append((parsed, value))
        if parsed[0] != _HEAD:
            return
        parts: dict[bytes, dict[int, bytes | None]] = {}
        for (kind, chunk, _, rest), v in self._pending:
            if kind == _BUCKET:
                if chunk == 0 and rest in parts:   # written twice in one commit: the later counts
                    self._bucket(rest.decode(), parts.pop(rest))
                parts.setdefault(rest, {})[chunk] = v
            elif kind == _ENTITY_2:
                self._legacy(rest.decode(), chunk, v)
            elif kind == _ARRAYS:
                out.arrays.setdefault(int(rest), {})[chunk] = v
            elif kind == _HEAD:
                out.head = orjson.loads(v)
                out.sizes.add(out.head.get("buckets"))
        for rest, chunks in parts.items():
            self._bucket(rest.decode(), chunks)
        self._pending = []

    def _bucket(self, name: str, chunks: dict[int, bytes | None]) -> None:
        out = self.out
        if 0 not in chunks:          # chunks beyond a shorter later version: ignored
            return
        before = out.buckets.get(name, ())
        if chunks[0] is None:
            rows: dict[str, bytes] = {}
        else:
            try:
                (n,) = struct.unpack_from("<I", chunks[0], 0)
                rows = decode_bucket([chunks[i] for i in range(n)])
            except (KeyError, ValueError, TypeError, struct.error, UnicodeDecodeError):
                out.broken.add(name)
                return
        out.broken.discard(name)
        for e in before:
            if e not in rows:
                out.entities[e] = [None]
        for e, row in rows.items():
            out.entities[e] = [row]
        out.buckets[name] = set(rows)

    def _legacy(self, name: str, chunk: int, value: bytes | None) -> None:
        chunks = self.out.entities.setdefault(name, [])
        chunks.extend([None] * (chunk + 1 - len(chunks)))
        chunks[chunk] = value
        if value is None and not any(chunks):   # tombstoned (a migration): nothing left to rewrite
            self.out.legacy.pop(name, None)
        else:
            self.out.legacy[name] = max(self.out.legacy.get(name, 0), chunk + 1)

    def finish(self) -> Restored:
        out = self.out
        out.fixups = {rest.decode() for (kind, _, _, rest), _ in self._pending if kind == _BUCKET}
        for (kind, chunk, _, rest), _ in self._pending:   # format-2 records of a commit that did not complete
            if kind == _ENTITY_2:
                out.legacy[rest.decode()] = max(out.legacy.get(rest.decode(), 0), chunk + 1)
        return out


class Reader:
    """Reads changelog partitions with a plain (group-less) ``read_committed`` consumer.

    ``consumer_factory()`` builds it; tests and tools may pass their own. ``progress(done, total)``
    is called as records are read (offsets of this partition).
    """

    def __init__(self, consumer_factory: Callable[[], Any]):
        self._factory = consumer_factory
        self._consumer = None

    def _get(self):
        if self._consumer is None:
            self._consumer = self._factory()
        return self._consumer

    def partitions(self, topic: str) -> list[int]:
        """The partitions of ``topic`` (empty when it does not exist)."""
        return sorted(self._get().partitions_for_topic(topic) or ())

    def bounds(self, topic: str, partition: int) -> tuple[int, int]:
        from kafka import TopicPartition

        c, tp = self._get(), TopicPartition(topic, partition)
        return (int(c.beginning_offsets([tp], timeout_ms=OFFSETS_TIMEOUT_MS)[tp]),
                int(c.end_offsets([tp], timeout_ms=OFFSETS_TIMEOUT_MS)[tp]))

    def read(self, topic: str, partition: int, input_topic: str, start: int | None = None, *,
             collector: Collector | None = None,
             progress: Callable[[int, int], None] | None = None, timeout_s: float = 300.0) -> Restored:
        """Every record of ``input_topic``'s state from changelog offset ``start`` (default: the
        beginning) up to the partition's end (the last stable offset, under read_committed).
        ``collector``: one that already folded the records before ``start`` (a standby copy), to go on."""
        from kafka import TopicPartition

        c, tp = self._get(), TopicPartition(topic, partition)
        begin, end = self.bounds(topic, partition)
        start = begin if start is None else max(start, begin)
        collector = collector if collector is not None else Collector(input_topic)
        out = collector.out
        out.end_offset = max(end, start)
        if start >= end:
            return collector.finish()
        c.assign([tp])
        c.seek(tp, start)
        deadline = time.monotonic() + timeout_s
        position, moved = start, time.monotonic()
        while position < end:
            now = time.monotonic()
            if now > deadline or now - moved > STALL_S:
                raise RnnstreamError(f"restoring {topic}[{partition}] did not reach offset {end} "
                                     f"(at {position}; no progress for {now - moved:.0f} s)")
            for records in c.poll(timeout_ms=200, max_records=5000).values():
                for r in records:
                    if r.offset < end:
                        collector.add(r.key, r.value)
            before, position = position, max(position, c.position(tp) or position)
            if position > before:
                moved = time.monotonic()
            if progress is not None:
                progress(position - start, end - start)
        return collector.finish()

    def close(self) -> None:
        if self._consumer is not None:
            self._consumer.close()
            self._consumer = None


def apply(det: Detector, restored: Restored, base_arrays_id: str | None = None, *,
          base_buckets: int | None = None) -> None:
    """Bring ``det`` (fresh, or restored from a local cache whose arrays are ``base_arrays_id`` and
    whose bucket count is ``base_buckets``, ``restored`` then holding the records after the cache's
    offset) to the state ``restored`` describes. StateFormatError when the records do not fit ``det``'s config, or name
    arrays that were not read (the caller then reads the whole partition into a fresh detector)."""
    head = restored.head
    if head is None or head.get("format") not in (FORMAT, FORMAT_2):
        raise StateFormatError(f"changelog head missing or of another format: {None if head is None else head.get('format')}")
    codec = codec_for(det, head)
    if codec is None:
        raise StateFormatError(f"changelog entity rows are {head.get('row_bytes')} bytes, this config's "
                               f"are {RowCodec(det.state).row_bytes}")
    if restored.broken:
        raise StateFormatError(f"changelog buckets that do not decode: {sorted(restored.broken)[:5]}")
    if head["arrays_id"] == base_arrays_id:
        arrays = det.snapshot(entities=False)[0]
    else:
        parts = restored.arrays.get(int(head["parity"]), {})
        if any(i not in parts for i in range(int(head["chunks"]))):
            raise StateFormatError("the shard arrays the changelog head names were not read")
        arrays, meta = from_bytes(b"".join(parts[i] for i in range(int(head["chunks"]))), "changelog arrays")
        if meta.get("arrays_id") != head["arrays_id"]:
            raise StateFormatError("the changelog's shard arrays are not the ones its head names")
    gone = [e for e, chunks in restored.entities.items() if any(c is None for c in chunks)]
    live = {e: chunks for e, chunks in restored.entities.items() if not any(c is None for c in chunks)}
    if base_buckets is not None:   # cached entities of a bucket rewritten since are gone unless it has them
        size = int(head["buckets"])
        if restored.sizes - {base_buckets}:   # resized since the cache: every live entity was rewritten
            gone += [e for e in det.state.index if e not in live]
        elif restored.buckets:
            gone += [e for e in det.state.index
                     if e not in live and f"{size}.{bucket_of(e, size)}" in restored.buckets]
    det.state.drop(gone)
    try:
        names = sorted(live)
        for i in range(0, len(names), 65536):
            batch = names[i:i + 65536]
            det.state.restore_entities(codec.decode(batch, [b"".join(live[e]) for e in batch]))
        det.restore(arrays, head["meta"], entities=False)
    except (KeyError, ValueError, TypeError, IndexError) as exc:
        raise StateFormatError(f"changelog state does not fit detector {det.name!r}: {exc!r}") from exc


# -- the topic ------------------------------------------------------------------------------------------

def ensure_topic(admin: Any, topic: str, partitions: int) -> bool:
    """Create ``topic`` compacted with ``partitions`` partitions if it is missing (True then); check
    an existing one has at least that many partitions and ``cleanup.policy`` compact. RnnstreamError
    naming the topic and what to change otherwise."""
    from kafka.admin import ConfigResource, ConfigResourceType
    from kafka.errors import TopicAlreadyExistsError

    described = {t["name"]: t for t in admin.describe_topics([topic]) if not t.get("error_code")}
    if topic not in described:
        try:
            admin.create_topics({topic: {"num_partitions": partitions,
                                         "configs": {"cleanup.policy": "compact"}}},
                                wait_for_metadata=True)
            log.info("changelog topic created", extra={"topic": topic, "partitions": partitions})
            return True
        except TopicAlreadyExistsError:
            described = {t["name"]: t for t in admin.describe_topics([topic])}
    have = len(described[topic]["partitions"])
    deadline = time.monotonic() + 10.0
    while have == 0 and time.monotonic() < deadline:   # just created elsewhere: metadata catching up
        time.sleep(0.2)
        have = max((len(t["partitions"]) for t in admin.describe_topics([topic]) if t["name"] == topic), default=0)
    if have < partitions:
        raise RnnstreamError(f"changelog topic {topic!r} has {have} partition(s), its input has {partitions}: "
                             "changelog partition p must hold input partition p's state. Delete it "
                             "(the state is rebuilt) or add partitions.")
    got = admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, topic, ["cleanup.policy"])],
                                 config_filter="all")
    entry = got.get("topic", {}).get(topic, {}).get("cleanup.policy", {})
    policy = entry.get("value") if isinstance(entry, dict) else entry
    if policy is None or "compact" not in str(policy):
        raise RnnstreamError(f"changelog topic {topic!r} has cleanup.policy={policy!r}; it must include "
                             "'compact' (otherwise old state is deleted by retention). Fix with: "
                             f"kafka-configs --alter --entity-type topics --entity-name {topic} "
                             "--add-config cleanup.policy=compact")
    return False
