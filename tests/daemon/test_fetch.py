"""rnnstream.daemon.fetch: v2 record batches parsed into the same ConsumerRecords as kafka-python's."""

import struct

import crc32c
import pytest
from kafka.consumer.fetcher import ConsumerRecord, Fetcher
from kafka.errors import CorruptRecordError
from kafka.record.default_records import DefaultRecordBatch, DefaultRecordBatchBuilder
from kafka.record.memory_records import MemoryRecords
from kafka.structs import TopicPartition

from rnnstream.daemon import fetch
from rnnstream.daemon.fetch import PartitionRecords, parse_batch

TP = TopicPartition("events", 3)


def build(rows, codec=0, base_offset=0) -> bytes:
    """A v2 batch of ``rows``: (offset delta, timestamp ms, key, value, headers)."""
    b = DefaultRecordBatchBuilder(magic=2, compression_type=codec, is_transactional=False, producer_id=-1,
                                  producer_epoch=-1, base_sequence=-1, batch_size=1 << 30)
    for offset, ts, key, value, headers in rows:
        b.append(offset, timestamp=ts, key=key, value=value, headers=headers)
    data = bytearray(b.build())
    struct.pack_into(">q", data, 0, base_offset)
    return bytes(data)


def varied(n=400):
    rows = []
    for i in range(n):
        rows.append((i, 1_700_000_000_000 + i * 37,
                     None if i % 7 == 0 else b"host-%05d" % i,
                     None if i % 11 == 0 else b'{"host":"h%d","ts":%d,"cpu":%d.5}' % (i, i, i) * (1 + i % 5),
                     [("k\u00e9y", b"v" * (i % 3)), ("none", None)] if i % 5 == 0 else []))
    return rows


def kafka_python(data: bytes, fetch_offset=0, **kw) -> list:
    return Fetcher.PartitionRecords(fetch_offset, TP, MemoryRecords(data), **kw).take()


def ours(data: bytes, fetch_offset=0, **kw) -> list:
    return PartitionRecords(fetch_offset, TP, MemoryRecords(data), **kw).take()


@pytest.mark.parametrize("codec", [0, DefaultRecordBatch.CODEC_GZIP])
def test_same_records_as_kafka_python(codec):
    data = build(varied(), codec) + build(varied(50), codec, base_offset=400)
    expected = kafka_python(data)
    got = ours(data)
    assert len(got) == 450
    assert got == expected
    assert all(type(r) is ConsumerRecord for r in got)
    assert got[5].headers == [("k\u00e9y", b"vv"), ("none", None)] and got[5].serialized_header_size == 10


def test_varints_of_every_length():
    # offset gaps (compaction) and timestamp deltas of 1 to 6 varint bytes, negative deltas included
    rows = [(off, 1_700_000_000_000 + d, b"k", b"v", []) for off, d in
            [(0, 0), (63, -64), (64, 8191), (8192, -8192), (2_000_000, 10**9), (2_000_001, 10**11), (2_000_002, -5)]]
    data = build(rows)
    assert ours(data) == kafka_python(data)
    assert [r.offset for r in ours(data)] == [0, 63, 64, 8192, 2_000_000, 2_000_001, 2_000_002]


def test_log_append_time_uses_the_batch_max_timestamp():
    data = bytearray(build(varied(20)))
    attrs_at = DefaultRecordBatch.ATTRIBUTES_OFFSET
    attrs, = struct.unpack_from(">h", data, attrs_at)
    struct.pack_into(">h", data, attrs_at, attrs | DefaultRecordBatch.TIMESTAMP_TYPE_MASK)
    struct.pack_into(">I", data, attrs_at - 4, crc32c.crc32c(bytes(data[attrs_at:])))
    got = ours(bytes(data))
    assert got == kafka_python(bytes(data))
    assert {(r.timestamp, r.timestamp_type) for r in got} == {(1_700_000_000_000 + 19 * 37, 1)}


def test_position_and_partial_takes():
    data = build(varied(100))
    kp = Fetcher.PartitionRecords(30, TP, MemoryRecords(data))
    mine = PartitionRecords(30, TP, MemoryRecords(data))
    for n in (1, 9, 25):
        assert mine.take(n) == kp.take(n)
        assert mine.next_fetch_offset == kp.next_fetch_offset
    assert mine.take() == kp.take()
    assert mine.next_fetch_offset == kp.next_fetch_offset == 100
    assert mine.records_read == 100 and mine.bytes_read > 0
    assert not mine and not kp   # drained


def test_crc_failure_raises_like_kafka_python():
    data = bytearray(build(varied(10)))
    data[-3] ^= 0xFF
    with pytest.raises(CorruptRecordError, match="crc"):
        ours(bytes(data))
    # without CRC checks the corrupt value is read as kafka-python reads it
    assert ours(bytes(data), check_crcs=False) == kafka_python(bytes(data), check_crcs=False)


