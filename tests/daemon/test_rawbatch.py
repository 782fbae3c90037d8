"""Scores published as whole record batches (rnnstream.daemon.rawbatch), against the real embedded broker:
every score read back once, in order per partition, on the default partitioner's partition; with the
idempotent and the transactional producer; and a batch the broker refuses as too large."""

from __future__ import annotations

import time

import numpy as np
import orjson
import pytest
from kafka import KafkaConsumer, KafkaProducer
from kafka.admin import KafkaAdminClient, NewTopic
from kafka.errors import UnknownError
from kafka.consumer.fetcher import ConsumerRecord
from kafka.partitioner.default import murmur2
from kafka.record.memory_records import MemoryRecords

from rnnstream.daemon import rawbatch, scoresbatch, scorerecords
from rnnstream.daemon.outputs import Outputs

from .test_outputs import detector_cfg


def test_encoded_batch_is_what_kafka_python_decodes_with_a_valid_crc():
    keys = [b"k%d" % i for i in range(20000)]                    # offset deltas past the varint table
    values = [b"v" * (i % 400) for i in range(20000)]             # lengths of one and two varint bytes
    batch = rawbatch.RecordBatchV2(rawbatch.encode_records(keys, values), len(keys), 1_700_000_000_123)
    batch.set_producer_state(7, 2, 1000, True)
    batch.close()
    with pytest.raises(Exception):
        batch.set_producer_state(7, 2, 2000, True)               # the header is written once
    decoded = MemoryRecords(bytes(batch.buffer())).next_batch()
    assert decoded.validate_crc()
    assert (decoded.producer_id, decoded.producer_epoch, decoded.base_sequence, decoded.is_transactional) == (7, 2, 1000, True)
    records = list(decoded)
    assert [(r.offset, r.key, r.value, r.timestamp, r.headers) for r in records] == \
        [(j, keys[j], values[j], 1_700_000_000_123, []) for j in range(20000)]
    assert rawbatch.varint(-1) == b"\x01" and rawbatch.varint(300) == b"\xd8\x04"   # zig-zag, as Kafka


def _rec(offset: int) -> ConsumerRecord:
    return ConsumerRecord("metrics", 0, 0, offset, 1_700_000_000_000, 0, None, b"{}", [], None, -1, 2, -1)


def _publish_polls(out: Outputs, polls: int, per_poll: int, entities: int) -> int:
    offset = 0
    for _ in range(polls):
        raw = [_rec(offset + i) for i in range(per_poll)]
        names = [f"host-{(offset + i) % entities:04d}" for i in range(per_poll)]
        out.scores(raw, names, np.arange(offset, offset + per_poll, dtype=np.float64), np.arange(per_poll),
                   np.linspace(0, 1, per_poll), np.ones(per_poll), np.zeros(per_poll, np.uint8), 1)
        offset += per_poll
    return offset


def _read_all(bootstrap: str, topic: str, n: int, committed_only: bool = False, timeout_s: float = 60):
    consumer = KafkaConsumer(topic, bootstrap_servers=bootstrap, group_id=None, auto_offset_reset="earliest",
                             enable_auto_commit=False,
                             isolation_level="read_committed" if committed_only else "read_uncommitted")
    got, deadline = [], time.monotonic() + timeout_s
    while len(got) < n and time.monotonic() < deadline:
        for records in consumer.poll(timeout_ms=500).values():
            got += records
    extra = consumer.poll(timeout_ms=1000)                      # nothing beyond n (no duplicates)
    consumer.close()
    return got + [r for rs in extra.values() for r in rs]


def _check_every_score_once_in_order(got, n: int, partitions: int) -> None:
    offsets = [int(orjson.loads(r.value)["event_id"].rsplit(":", 1)[1]) for r in got]
    assert sorted(offsets) == list(range(n))                    # none lost, none duplicated
    for p in range(partitions):
        mine = [o for r, o in zip(got, offsets) if r.partition == p]
        assert mine == sorted(mine) and mine                     # in publish order per partition
    for r in got:                                                # the default partitioner's partition
        assert r.partition == (murmur2(r.key) & 0x7FFFFFFF) % partitions
        assert orjson.loads(r.value)["entity"] == r.key.decode()


