"""Faster record parsing for the daemon's kafka-python consumer.

kafka-python turns each fetched record into a ``ConsumerRecord`` through a dozen Python calls (one
per varint, per property, per deserializer, one record object and then another): about 10 µs an
event here, three quarters of the daemon's loop. ``install`` makes a consumer parse message format
v2 record batches (every batch a Kafka >= 0.11 broker writes, and the only format of Kafka 4) in one
Python loop per batch, with single-byte varints read inline, into the same ``ConsumerRecord`` tuples
kafka-python builds: same fields, same values (tested against kafka-python's own parser).

Kept from kafka-python, by calling its own code: the fetch protocol, positions, batch CRC checks
(``check_crcs``), decompression, ``read_committed`` (aborted transactions skipped, control batches
dropped), the skip of records before the fetch offset, and every error a corrupt batch raises
(``CorruptRecordError``). Legacy batches (magic 0 and 1) and consumers with deserializers keep
kafka-python's own parsing.

Depends on kafka-python internals (``Fetcher.PartitionRecords``, ``DefaultRecordBatch``), which is
why ``pyproject.toml`` bounds kafka-python; ``install`` leaves a consumer it does not recognise alone
and says so (False).
"""

from __future__ import annotations

import logging
from typing import Any

from kafka.consumer.fetcher import ConsumerRecord, Fetcher, IsolationLevel
from kafka.errors import CorruptRecordError
from kafka.record.default_records import DefaultRecordBatch
from kafka.record.util import decode_varint

log = logging.getLogger(__name__)

_CONTROL = DefaultRecordBatch.CONTROL_MASK
_LOG_APPEND_TIME = DefaultRecordBatch.TIMESTAMP_TYPE_MASK


def parse_batch(batch: DefaultRecordBatch, topic: str, partition: int, leader_epoch: int) -> tuple[list, int]:
    """Every record of a v2 ``batch`` (CRC already checked, not yet iterated) as ``ConsumerRecord``s,
    as kafka-python's fetcher builds them without deserializers, and the records' size (the sum of
    their length fields, what kafka-python counts as bytes read). Raises ``CorruptRecordError`` where
    kafka-python would."""
    batch._maybe_uncompress()
    buf = bytes(batch._buffer)
    pos = batch._pos
    (base_offset, _, _, _, _, attributes, _, first_ts, max_ts, _, _, _, count) = batch._header_data
    log_append = bool(attributes & _LOG_APPEND_TIME)
    ts_type = 1 if log_append else 0
    out = []
    append = out.append
    size = 0
    try:
        # The varints are decoded inline, written out once per field: a function call each would cost
        # more than the rest of the record (the repetition is the point).
        for _ in range(count):
            b = buf[pos]
            if b < 0x80:
                length, pos = (b >> 1) ^ -(b & 1), pos + 1
            else:
                length, pos = decode_varint(buf, pos)
            start = pos
            size += length
            pos += 1                                   # attributes (Int8, unused)
            b = buf[pos]
            if b < 0x80:
                ts_delta, pos = (b >> 1) ^ -(b & 1), pos + 1
            elif buf[pos + 1] < 0x80:              # two bytes: deltas of up to 8191
                b = (b & 0x7F) | (buf[pos + 1] << 7)
                ts_delta, pos = (b >> 1) ^ -(b & 1), pos + 2
            else:
                ts_delta, pos = decode_varint(buf, pos)
            b = buf[pos]
            if b < 0x80:
                offset_delta, pos = (b >> 1) ^ -(b & 1), pos + 1
            elif buf[pos + 1] < 0x80:              # two bytes: deltas of up to 8191
                b = (b & 0x7F) | (buf[pos + 1] << 7)
                offset_delta, pos = (b >> 1) ^ -(b & 1), pos + 2
            elif buf[pos + 2] < 0x80:              # three: up to about a million
                b = (b & 0x7F) | ((buf[pos + 1] & 0x7F) << 7) | (buf[pos + 2] << 14)
                offset_delta, pos = (b >> 1) ^ -(b & 1), pos + 3
            else:
                offset_delta, pos = decode_varint(buf, pos)
            b = buf[pos]
            if b < 0x80:
                key_len, pos = (b >> 1) ^ -(b & 1), pos + 1
            else:
                key_len, pos = decode_varint(buf, pos)
            if key_len >= 0:
                key = buf[pos:pos + key_len]
                pos += key_len
            else:
                key = None
            b = buf[pos]
            if b < 0x80:
                value_len, pos = (b >> 1) ^ -(b & 1), pos + 1
            else:
                value_len, pos = decode_varint(buf, pos)
            if value_len >= 0:
                value = buf[pos:pos + value_len]
                pos += value_len
            else:
                value = None
            headers = []
            header_size = -1
            if buf[pos] == 0:                          # no headers
                pos += 1
            else:
                n_headers, pos = decode_varint(buf, pos)
                headers, header_size, pos = _headers(buf, pos, n_headers)
            if pos - start != length:
                raise CorruptRecordError(f"Invalid record size: expected to read {length} bytes in record "
                                         f"payload, but instead read {pos - start}")
            append(ConsumerRecord(topic, partition, leader_epoch, base_offset + offset_delta,
                                  max_ts if log_append else first_ts + ts_delta, ts_type, key, value, headers,
                                  None, len(key) if key is not None else -1,
                                  len(value) if value is not None else -1, header_size))
    except (ValueError, IndexError) as err:
        raise CorruptRecordError(f"Found invalid record structure: {err!r}") from None
    if pos != len(buf):
        raise CorruptRecordError(f"{len(buf) - pos} unconsumed bytes after all records consumed")
    return out, size


