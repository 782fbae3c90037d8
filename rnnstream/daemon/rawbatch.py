"""Many records to one partition, encoded at once as a Kafka record batch and handed to kafka-python's
producer: the per-event scores of a poll at a few µs an event instead of a ``send`` each.

kafka-python's ``KafkaProducer.send`` costs 20-40 µs of Python a record (serialisation checks, a
partitioner, a future, an accumulator append that encodes the record's varints one call at a time).
``RawPublisher.publish`` encodes all records of one partition in one pass (message format v2, no
compression: the Kafka protocol's "RecordBatch"), and puts the result into the producer's accumulator
as one *closed* batch, which the producer's own sender thread drains like any other:

* acks, retries, the delivery timeout and the in-flight limit are the producer's;
* idempotence: the producer id, epoch and base sequence are written into the batch header when the
  sender drains it (``set_producer_state``, then the CRC), as for its own batches;
* transactions: the partition is added to the open transaction before the batch is queued, as
  ``send`` does; the batch is in the accumulator's incomplete set, so ``flush`` and
  ``commit_transaction`` wait for it and an abort aborts it.

What is not the same as ``send``: one future per batch (``FutureProduceResult``) instead of one per
record; record timestamps are the publish time (CreateTime), one per batch. A batch the broker refuses
as too large (a topic's ``max.message.bytes`` below the batch) is split by kafka-python, which then
completes the halves' futures instead of the batch's: ``SplitWatch`` follows each record to its new
batch, and ``outcome`` reads the fate of every record either way. ``available()`` says
whether a producer supports this path (a kafka-python ``KafkaProducer`` with message format v2 and no
compression); callers fall back to ``send`` otherwise.
"""

from __future__ import annotations

import contextlib
import struct
import time
from typing import Any, Iterator, Sequence

from crc32c import crc32c
from kafka.errors import IllegalStateError
from kafka.producer.producer_batch import ProducerBatch
from kafka.record.memory_records import MemoryRecords
from kafka.structs import TopicPartition

# baseOffset, batchLength, partitionLeaderEpoch, magic, crc, attributes, lastOffsetDelta,
# baseTimestamp, maxTimestamp, producerId, producerEpoch, baseSequence, recordCount
HEADER = struct.Struct(">qiibIhiqqqhii")
CRC_AT = 17                  # offset of the crc field; it covers attributes .. the end
ATTRIBUTES_AT = 21
LENGTH_FROM = 12             # batchLength counts the bytes after itself
TRANSACTIONAL = 0x10
MAGIC = 2
RECORD_OVERHEAD = 1 + 1 + 3 + 3 + 3 + 1 + 3   # length, attributes, deltas, key/value lengths, headers (up to 2 MB)


def varint(n: int) -> bytes:
    """Kafka's zig-zag varint of ``n``."""
    z = (n << 1) ^ (n >> 63)
    out = bytearray()
    while z > 0x7F:
        out.append((z & 0x7F) | 0x80)
        z >>= 7
    out.append(z)
    return bytes(out)


_SMALL = 1 << 14
_VARINT = [varint(i) for i in range(_SMALL)]   # 0 .. 16383: lengths and offset deltas of a batch


_ROOM = bytes(HEADER.size)


def encode_records(keys: Sequence[bytes], values: Sequence[bytes], *, framed: bool = False, first: int = 0,
                   timestamp_delta: int = 0) -> bytes | bytearray:
    """The records part of a v2 batch: record ``j`` has offset delta ``first + j``, timestamp delta
    ``timestamp_delta`` (ms, >= 0), ``keys[j]``, ``values[j]`` and no headers. ``framed``: a bytearray
    with HEADER.size free bytes in front, for the header (``RecordBatchV2(..., framed=True)``).
    ``first``/``timestamp_delta`` are for records appended to an open batch (``RecordBatchV2.extend``)."""
    table, big = _VARINT, varint
    parts: list[bytes] = [_ROOM] if framed else []
    add = parts.append
    attributes_ts = b"\x00" + (table[timestamp_delta] if timestamp_delta < _SMALL else big(timestamp_delta))
    for j, (k, v) in enumerate(zip(keys, values), first):
        lk, lv = len(k), len(v)
        # Pieces, not one concatenated record: a score batch's value is hundreds of KB, copied once.
        head = attributes_ts + (table[j] if j < _SMALL else big(j)) + (table[lk] if lk < _SMALL else big(lk))
        vlen = table[lv] if lv < _SMALL else big(lv)
        n = len(head) + lk + len(vlen) + lv + 1
        add(table[n] if n < _SMALL else big(n))
        add(head)
        add(k)
        add(vlen)
        add(v)
        add(b"\x00")
    return bytearray().join(parts) if framed else b"".join(parts)