def test_per_record_scores_as_record_batches_are_read_back_once_in_order(kafka):
    topic = kafka.new_topic("rawscores", partitions=3)
    producer = KafkaProducer(bootstrap_servers=kafka.bootstrap, acks="all", batch_size=16384, linger_ms=5)
    try:
        assert rawbatch.available(producer)
        out = Outputs(producer, detector_cfg(f"{{scores_topic: {topic}}}"), "pod-1")
        assert out._raw is not None
        n = _publish_polls(out, polls=4, per_poll=2500, entities=700)   # 16 KB batches: many per partition
        producer.send(topic, key=b"host-0000", value=orjson.dumps({"event_id": f"x:metrics:0:{n}", "entity": "host-0000"}))
        producer.flush(30)
        out.service()
        assert out._inflight == [] and out.pending == 0 and out.send_failures == 0
        assert out.sent["score"] == n
        _check_every_score_once_in_order(_read_all(kafka.bootstrap, topic, n + 1), n + 1, 3)
    finally:
        producer.close()


def test_record_batches_join_the_transaction_commit_and_abort(kafka):
    topic = kafka.new_topic("rawtxn", partitions=2)
    producer = KafkaProducer(bootstrap_servers=kafka.bootstrap, transactional_id=f"raw-{time.time_ns()}",
                             batch_size=16384)
    try:
        producer.init_transactions()
        out = Outputs(producer, detector_cfg(f"{{scores_topic: {topic}}}"), "pod-1")
        producer.begin_transaction()
        _publish_polls(out, polls=1, per_poll=1000, entities=100)
        producer.abort_transaction()
        out.discard_pending()
        producer.begin_transaction()
        n = _publish_polls(out, polls=2, per_poll=1500, entities=300)
        producer.commit_transaction()
        out.service()
        assert out._inflight == [] and out.pending == 0
        got = _read_all(kafka.bootstrap, topic, n, committed_only=True)
        _check_every_score_once_in_order(got, n, 2)                # the aborted 1,000 are not visible
    finally:
        producer.close()


def _small_topic(kafka, prefix: str) -> str:
    """A new one-partition topic that takes messages of at most 6,000 bytes."""
    topic = f"{prefix}-{time.time_ns()}"
    admin = KafkaAdminClient(bootstrap_servers=kafka.bootstrap)
    admin.create_topics([NewTopic(topic, 1, 1, topic_configs={"max.message.bytes": "6000"})])
    admin.close()
    return topic


def test_a_batch_refused_as_too_large_is_split_by_the_producer_and_still_accounted(kafka):
    topic = _small_topic(kafka, "rawsmall")
    producer = KafkaProducer(bootstrap_servers=kafka.bootstrap, acks="all", batch_size=65536)
    try:
        out = Outputs(producer, detector_cfg(f"{{scores_topic: {topic}}}"), "pod-1")
        n = _publish_polls(out, polls=1, per_poll=400, entities=400)   # ~80 KB: split until under 6 KB
        for _ in range(20):
            try:
                producer.flush(60)
                break
            except UnknownError:   # kafka-python's flush when a batch splits under it (its own batches too)
                continue
        deadline = time.monotonic() + 30
        while out._inflight and time.monotonic() < deadline:
            out.service()
            time.sleep(0.05)
        assert out._inflight == [] and out.pending == 0 and out.send_failures == 0
        _check_every_score_once_in_order(_read_all(kafka.bootstrap, topic, n), n, 1)
    finally:
        producer.close()


def test_a_failing_topic_keeps_the_scores_for_a_retry(kafka):
    """A batch the broker fails (here: its partition does not exist) is counted, queued and retried
    record by record; nothing raises, nothing is lost silently."""
    topic = kafka.new_topic("rawfail", partitions=1)
    producer = KafkaProducer(bootstrap_servers=kafka.bootstrap, acks="all", delivery_timeout_ms=3000,
                             request_timeout_ms=1000, linger_ms=0, max_block_ms=2000)
    try:
        out = Outputs(producer, detector_cfg(f"{{scores_topic: {topic}}}"), "pod-1", retry_backoff_ms=60000)
        out._partitioner = lambda t: (lambda key: 5)             # a partition the topic does not have
        _publish_polls(out, polls=1, per_poll=50, entities=50)
        deadline = time.monotonic() + 30
        while out._inflight and time.monotonic() < deadline:
            out.service()
            time.sleep(0.1)
        assert out._inflight == [] and out.pending == 50 and out.send_failures == 50
        assert "rawfail" in out.problem()
    finally:
        producer.close(timeout=5)