def _headers(buf: bytes, pos: int, count: int) -> tuple[list, int, int]:
    """``count`` record headers from ``pos``: ``([(key str, value bytes|None)], their size as
    kafka-python counts it, the position after them)``."""
    if count < 0:
        raise CorruptRecordError(f"Found invalid number of record headers {count}")
    headers, size = [], 0
    for _ in range(count):
        key_len, pos = decode_varint(buf, pos)
        if key_len < 0:
            raise CorruptRecordError(f"Invalid negative header key size {key_len}")
        key = buf[pos:pos + key_len].decode("utf-8")
        pos += key_len
        value_len, pos = decode_varint(buf, pos)
        if value_len >= 0:
            value = buf[pos:pos + value_len]
            pos += value_len
        else:
            value = None
        headers.append((key, value))
        size += key_len + (len(value) if value is not None else 0)
    return headers, size, pos


class PartitionRecords(Fetcher.PartitionRecords):
    """kafka-python's records of one fetched partition, with v2 batches parsed by ``parse_batch``."""

    def _unpack_records(self, tp, records, key_deserializer, value_deserializer):
        if key_deserializer is not None or value_deserializer is not None:
            yield from super()._unpack_records(tp, records, key_deserializer, value_deserializer)
            return
        batch = records.next_batch()
        last = None
        while batch is not None:
            last = batch
            if self.check_crcs and not batch.validate_crc():
                raise CorruptRecordError(f"Record batch for partition {tp} at offset {batch.base_offset} "
                                         f"failed crc check")
            if batch.magic != 2:
                yield from self._legacy(tp, batch)
                batch = records.next_batch()
                continue
            self.leader_epoch = batch.leader_epoch
            if self._skipped(batch):
                self.next_fetch_offset = batch.next_offset
                batch = records.next_batch()
                continue
            parsed, size = parse_batch(batch, tp.topic, tp.partition, self.leader_epoch)
            self.bytes_read += size      # per batch (kafka-python: per record); only its metrics read it
            for record in parsed:
                self.records_read += 1
                self.next_fetch_offset = record.offset + 1
                yield record
            batch = records.next_batch()
        if last is not None and last.magic == 2:
            self.next_fetch_offset = last.next_offset   # compaction may have removed the last record
        self.drain()

    def _skipped(self, batch) -> bool:
        """Whether a v2 batch is not for the application: a control batch, or one of an aborted
        transaction under ``read_committed`` (kafka-python's own bookkeeping of aborted producers)."""
        if self.isolation_level == IsolationLevel.READ_COMMITTED and batch.has_producer_id():
            self._consume_aborted_transactions_up_to(batch.last_offset)
            if self._contains_abort_marker(batch):
                self.aborted_producer_ids.discard(batch.producer_id)
            elif self._is_batch_aborted(batch):
                return True
        return bool(batch.attributes & _CONTROL)

    def _legacy(self, tp, batch):
        for record in batch:
            if self.check_crcs and not record.validate_crc():
                raise CorruptRecordError(f"Record for partition {tp} at offset {record.offset} failed crc check")
            key, value, headers = record.key, record.value, record.headers
            self.records_read += 1
            self.bytes_read += record.size_in_bytes
            self.next_fetch_offset = record.offset + 1
            yield ConsumerRecord(tp.topic, tp.partition, self.leader_epoch, record.offset, record.timestamp,
                                 record.timestamp_type, key, value, headers, record.checksum,
                                 len(key) if key is not None else -1, len(value) if value is not None else -1,
                                 -1)


