"""scorerecords: a poll's per-record score values encoded at once, byte for byte what the
record-at-a-time path (a dict through ``orjson.dumps``) writes, framed as rawbatch's records."""

from __future__ import annotations

import numpy as np
import orjson
import pytest

from rnnstream.daemon import rawbatch, scorerecords


def _events(n, seed=1):
    rng = np.random.default_rng(seed)
    ents = [f"host-{i % 97:05d}" for i in range(n)]
    offsets = np.arange(10**12, 10**12 + n)
    ts = 1.7e9 + rng.random(n) * 1e5
    score = rng.random(n).astype(np.float32)           # widened to float64, as .tolist() does
    error = rng.normal(size=n) * 10.0 ** rng.integers(-30, 30, n)
    flag = rng.integers(0, 8, n)   # bits: anomaly, suppressed, anomalous (the scores' own bit values)
    versions = rng.integers(0, 1000, n)
    parts = rng.integers(0, 3, n)
    return ents, offsets, ts, score, error, flag, versions, parts


def _encode(ents, offsets, ts, score, error, flag, versions, parts, budget, detector="det", topic="in", partition=7):
    pieces = scorerecords.pieces_for(detector, topic, partition)
    return scorerecords.encode(pieces, ents, offsets, ts, score, error, flag & 1 > 0, flag & 2 > 0, flag & 4 > 0,
                               versions, parts, budget)


def _expected(e, ents, offsets, ts, score, error, flag, versions, detector="det", topic="in", partition=7):
    return ents[e].encode(), orjson.dumps({
        "event_id": f"{detector}:{topic}:{partition}:{offsets[e]}", "detector": detector, "entity": ents[e],
        "event_time": float(ts[e]), "score": float(score[e]), "error": float(error[e]),
        "anomaly": bool(flag[e] & 1), "suppressed": bool(flag[e] & 2), "anomalous": bool(flag[e] & 4),
        "model_version": int(versions[e])})


def _check(batches, n, budget, args, **names):
    seen = {}
    parts = args[-1]
    for b in batches:
        keys, values = rawbatch.decode_records(b.buffer, b.count, scorerecords.ROOM)
        assert b.count == len(b.events) and b.count >= 1
        assert bytes(b.buffer[scorerecords.ROOM:]) == rawbatch.encode_records(keys, values)   # exact framing
        assert len(b.buffer) - scorerecords.ROOM <= budget or b.count == 1
        assert (parts[b.events] == b.partition).all()
        assert list(b.events) == sorted(b.events)             # event order within a partition
        for e, k, v in zip(b.events.tolist(), keys, values):
            seen[e] = (k, v)
    assert sorted(seen) == list(range(n))
    for e in range(n):
        assert seen[e] == _expected(e, *args[:-1], **names), e


@pytest.mark.parametrize("budget", [1 << 20, 3000, 10])
def test_the_same_bytes_as_a_dict_through_orjson(budget):
    args = _events(3000)
    args[4][5] = np.nan                                        # null, as orjson writes NaN
    args[4][6] = -0.0
    args[4][8] = 5e-324
    _check(_encode(*args, budget=budget), 3000, budget, args)


def test_entities_that_need_escaping_and_are_not_ascii():
    args = list(_events(40))
    ents = args[0]
    ents[:8] = ['we"ird\\,"x', "é☃😀\n\x01", '","', "\\", '"', "\x7f\u2028", "", "a" * 20000]
    names = {"detector": 'd"e\\t', "topic": "t\u00e9", "partition": 0}
    batches = _encode(*args, budget=4096, **names)
    _check(batches, 40, 4096, args, **names)


def test_batches_split_at_the_budget_and_partitions_apart():
    args = _events(2000)
    budget = 5000
    batches = _encode(*args, budget=budget)
    per = {}
    for b in batches:
        per.setdefault(b.partition, []).append(b)
    assert sorted(per) == [0, 1, 2]
    for bs in per.values():
        assert len(bs) > 1
        # every batch but a partition's last is full: the next record would not have fitted
        for b in bs[:-1]:
            assert len(b.buffer) - scorerecords.ROOM > budget - 400
    _check(batches, 2000, budget, args)


def test_a_framed_batch_is_a_valid_v2_batch():
    """The buffer handed to the producer, its header written in place, reads back with kafka-python."""
    from kafka.record.memory_records import MemoryRecords

    args = _events(100)
    b = _encode(*args, budget=1 << 20)[0]
    rb = rawbatch.RecordBatchV2(b.buffer, b.count, 1_700_000_000_000, framed=True)
    rb.close()
    batches = list(MemoryRecords(bytes(rb.buffer())))
    assert len(batches) == 1 and batches[0].validate_crc()
    got = [(r.key, r.value) for r in batches[0]]
    assert got == [_expected(e, *args[:-1]) for e in b.events.tolist()]


def test_records_that_continue_open_batches_and_a_new_batch_where_the_room_is_too_small():
    """``open_batches``: partition 0's open batch has 5 records and room for 2,000 bytes, partition 1's
    300 records and room for 10 bytes (not even one record: a new batch), partition 2 none."""
    from kafka.record.memory_records import MemoryRecords

    args = _events(200)
    pieces = scorerecords.pieces_for("det", "in", 7)
    ents, offsets, ts, score, error, flag, versions, parts = args
    batches = scorerecords.encode(pieces, ents, offsets, ts, score, error, flag & 1 > 0, flag & 2 > 0, flag & 4 > 0, versions,
                                  parts, 1 << 20, ([5, 300, 0], [2000, 10, 0], [70, 9000, 0]))
    first = {}
    for b in batches:
        first.setdefault(b.partition, b)
    assert (first[0].first, first[0].ts_delta) == (5, 70) and 0 < len(first[0].buffer) - scorerecords.ROOM <= 2000
    assert (first[1].first, first[1].ts_delta) == (0, 0) and (first[2].first, first[2].ts_delta) == (0, 0)
    assert sum(b.count for b in batches) == 200 and len([b for b in batches if b.partition == 0]) == 2
    # appended to an open batch of 5 records, they read back with their offsets and timestamps
    head = rawbatch.encode_records([b"k"] * 5, [b"v"] * 5, framed=True)
    rb = rawbatch.RecordBatchV2(head, 5, 1_700_000_000_000, framed=True)
    rb.extend(memoryview(first[0].buffer)[scorerecords.ROOM:], first[0].count, 1_700_000_000_070)
    rb.close()
    (batch,) = list(MemoryRecords(bytes(rb.buffer())))
    assert batch.validate_crc()
    got = list(batch)
    assert [r.offset for r in got] == list(range(5 + first[0].count))
    assert [r.timestamp for r in got] == [1_700_000_000_000] * 5 + [1_700_000_000_070] * first[0].count
    assert [(r.key, r.value) for r in got[5:]] == [_expected(e, *args[:-1]) for e in first[0].events.tolist()]