def test_deferred_wake_queues_a_polls_batches_and_wakes_the_sender_once(kafka):
    topic = kafka.new_topic("rawwake", partitions=3)
    producer = KafkaProducer(bootstrap_servers=kafka.bootstrap, acks="all", linger_ms=5, batch_size=512 * 1024)
    try:
        out = Outputs(producer, detector_cfg(f"{{scores_topic: {topic}}}"), "pod-1")
        out.deferred_wake = True
        assert len(producer.partitions_for(topic)) == 3   # metadata known: no wake-up of its own
        wakeups = []
        real = producer._sender.wakeup
        producer._sender.wakeup = lambda: (wakeups.append(1), real())[1]
        n = _publish_polls(out, polls=1, per_poll=300, entities=50)   # one batch per output partition
        assert len(out._inflight) == 3 and wakeups == []
        out.wake()
        out.wake()                                                     # nothing queued since: no wake-up
        assert wakeups == [1]
        deadline = time.monotonic() + 30                               # delivered without a flush
        while not all(f.is_done for f, _ in out._inflight) and time.monotonic() < deadline:
            time.sleep(0.01)
        out.service()
        assert out._inflight == [] and out.sent["score"] == n
        _check_every_score_once_in_order(_read_all(kafka.bootstrap, topic, n), n, 3)
    finally:
        producer.close()


def test_records_appended_to_an_open_batch_continue_its_offsets_and_timestamps():
    keys, values = [b"a", b"b"], [b"x" * 10, b"y" * 20000]
    batch = rawbatch.RecordBatchV2(rawbatch.encode_records(keys, values, framed=True), 2, 1_700_000_000_000,
                                   framed=True)
    batch.open = True
    assert not batch.is_full()
    batch.extend(rawbatch.encode_records([b"c"], [b"z"], first=2, timestamp_delta=250), 1, 1_700_000_000_250)
    batch.extend(rawbatch.encode_records([b"d"] * 20000, [b"w"] * 20000, first=3, timestamp_delta=20000),
                 20000, 1_700_000_020_000)                                  # deltas past the varint table
    batch.open = False
    assert batch.is_full() and batch.next_offset() == 20003
    batch.close()
    with pytest.raises(Exception):
        batch.extend(rawbatch.encode_records([b"e"], [b"e"], first=20003), 1, 1_700_000_030_000)
    decoded = MemoryRecords(bytes(batch.buffer())).next_batch()
    assert decoded.validate_crc() and decoded.max_timestamp == 1_700_000_020_000
    got = [(r.offset, r.key, r.value, r.timestamp) for r in decoded]
    assert got[:3] == [(0, b"a", b"x" * 10, 1_700_000_000_000), (1, b"b", b"y" * 20000, 1_700_000_000_000),
                       (2, b"c", b"z", 1_700_000_000_250)]
    assert got[3:] == [(j, b"d", b"w", 1_700_000_020_000) for j in range(3, 20003)]
    keys, values = rawbatch.decode_records(batch.buffer(), 3, rawbatch.HEADER.size)
    assert keys == [b"a", b"b", b"c"] and values == [b"x" * 10, b"y" * 20000, b"z"]


def _batched(out_topic: str) -> str:
    return f"{{scores_topic: {out_topic}, scores_format: batch}}"


def _check_batched_scores_once_in_order(got, n: int) -> None:
    offsets = [o for r in got for o in scoresbatch.decode(r.value)["offset"].tolist()]
    assert offsets == list(range(n))                     # one source partition, one key: in order, once


def _wait_delivered(out: Outputs, timeout_s: float = 30) -> None:
    deadline = time.monotonic() + timeout_s
    while out._inflight and time.monotonic() < deadline:
        out.service()
        time.sleep(0.01)
    assert out._inflight == [] and out.pending == 0 and out.send_failures == 0


