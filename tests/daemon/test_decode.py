"""decode_batch on hand-built kafka-python ConsumerRecords: every reject reason, paths, keys, time units."""

from __future__ import annotations

import time
from datetime import datetime, timezone

import numpy as np
import orjson
import pytest
from kafka.consumer.fetcher import ConsumerRecord

from rnnstream.config import load_config
from rnnstream.daemon.decode import REASONS, decode_batch


def detector_cfg(entity: str = "entity: host", timestamp: str = "timestamp: {field: ts}",
                 features: str = "[cpu]", extra: str = ""):
    text = f"""
detectors:
  - name: d
    topics: [t]
    {entity}
    {timestamp}
    features: {features}
    {extra}
"""
    return load_config(text).detectors[0]


def rec(value, offset=0, key=None, timestamp=1_700_000_000_000, headers=(), topic="t", partition=3):
    if isinstance(value, (dict, list, int, float, str)) and not isinstance(value, bytes):
        value = orjson.dumps(value)
    return ConsumerRecord(topic, partition, 0, offset, timestamp, 0, key, value, list(headers), None,
                          -1 if key is None else len(key), -1 if value is None else len(value), -1)


def test_accepts_and_keeps_order():
    cfg = detector_cfg(features="[cpu, mem]")
    records = [rec({"host": f"h{i % 2}", "ts": 100 + i, "cpu": i * 0.5, "mem": str(i)}, offset=10 + i)
               for i in range(5)]
    d = decode_batch(records, cfg)
    assert d.entities == ["h0", "h1", "h0", "h1", "h0"]
    assert d.x.dtype == np.float64 and d.x.shape == (5, 2)
    np.testing.assert_array_equal(d.x[:, 0], [0, 0.5, 1, 1.5, 2])
    np.testing.assert_array_equal(d.x[:, 1], [0, 1, 2, 3, 4])
    np.testing.assert_array_equal(d.ts, [100, 101, 102, 103, 104])
    assert d.offsets.dtype == np.int64 and d.offsets.tolist() == [10, 11, 12, 13, 14]
    assert d.raw == records and d.rejects == []


def test_empty_batch_has_right_shapes():
    d = decode_batch([], detector_cfg(features="[a, b, c]"))
    assert d.x.shape == (0, 3) and d.ts.shape == (0,) and d.offsets.shape == (0,)


@pytest.mark.parametrize("value,reason", [
    (b"x" * 200, "oversize"),
    (b"\xff\xfe{}", "undecodable"),
    (b"{not json", "undecodable"),
    (None, "undecodable"),
    (b"[1, 2]", "not_object"),
    (b"42", "not_object"),
    ({"ts": 1, "cpu": 1}, "missing_field"),               # no host
    ({"host": None, "ts": 1, "cpu": 1}, "missing_field"),
    ({"host": "", "ts": 1, "cpu": 1}, "missing_field"),
    ({"host": "a", "cpu": 1}, "missing_field"),            # no ts
    ({"host": "a", "ts": 1}, "missing_field"),             # no cpu
    ({"host": {"x": 1}, "ts": 1, "cpu": 1}, "wrong_type"),
    ({"host": "a", "ts": 1, "cpu": "high"}, "wrong_type"),
    ({"host": "a", "ts": 1, "cpu": True}, "wrong_type"),
    ({"host": "a", "ts": 1, "cpu": [1]}, "wrong_type"),
    ({"host": "a", "ts": "yesterday", "cpu": 1}, "bad_timestamp"),
    ({"host": "a", "ts": 1e300, "cpu": 1}, "bad_timestamp"),
    ({"host": "a", "ts": "nan", "cpu": 1}, "bad_timestamp"),
    ({"host": "a", "ts": 1, "cpu": "NaN"}, "non_finite_value"),
    ({"host": "a", "ts": 1, "cpu": "-inf"}, "non_finite_value"),
])
def test_every_reject_reason(value, reason):
    cfg = detector_cfg(extra="max_message_bytes: 100")
    good = rec({"host": "a", "ts": 1, "cpu": 1}, offset=1)
    bad = rec(value, offset=2)
    d = decode_batch([good, bad, good._replace(offset=3)], cfg)
    assert d.offsets.tolist() == [1, 3]
    assert len(d.rejects) == 1
    r = d.rejects[0]
    assert r.record is bad and r.reason == reason and r.reason in REASONS
    assert r.detail.startswith("t[3]@2: ")


def test_iso_timestamp_reasons():
    cfg = detector_cfg(timestamp="timestamp: {field: ts, unit: iso}")
    d = decode_batch([rec({"host": "a", "ts": "not a date", "cpu": 1}),
                      rec({"host": "a", "ts": 1700000000, "cpu": 1})], cfg)
    assert [r.reason for r in d.rejects] == ["bad_timestamp", "bad_timestamp"]


def test_nested_paths_and_dotted_keys():
    cfg = detector_cfg(entity="entity: meta.host", timestamp="timestamp: {field: meta.time}",
                       features="[stats.cpu.user, 'a.b']")
    d = decode_batch([
        rec({"meta": {"host": "web1", "time": 5}, "stats": {"cpu": {"user": 0.25}}, "a.b": 7}),
        rec({"meta": {"host": 17, "time": 6}, "stats": {"cpu": {"user": 1}}, "a": {"b": 8}}),
        rec({"meta": {"host": "web1", "time": 7}, "stats": {"cpu": 3}, "a.b": 9}),
    ], cfg)
    assert d.entities == ["web1", "17"]            # a number names an entity through str()
    np.testing.assert_array_equal(d.x, [[0.25, 7], [1, 8]])
    np.testing.assert_array_equal(d.ts, [5, 6])
    assert [r.reason for r in d.rejects] == ["missing_field"]
    assert "stats.cpu.user" in d.rejects[0].detail