def _read_varint(buf, pos: int) -> tuple[int, int]:
    z = shift = 0
    while True:
        b = buf[pos]
        pos += 1
        z |= (b & 0x7F) << shift
        shift += 7
        if b < 0x80:
            return (z >> 1) ^ -(z & 1), pos


def decode_records(buf, count: int, pos: int = 0) -> tuple[list[bytes], list[bytes]]:
    """Keys and values of the ``count`` records at ``buf[pos:]`` as ``encode_records`` writes them
    (what a batch held, when its records must be sent again one by one)."""
    keys, values = [], []
    for _ in range(count):
        length, pos = _read_varint(buf, pos)
        end = pos + length
        pos += 1                                            # attributes
        _, pos = _read_varint(buf, pos)                     # timestamp delta
        _, pos = _read_varint(buf, pos)                     # offset delta
        n, pos = _read_varint(buf, pos)
        keys.append(bytes(buf[pos:pos + n]))
        pos += n
        n, pos = _read_varint(buf, pos)
        values.append(bytes(buf[pos:pos + n]))
        pos = end
    return keys, values


class RecordBatchV2:
    """A closed-for-appends record batch, in the shape kafka-python's sender expects of a
    ``MemoryRecordsBuilder`` (``set_producer_state``, ``close``, ``buffer``, ``size_in_bytes``, ...)."""

    __slots__ = ("_body", "_framed", "_count", "_timestamp", "_max_timestamp", "_buffer", "_producer_id",
                 "_producer_epoch", "_base_sequence", "_transactional", "open")

    def __init__(self, body: bytes | bytearray, count: int, timestamp_ms: int, *, framed: bool = False):
        # framed: ``body`` is a bytearray holding HEADER.size free bytes, then the records; the
        # header is written into it in place (no copy of the records).
        self._body = body
        self._framed = framed
        self._count = count
        self._timestamp = self._max_timestamp = timestamp_ms
        self._buffer: bytearray | None = None
        # True: more records may be appended (``extend``) and the batch is not full; the producer's
        # sender sends it when its linger has passed (``RawPublisher.publish_coalesced``).
        self.open = False
        self._producer_id = -1
        self._producer_epoch = -1
        self._base_sequence = -1
        self._transactional = False

    def append(self, timestamp, key, value, headers=None):
        return None      # full: kafka-python starts a batch of its own for the next send

    def extend(self, records: bytes | bytearray, count: int, timestamp_ms: int) -> None:
        """Append ``count`` records encoded by ``encode_records(first=<records so far>,
        timestamp_delta=timestamp_ms - <the batch's base timestamp>)``. Only while the batch is open and
        still in the accumulator, under its partition's lock (the sender closes it there)."""
        if self._buffer is not None or not self._framed:
            raise IllegalStateError("records appended to a closed batch")
        self._body += records
        self._count += count
        self._max_timestamp = max(self._max_timestamp, timestamp_ms)

    @property
    def closed(self) -> bool:
        """Closed (the sender drained it, or an abort or expiry took it): no more appends."""
        return self._buffer is not None

    @property
    def timestamp(self) -> int:
        """The base timestamp (ms): the first records' publish time."""
        return self._timestamp

    def set_producer_state(self, producer_id, producer_epoch, base_sequence, is_transactional):
        if self._buffer is not None:
            raise IllegalStateError("producer state set on a closed batch")
        self._producer_id, self._producer_epoch = producer_id, producer_epoch
        self._base_sequence, self._transactional = base_sequence, bool(is_transactional)

    @property
    def producer_id(self):
        return self._producer_id

    @property
    def producer_epoch(self):
        return self._producer_epoch

    @property
    def base_sequence(self):
        return self._base_sequence

    def close(self) -> None:
        """Write the header (with the producer state set so far) and the CRC; once."""
        if self._buffer is not None:
            return
        if self._framed:
            buf = self._body
        else:
            buf = bytearray(HEADER.size + len(self._body))
            buf[HEADER.size:] = self._body
        HEADER.pack_into(buf, 0, 0, len(buf) - LENGTH_FROM, -1, MAGIC, 0,
                         TRANSACTIONAL if self._transactional else 0, self._count - 1,
                         self._timestamp, self._max_timestamp, self._producer_id, self._producer_epoch,
                         self._base_sequence, self._count)
        struct.pack_into(">I", buf, CRC_AT, crc32c(memoryview(buf)[ATTRIBUTES_AT:]))
        self._buffer = buf
        self._body = b""

    def buffer(self) -> bytearray:
        assert self._buffer is not None, "not closed"
        return self._buffer

    def records(self) -> MemoryRecords:
        return MemoryRecords(bytes(self.buffer()))

    def size_in_bytes(self) -> int:
        if self._buffer is not None:
            return len(self._buffer)
        return len(self._body) + (0 if self._framed else HEADER.size)

    def compression_rate(self) -> float:
        return 1.0

    def is_full(self) -> bool:
        return not self.open    # closed for appends: ready to send now, no linger

    def next_offset(self) -> int:
        return self._count