def test_held_batched_scores_fill_one_record_batch_and_leave_when_released(kafka):
    topic = kafka.new_topic("rawhold", partitions=2)
    producer = KafkaProducer(bootstrap_servers=kafka.bootstrap, acks="all", linger_ms=5, batch_size=16384)
    try:
        out = Outputs(producer, detector_cfg(_batched(topic)), "pod-1")
        out.deferred_wake, out.hold_scores = True, True            # the loop, while polls come full
        assert len(producer.partitions_for(topic)) == 2
        wakeups = []
        real = producer._sender.wakeup
        producer._sender.wakeup = lambda: (wakeups.append(1), real())[1]
        n = 0
        for _ in range(5):                                         # 5 polls of 400 events: ~130 KB
            n = _publish_polls_from(out, n, 400)
            out.wake()                                             # as Unit.handle does before each kernel
        futures = {id(f) for f, _ in out._inflight}
        assert len(out._inflight) == 5 and len(futures) == 1       # one record batch, past batch_size
        assert [b.first for _, b in out._inflight] == [0, 1, 2, 3, 4]
        assert wakeups == [1]                                      # the new open batch's, once
        (batch,) = [b for dq in producer._accumulator._batches.values() for b in dq]
        assert batch.record_count == 5 and batch.records.open and not batch.records.closed
        time.sleep(0.03)                                           # past linger_ms: still held
        assert not out._inflight[0][0].is_done
        out.hold_scores = False                                    # a poll that was not full
        out.wake()
        assert wakeups == [1, 1]
        _wait_delivered(out)                                       # without a flush
        _check_batched_scores_once_in_order(_read_all(kafka.bootstrap, topic, 5), n)
    finally:
        producer.close()


def _publish_polls_from(out: Outputs, offset: int, per_poll: int) -> int:
    raw = [_rec(offset + i) for i in range(per_poll)]
    names = [f"host-{(offset + i) % 97:04d}" for i in range(per_poll)]
    out.scores(raw, names, np.arange(offset, offset + per_poll, dtype=np.float64), np.arange(per_poll),
               np.linspace(0, 1, per_poll), np.ones(per_poll), np.zeros(per_poll, np.uint8), 1)
    return offset + per_poll


def test_held_batched_scores_leave_by_the_hold_timer_a_flush_or_a_full_batch(kafka):
    from rnnstream.daemon.outputs import SCORES_HOLD_S

    topic = kafka.new_topic("rawtimer", partitions=1)
    producer = KafkaProducer(bootstrap_servers=kafka.bootstrap, acks="all", linger_ms=5,
                             max_request_size=200_000)
    try:
        out = Outputs(producer, detector_cfg(_batched(topic)), "pod-1")
        out.deferred_wake, out.hold_scores = True, True
        started = time.monotonic()
        n = _publish_polls_from(out, 0, 300)
        out.wake()                                                 # arms the sender's timer; never released
        _wait_delivered(out, timeout_s=SCORES_HOLD_S + 10)
        assert time.monotonic() - started >= SCORES_HOLD_S * 0.9   # held until its time
        n = _publish_polls_from(out, n, 300)
        out.wake()
        producer.flush(30)                                         # a checkpoint's flush takes it at once
        assert all(f.is_done for f, _ in out._inflight)
        out.service()
        for _ in range(12):                                        # ~30 KB a poll: fills 200 KB requests
            n = _publish_polls_from(out, n, 1000)
            out.wake()
        assert len({id(f) for f, _ in out._inflight}) >= 2         # full batches went out on their own
        assert all(b.records.size_in_bytes() <= out._raw.max_coalesced_bytes
                   for dq in producer._accumulator._batches.values() for b in dq)
        producer.flush(30)
        _wait_delivered(out)
        got = _read_all(kafka.bootstrap, topic, 14)
        _check_batched_scores_once_in_order(got, n)
        assert [r.timestamp for r in got] == sorted(r.timestamp for r in got)
    finally:
        producer.close()