def test_a_record_whose_length_lies_is_corrupt():
    data = bytearray(build([(0, 1, b"k", b"value", []), (1, 2, b"k", b"value", [])]))
    header = DefaultRecordBatch.HEADER_STRUCT.size
    assert data[header] == 2 * 12        # zigzag varint of the first record's length, 12
    data[header] = 2 * 11
    for parse in (kafka_python, ours):
        with pytest.raises(CorruptRecordError):
            parse(bytes(data), check_crcs=False)


def test_parse_batch_counts_the_records_bytes():
    data = build(varied(30))
    records, size = parse_batch(DefaultRecordBatch(data), TP.topic, TP.partition, 7)
    assert len(records) == 30 and {r.leader_epoch for r in records} == {7}
    kp = Fetcher.PartitionRecords(0, TP, MemoryRecords(data))
    kp.take()
    assert size == kp.bytes_read


def test_deserializers_keep_kafka_pythons_path():
    class Upper:
        def deserialize(self, topic, headers, data):
            return None if data is None else data.upper()
    data = build(varied(20))
    assert ours(data, value_deserializer=Upper()) == kafka_python(data, value_deserializer=Upper())


def test_install_refuses_what_it_does_not_know():
    class NotAConsumer:
        _fetcher = object()
    assert fetch.install(NotAConsumer()) is False


def _transactional(rows, producer_id, base_offset, control=False) -> bytes:
    b = DefaultRecordBatchBuilder(magic=2, compression_type=0, is_transactional=True, producer_id=producer_id,
                                  producer_epoch=0, base_sequence=0, batch_size=1 << 30)
    for offset, ts, key, value, headers in rows:
        b.append(offset, timestamp=ts, key=key, value=value, headers=headers)
    data = bytearray(b.build())
    struct.pack_into(">q", data, 0, base_offset)
    if control:
        at = DefaultRecordBatch.ATTRIBUTES_OFFSET
        attrs, = struct.unpack_from(">h", data, at)
        struct.pack_into(">h", data, at, attrs | DefaultRecordBatch.CONTROL_MASK)
        struct.pack_into(">I", data, at - 4, crc32c.crc32c(bytes(data[at:])))
    return bytes(data)


def test_read_committed_skips_aborted_transactions_and_control_batches():
    from collections import namedtuple

    from kafka.consumer.fetcher import IsolationLevel

    aborted = namedtuple("Aborted", "producer_id first_offset")
    marker = lambda kind: [(0, 5, struct.pack(">hh", 0, kind), b"", [])]  # noqa: E731  (0 abort, 1 commit)
    data = (_transactional(varied(10), 7, 0)                     # aborted: offsets 0-9
            + _transactional(marker(0), 7, 10, control=True)     # its abort marker
            + _transactional(varied(5), 8, 11)                   # committed: offsets 11-15
            + _transactional(marker(1), 8, 16, control=True)     # its commit marker
            + build(varied(3), base_offset=17))                  # not transactional: 17-19
    kw = dict(isolation_level=IsolationLevel.READ_COMMITTED, aborted_transactions=[aborted(7, 0)])
    got = ours(data, **kw)
    assert got == kafka_python(data, **kw)
    assert [r.offset for r in got] == [11, 12, 13, 14, 15, 17, 18, 19]
    # read_uncommitted: every data record, never the markers
    assert [r.offset for r in ours(data)] == [r.offset for r in kafka_python(data)] == [*range(10), *range(11, 16), 17, 18, 19]


def test_pacing_batches_fetches_while_records_flow_and_answers_at_once_when_idle():
    from kafka import KafkaConsumer

    consumer = KafkaConsumer(bootstrap_servers="127.0.0.1:9", api_version=(2, 5))   # never connects here
    try:
        config = consumer._fetcher.config
        pacing = fetch.Pacing(consumer, 65536, 5)
        assert pacing.idle and (config["fetch_min_bytes"], config["fetch_max_wait_ms"]) == (1, fetch.IDLE_MAX_WAIT_MS)
        pacing.polled(True)
        assert not pacing.idle and (config["fetch_min_bytes"], config["fetch_max_wait_ms"]) == (65536, 5)
        pacing.polled(True)
        assert (config["fetch_min_bytes"], config["fetch_max_wait_ms"]) == (65536, 5)
        pacing.polled(False)
        assert pacing.idle and (config["fetch_min_bytes"], config["fetch_max_wait_ms"]) == (1, fetch.IDLE_MAX_WAIT_MS)
    finally:
        consumer.close()
    fetch.Pacing(object(), 65536, 5).polled(True)   # an unknown consumer: left alone, no error