def available(producer: Any) -> bool:
    """Whether ``producer`` is a kafka-python producer this module can hand batches to."""
    acc = getattr(producer, "_accumulator", None)
    config = getattr(producer, "config", None)
    return (acc is not None and hasattr(producer, "_sender") and isinstance(config, dict)
            and getattr(acc, "config", {}).get("message_version") == MAGIC
            and not config.get("compression_attrs") and hasattr(acc, "_incomplete"))


class SplitWatch:
    """Stands in for a raw batch's per-record futures (``ProducerBatch._record_futures``, which this
    path does not create): when kafka-python splits the batch it "rebinds" record ``i``'s future to a
    new batch, and this notes ``moved[i] = (new batch future, index in it)``. Nothing per record
    unless a split happens."""

    __slots__ = ("count", "moved", "future")

    def __init__(self, count: int, future: Any):
        self.count = count
        self.future = future               # the batch's own future
        self.moved: dict[int, tuple[Any, int]] = {}

    def __len__(self) -> int:
        return self.count

    def __getitem__(self, i: int) -> "_Moved":
        return _Moved(self, i)

    def append(self, future: Any) -> None:      # try_append never succeeds on a raw batch
        raise IllegalStateError("a raw record batch takes no appends")


class _Moved:
    __slots__ = ("watch", "i")

    def __init__(self, watch: SplitWatch, i: int):
        self.watch, self.i = watch, i

    def rebind(self, produce_future: Any, index: int) -> None:
        """What kafka-python's ``FutureRecordMetadata.rebind`` does, for record ``i``: follow it to
        its new batch, and wake whoever waits on the batch it left (``flush`` does: that batch's
        future is never completed)."""
        moved = self.watch.moved
        old = moved[self.i][0] if self.i in moved else self.watch.future
        moved[self.i] = (produce_future, index)
        old._latch.set()


def outcome(future: Any, watch: SplitWatch, first: int = 0, count: int | None = None
            ) -> list[tuple[int, BaseException]] | None:
    """The fate of the records ``first .. first + count - 1`` of a published batch (default: all of
    them; a coalesced publish's share of its batch): None while some is not known yet; else the failed
    ones as ``(index from first, exception)`` (empty: all delivered)."""
    n = watch.count - first if count is None else count
    if future.is_done:
        if future.exception is not None:
            return [(j, future.exception) for j in range(n)]
        per_record = future.value[2]
        return [] if per_record is None else [(j, per_record(first + j)) for j in range(n)]
    moved = watch.moved
    if len(moved) < watch.count:      # not split (or being split right now on the I/O thread)
        return None
    failed = []
    for j in range(n):
        f, index = moved[first + j]
        if not f.is_done:
            return None
        if f.exception is not None:
            failed.append((j, f.exception))
        elif f.value[2] is not None:
            failed.append((j, f.value[2](index)))
    return failed


def _takes_appends(queue, batch: ProducerBatch) -> bool:
    """Whether ``batch`` (of ``publish_coalesced``) still takes appends: open, not yet closed by the
    sender, and the last batch of its partition's ``queue`` (under the partition's lock)."""
    return bool(queue) and queue[-1] is batch and batch.records.open and not batch.records.closed