def install(consumer: Any) -> bool:
    """Make ``consumer`` (a kafka-python ``KafkaConsumer``) parse v2 record batches with ``parse_batch``.
    False, and the consumer left as it is, when it is not the kafka-python consumer this was written for."""
    fetcher = getattr(consumer, "_fetcher", None)
    if type(fetcher) is not Fetcher or getattr(Fetcher, "PartitionRecords", None) is not PartitionRecords.__base__:
        log.info("kafka-python's own record parsing kept (unrecognised consumer)")
        return False
    fetcher.PartitionRecords = PartitionRecords
    return True


IDLE_MAX_WAIT_MS = 500
"""Fetch wait while the input is idle (kafka-python's default): a fetch is answered as soon as anything
arrives (``fetch_min_bytes`` 1), so an idle input costs two fetches a second, not one per
``fetch_max_wait_ms``."""


class Pacing:
    """The consumer's fetch settings by the flow of its input.

    While polls return records, fetches use ``kafka.fetch_min_bytes`` / ``kafka.fetch_max_wait_ms``:
    the broker gathers a few milliseconds of events per fetch. After a poll that returned nothing,
    fetches are answered as soon as any record arrives (min 1 byte, wait ``IDLE_MAX_WAIT_MS``): each
    fetch costs the consumer about a millisecond of CPU (kafka-python), which at a 5 ms wait was
    0.1-0.16 of a core for an idle input. The first events after a silence are therefore fetched one
    fetch at a time, then batched again. Changes take effect from the next fetch request kafka-python
    builds (it reads its config when it does); a consumer this does not recognise is left alone.
    """

    def __init__(self, consumer: Any, min_bytes: int, max_wait_ms: int):
        fetcher = getattr(consumer, "_fetcher", None)
        config = getattr(fetcher, "config", None)
        self._config = config if type(fetcher) is Fetcher and isinstance(config, dict) else None
        self._busy = {"fetch_min_bytes": min_bytes, "fetch_max_wait_ms": max_wait_ms}
        self._idle = {"fetch_min_bytes": 1, "fetch_max_wait_ms": max(IDLE_MAX_WAIT_MS, max_wait_ms)}
        self.idle = False
        self.polled(False)

    def polled(self, records: bool) -> None:
        """After each poll: whether it returned records."""
        if self._config is None or self.idle == (not records):
            return
        self.idle = not records
        self._config.update(self._idle if self.idle else self._busy)