def test_held_batched_scores_in_a_transaction_commit_and_abort(kafka):
    topic = kafka.new_topic("rawholdtxn", partitions=1)
    producer = KafkaProducer(bootstrap_servers=kafka.bootstrap, transactional_id=f"rawhold-{time.time_ns()}")
    try:
        producer.init_transactions()
        out = Outputs(producer, detector_cfg(_batched(topic)), "pod-1")
        out.deferred_wake, out.hold_scores = True, True
        producer.begin_transaction()
        _publish_polls_from(out, 0, 200)
        out.wake()
        producer.abort_transaction()                               # the held batch is aborted with it
        out.discard_pending()
        producer.begin_transaction()
        n = _publish_polls_from(out, 0, 200)                       # a new batch, not the aborted one
        n = _publish_polls_from(out, n, 200)
        out.wake()
        producer.commit_transaction()                              # waits for the held batch
        _wait_delivered(out)
        _check_batched_scores_once_in_order(_read_all(kafka.bootstrap, topic, 2, committed_only=True), n)
    finally:
        producer.close()


def test_a_held_batch_refused_as_too_large_is_split_and_every_poll_accounted(kafka):
    topic = _small_topic(kafka, "rawholdsmall")
    producer = KafkaProducer(bootstrap_servers=kafka.bootstrap, acks="all")
    try:
        out = Outputs(producer, detector_cfg(_batched(topic)), "pod-1")
        out.deferred_wake, out.hold_scores = True, True
        n = 0
        for _ in range(6):                                         # 6 records of ~2 KB in one batch
            n = _publish_polls_from(out, n, 25)
            out.wake()
        assert len({id(f) for f, _ in out._inflight}) == 1
        for _ in range(20):
            try:
                producer.flush(60)
                break
            except UnknownError:   # kafka-python's flush when a batch splits under it
                continue
        _wait_delivered(out)
        _check_batched_scores_once_in_order(_read_all(kafka.bootstrap, topic, 6), n)
    finally:
        producer.close()


def test_held_per_record_scores_continue_the_open_batches_and_read_back_once_in_order(kafka):
    topic = kafka.new_topic("rawholdrec", partitions=3)
    producer = KafkaProducer(bootstrap_servers=kafka.bootstrap, acks="all", linger_ms=5, batch_size=16384)
    try:
        out = Outputs(producer, detector_cfg(f"{{scores_topic: {topic}}}"), "pod-1")
        out.deferred_wake, out.hold_scores = True, True
        assert len(producer.partitions_for(topic)) == 3
        n = 0
        for _ in range(4):                                         # 4 polls: one open batch per partition
            n = _publish_polls_from(out, n, 300)
            out.wake()
        assert len({id(f) for f, _ in out._inflight}) == 3 and len(out._inflight) == 12
        held = [b for dq in producer._accumulator._batches.values() for b in dq]
        assert sum(b.record_count for b in held) == n and len(held) == 3
        assert len({b.last_attempt for b in held}) == 1            # one deadline: one produce request
        # the open batch of partition 0 is sent behind the encoder's back: its records are encoded again
        first, room, delta = out._raw.open_batches(topic, 3)
        assert all(c > 0 for c in first) and all(r > 0 for r in room)
        out._raw.release()
        out._raw.wake()
        deadline = time.monotonic() + 30
        while out._raw.open_batches(topic, 3)[0] != [0, 0, 0] and time.monotonic() < deadline:
            time.sleep(0.01)
        pieces = scorerecords.pieces_for("hosts", "metrics", 0)
        names = [e for e in (f"host-{i:04d}" for i in range(97)) if (murmur2(e.encode()) & 0x7FFFFFFF) % 3 == 0]
        names = (names * 50)[:50]                                  # entities of output partition 0
        (b,) = [b for b in scorerecords.encode(pieces, names, np.arange(n, n + 50), np.zeros(50), np.zeros(50),
                                               np.zeros(50), np.zeros(50, bool), np.zeros(50, bool),
                                               np.zeros(50, bool), np.ones(50, np.int64), np.zeros(50, np.int64), 1 << 20,
                                               ([first[0], 0, 0], [room[0], 0, 0], [delta[0], 0, 0]))]
        assert b.first == first[0]
        future, watch, at = out._raw.publish_coalesced_framed(topic, 0, b.buffer, b.count, b.first, b.ts_delta, 0.1)
        assert at == 0                                             # a new batch, its deltas from 0
        out.hold_scores = False
        out.wake()
        producer.flush(30)
        _wait_delivered(out)
        assert rawbatch.outcome(future, watch, at, b.count) == []
        got = _read_all(kafka.bootstrap, topic, n + 50)
        _check_every_score_once_in_order(got, n + 50, 3)
    finally:
        producer.close()