class RawPublisher:
    """Queues pre-encoded record batches on one kafka-python ``KafkaProducer``."""

    def __init__(self, producer: Any):
        self.producer = producer
        config = producer.config
        # A batch stays below what one produce request and the sender's batching hold.
        self.max_batch_bytes = max(min(int(config["batch_size"]), int(config["max_request_size"]) - 1024), 1024)
        self.asleep = False   # batches were queued without waking the sender (publish(wake=False))
        # An open batch (publish_coalesced) fills up to what one produce request holds: it is the
        # request, not the batch, that costs (see there).
        self.max_coalesced_bytes = max(int(config["max_request_size"]) - 1024, self.max_batch_bytes)
        self._linger = float(config.get("linger_ms", 0)) / 1000.0
        self._open: dict[TopicPartition, ProducerBatch] = {}   # publish_coalesced's batches taking appends
        self._hold_until: float | None = None     # when the open batches leave (time.monotonic())

    def publish(self, topic: str, partition: int, keys: Sequence[bytes],
                values: Sequence[bytes], *, wake: bool = True) -> tuple[Any, SplitWatch]:
        """Queue ``keys[j]``/``values[j]`` as one batch to ``topic[partition]``, in order. Returns the
        batch's future (``kafka.producer.future.FutureProduceResult``) and its ``SplitWatch``: pass
        both to ``outcome``. Raises what ``send`` raises when the producer is closed or its
        transaction is not open (``KafkaError`` / ``IllegalStateError``).

        ``wake=False`` leaves the producer's sender thread asleep: the batch goes out at its next
        wake-up, which the caller owes (``wake``; ``flush`` wakes it too). Each wake-up is a socket
        write that hands the CPU to the sender thread: a poll's several batches share one."""
        return self.publish_framed(topic, partition, encode_records(keys, values, framed=True), len(keys),
                                   wake=wake)

    @contextlib.contextmanager
    def _appending(self, topic: str, partition: int) -> Iterator[tuple[TopicPartition, Any]]:
        """``(tp, accumulator)``: the partition, added to the open transaction when the producer has one,
        and the producer's accumulator locked for it with an append in progress.
        ``IllegalStateError`` when the producer or its accumulator is closed."""
        producer = self.producer
        if producer._closed:
            raise IllegalStateError("KafkaProducer already closed!")
        tp = TopicPartition(topic, partition)
        tm = producer._transaction_manager
        if tm is not None and tm.is_transactional():
            tm.maybe_add_partition_to_transaction(tp)
        acc = producer._accumulator
        acc._appends_in_progress.increment()
        try:
            with acc._tp_lock(tp):
                if acc._closed:
                    raise IllegalStateError("RecordAccumulator is closed")
                yield tp, acc
        finally:
            acc._appends_in_progress.decrement()

    def publish_framed(self, topic: str, partition: int, framed: bytearray, count: int, *,
                       wake: bool = True) -> tuple[Any, SplitWatch]:
        """``publish`` of ``count`` records already encoded (``encode_records(framed=True)``, or
        ``scorerecords``): ``framed`` is HEADER.size free bytes then the records, and becomes the
        batch's buffer."""
        producer = self.producer
        with self._appending(topic, partition) as (tp, acc):
            now = time.monotonic()
            batch = ProducerBatch(tp, RecordBatchV2(framed, count, int(time.time() * 1000), framed=True), now=now)
            watch = batch._record_futures = SplitWatch(count, batch.produce_future)
            acc._batches[tp].append(batch)
            acc._incomplete.add(batch)
        if wake:
            producer._sender.wakeup()
        else:
            self.asleep = True
        return batch.produce_future, watch

    def publish_coalesced(self, topic: str, partition: int, keys: Sequence[bytes], values: Sequence[bytes],
                          hold_s: float) -> tuple[Any, SplitWatch, int]:
        """``publish``, but into the partition's *open* batch while it is still queued and has room
        (``max_coalesced_bytes``), so that several polls' records leave in one batch and one produce
        request: the producer's cost is per request (about 1 ms of its sender's Python and 2 ms of the
        broker's CPU whatever the size), not per byte. Returns the batch's future, its watch and the
        index of the first of these records in the batch (``outcome(future, watch, first, len(keys))``).

        A new open batch is sent by the producer's sender ``hold_s`` after it was created at the
        latest (its linger measured from then), at once when it is full (the next publish found no
        room), when ``release`` is called, and by ``flush`` or a transaction's commit (which wait for
        every queued batch, as for any other). The caller owes a ``wake`` after a new open batch that
        starts a new deadline (``asleep`` is set): the sender must see it to time its linger."""
        def records_at(first: int, ts_delta: int) -> tuple[bytes | bytearray, int]:
            return encode_records(keys, values, framed=first == 0, first=first, timestamp_delta=ts_delta), ts_delta
        return self._coalesce(topic, partition, len(keys), records_at, hold_s, extend=True)

    def open_batches(self, topic: str, partitions: int) -> tuple[list[int], list[int], list[int]]:
        """Per partition of ``topic`` (0 .. partitions-1): the record count of its open batch (0: none
        that takes appends), the bytes of records it still has room for, and the timestamp delta (ms)
        of a record appended now: what ``scorerecords.encode`` needs to encode records that continue it."""
        count, room, delta = [0] * partitions, [0] * partitions, [0] * partitions
        if not self._open:
            return count, room, delta
        acc = self.producer._accumulator
        now_ms = int(time.time() * 1000)
        for tp, batch in list(self._open.items()):
            if tp.topic != topic or not 0 <= tp.partition < partitions:
                continue
            with acc._tp_lock(tp):
                rb = batch.records
                if _takes_appends(acc._batches[tp], batch):
                    p = tp.partition
                    count[p] = rb.next_offset()
                    room[p] = max(self.max_coalesced_bytes - rb.size_in_bytes(), 0)
                    delta[p] = max(now_ms - rb.timestamp, 0)
        return count, room, delta

    def publish_coalesced_framed(self, topic: str, partition: int, framed: bytearray, count: int, first: int,
                                 ts_delta: int, hold_s: float) -> tuple[Any, SplitWatch, int]:
        """``publish_coalesced`` of ``count`` records already encoded (``scorerecords``; ``framed`` is
        HEADER.size free bytes, then the records): ``first`` > 0 when they were encoded to continue the
        open batch of that many records (offset deltas from ``first``, timestamp delta ``ts_delta``;
        ``open_batches``), 0 for a new batch. If the open batch was sent meanwhile (its hold time
        passed on the sender's thread), they are encoded again for a new one."""
        def records_at(at: int, _: int) -> tuple[bytes | bytearray | memoryview, int]:
            if at == first:
                return (framed if at == 0 else memoryview(framed)[HEADER.size:]), ts_delta
            keys, values = decode_records(framed, count, HEADER.size)
            return encode_records(keys, values, framed=at == 0, first=at), 0
        return self._coalesce(topic, partition, count, records_at, hold_s, extend=first > 0)

    def _coalesce(self, topic: str, partition: int, count: int, records_at, hold_s: float,
                  extend: bool) -> tuple[Any, SplitWatch, int]:
        """Append ``count`` records to the partition's open batch (``extend`` and it still takes them),
        else queue them as a new open batch. ``records_at(first, ts_delta)``: the records encoded with
        offset deltas from ``first`` (framed when 0) and the timestamp delta they carry."""
        now_ms = int(time.time() * 1000)
        with self._appending(topic, partition) as (tp, acc):
            dq = acc._batches[tp]
            batch = self._open.get(tp)
            if extend and batch is not None and _takes_appends(dq, batch):
                rb = batch.records
                first = rb.next_offset()
                body, ts_delta = records_at(first, max(now_ms - rb.timestamp, 0))
                if rb.size_in_bytes() + len(body) <= self.max_coalesced_bytes:
                    rb.extend(body, count, rb.timestamp + ts_delta)
                    batch._record_futures.count += count
                    return batch.produce_future, batch._record_futures, first
            if batch is not None:
                batch.records.open = False     # full, or no longer last: sent with the next drain
            now = time.monotonic()
            framed, _ = records_at(0, 0)
            rb = RecordBatchV2(framed, count, now_ms, framed=True)
            rb.open = True
            batch = ProducerBatch(tp, rb, now=now)
            # Its linger runs from ``last_attempt``: the sender sends it hold_s from now, or when
            # the other partitions' open batches go, so that they share a produce request.
            if self._hold_until is None or self._hold_until <= now:
                self._hold_until = now + hold_s
                # A new deadline: the sender must see it to time it (one wake-up). A batch that
                # joins a running deadline needs none: the sender already sleeps until then,
                # and sends whatever is queued for it, full batches too, in that request.
                self.asleep = True
            batch.last_attempt = self._hold_until - self._linger
            watch = batch._record_futures = SplitWatch(count, batch.produce_future)
            dq.append(batch)
            acc._incomplete.add(batch)
            self._open[tp] = batch
            return batch.produce_future, watch, 0

    def release(self) -> None:
        """Close every open batch for appends: the sender sends them at its next wake-up (``wake``)."""
        if not self._open:
            return
        acc = self.producer._accumulator
        for tp, batch in self._open.items():
            with acc._tp_lock(tp):
                if batch.records.open:
                    batch.records.open = False
                    batch.last_attempt = batch.created
                    self.asleep = True
        self._open.clear()

    def wake(self) -> None:
        """Wake the producer's sender thread if batches were queued with ``wake=False`` since the last call."""
        if self.asleep:
            self.asleep = False
            self.producer._sender.wakeup()