def test_key_as_entity():
    cfg = detector_cfg(entity="entity: {from_key: true}")
    d = decode_batch([rec({"ts": 1, "cpu": 1}, key=b"sensor-7"),
                      rec({"ts": 1, "cpu": 1}, key=None),
                      rec({"ts": 1, "cpu": 1}, key=b"\xff"),
                      rec({"ts": 1, "cpu": 1}, key="caf\u00e9".encode())], cfg)
    assert d.entities == ["sensor-7", "caf\u00e9"]
    assert [r.reason for r in d.rejects] == ["missing_field", "undecodable"]


def test_record_timestamp():
    cfg = detector_cfg(timestamp="timestamp: {from_record: true}")
    d = decode_batch([rec({"host": "a", "cpu": 1}, timestamp=1_700_000_000_250),
                      rec({"host": "a", "cpu": 1}, timestamp=-1)], cfg)
    assert d.ts.tolist() == [1_700_000_000.25]
    assert [r.reason for r in d.rejects] == ["bad_timestamp"]


@pytest.mark.parametrize("unit,value,seconds", [
    ("s", 1700000000.5, 1700000000.5),
    ("ms", 1700000000500, 1700000000.5),
    ("us", 1700000000500000, 1700000000.5),
    ("ns", 1700000000500000000, 1700000000.5),
    ("iso", "2023-11-14T22:13:20.5Z", 1700000000.5),
    ("iso", "2023-11-14T23:13:20.5+01:00", 1700000000.5),
    ("iso", "2023-11-14T22:13:20.5", 1700000000.5),       # naive means UTC
])
def test_timestamp_units(unit, value, seconds):
    cfg = detector_cfg(timestamp=f"timestamp: {{field: ts, unit: {unit}}}")
    d = decode_batch([rec({"host": "a", "ts": value, "cpu": 1})], cfg)
    assert d.rejects == []
    assert d.ts[0] == pytest.approx(seconds, abs=1e-6)


def test_iso_agrees_with_datetime():
    cfg = detector_cfg(timestamp="timestamp: {field: ts, unit: iso}")
    when = datetime(2024, 2, 29, 12, 0, 1, tzinfo=timezone.utc)
    d = decode_batch([rec({"host": "a", "ts": when.isoformat(), "cpu": 1})], cfg)
    assert d.ts[0] == when.timestamp()


def test_throughput_100k(capsys):
    cfg = detector_cfg(features="[cpu, mem]")
    records = [rec({"host": f"h{i % 100}", "ts": 1_700_000_000 + i, "cpu": i * 0.01, "mem": 50.0}, offset=i)
               for i in range(100_000)]
    t0 = time.perf_counter()
    d = decode_batch(records, cfg)
    elapsed = time.perf_counter() - t0
    assert len(d) == 100_000 and not d.rejects
    with capsys.disabled():
        print(f"\ndecode_batch: {len(records) / elapsed:,.0f} records/s (100k small JSON records)")


def _general_path(records, cfg):
    """Each record through the record-by-record general path, for comparison."""
    from rnnstream.daemon.decode import _Decoder
    from rnnstream.errors import InputRejected

    dec, out = _Decoder(cfg), []
    for r in records:
        try:
            out.append(dec.one(r))
        except InputRejected as exc:
            out.append(exc.reason)
    return out


@pytest.mark.parametrize("odd", [None, {"cpu": True}, {"cpu": "7.5"}, {"ts": "100"}, {"host": 7},
                                 {"host": ""}, {"cpu": 1.5e300}, {"extra": [1, {"a": 2}]}, b"huge"])
def test_batch_path_agrees_with_the_general_path(odd):
    """Clean polls take the one-call msgspec path; a poll with one odd record must give exactly what
    the general path gives record by record (accepted values and reject reasons)."""
    cfg = detector_cfg(features="[cpu, mem]")
    docs = [{"host": f"h{i % 3}", "ts": 1_700_000_000 + 60 * i, "cpu": i * 0.25, "mem": i, "noise": "x"}
            for i in range(40)]
    if isinstance(odd, dict):
        docs[17] = {**docs[17], **odd}
    records = [rec(d, offset=i) for i, d in enumerate(docs)]
    if odd == b"huge":  # a number JSON can write but no float holds
        records[17] = rec(b'{"host": "h9", "ts": 1700000000, "cpu": 1e400, "mem": 2}', offset=17)
    got = decode_batch(records, cfg)
    want = _general_path(records, cfg)
    accepted = [w for w in want if not isinstance(w, str)]
    assert got.entities == [w[0] for w in accepted]
    np.testing.assert_array_equal(got.x, np.array([w[1] for w in accepted]))
    np.testing.assert_array_equal(got.ts, np.array([w[2] for w in accepted]))
    assert [r.reason for r in got.rejects] == [w for w in want if isinstance(w, str)]
