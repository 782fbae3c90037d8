"""Record field access, numbers and timestamps shared by replay and the daemon's decoder."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from rnnstream.errors import InputRejected, RnnstreamError
from rnnstream.events import field, get_path, number, to_seconds

REC = {"host": "a", "cpu": {"user": 1.5, "sys": None}, "mem.used": 7, "deep": {"x": {"y": [1]}}}


def test_get_path_nested_and_dotted_keys():
    assert field(REC, "host") == "a"
    assert field(REC, "cpu.user") == 1.5
    assert field(REC, "mem.used") == 7            # a key containing dots wins over descending
    assert field(REC, "deep.x.y") == [1]


@pytest.mark.parametrize("path", ["nope", "cpu.nope", "cpu.sys", "host.sub", "deep.x.y.z", "cpu.user.x"])
def test_missing_fields_rejected(path):
    with pytest.raises(InputRejected) as err:
        field(REC, path)
    assert err.value.reason == "missing_field" and repr(path) in err.value.detail
    assert isinstance(err.value, RnnstreamError)


def test_get_path_on_non_dict():
    assert get_path([1, 2], "a") is get_path("text", "a")   # the same "missing" marker


@pytest.mark.parametrize("value,expected", [(1, 1.0), (2.5, 2.5), ("3.25", 3.25), (" 4 ", 4.0), ("-1e3", -1000.0),
                                            ("nan", float("nan")), (10**20, 1e20)])
def test_number_accepts_numbers_and_numeric_text(value, expected):
    got = number(value, "f")
    assert got == expected or (got != got and expected != expected)
    assert isinstance(got, float)


@pytest.mark.parametrize("value", [True, False, "abc", "", [1], {"a": 1}, None])
def test_number_rejects_other_types(value):
    with pytest.raises(InputRejected) as err:
        number(value, "cpu.user")
    assert err.value.reason == "wrong_type" and "cpu.user" in str(err.value)


@pytest.mark.parametrize("value,unit,expected", [
    (1700000000, "s", 1.7e9), (1700000000500, "ms", 1700000000.5), ("1700000000", "s", 1.7e9),
    (1_700_000_000_000_000, "us", 1.7e9), (1_700_000_000_000_000_000, "ns", 1.7e9),
])
def test_numeric_timestamps(value, unit, expected):
    assert to_seconds(value, unit, "ts") == pytest.approx(expected, abs=1e-3)


def test_iso_timestamps():
    want = datetime(2024, 3, 1, 12, 0, 0, tzinfo=timezone.utc).timestamp()
    assert to_seconds("2024-03-01T12:00:00Z", "iso", "ts") == want
    assert to_seconds("2024-03-01T12:00:00", "iso", "ts") == want          # naive means UTC
    assert to_seconds("2024-03-01 14:00:00+02:00", "iso", "ts") == want
    assert to_seconds("2024-03-01T12:00:00.250Z", "iso", "ts") == want + 0.25


def test_bad_timestamps():
    with pytest.raises(InputRejected) as err:
        to_seconds("yesterday", "iso", "meta.ts")
    assert err.value.reason == "bad_timestamp" and "meta.ts" in err.value.detail
    with pytest.raises(InputRejected) as err:
        to_seconds(1700000000, "iso", "ts")
    assert err.value.reason == "bad_timestamp" and "set timestamp.unit to s" in err.value.detail
    with pytest.raises(InputRejected) as err:
        to_seconds("soon", "ms", "ts")
    assert err.value.reason == "bad_timestamp" and "iso" not in err.value.detail
    with pytest.raises(InputRejected) as err:       # ISO text with a numeric unit: say which unit fits
        to_seconds("2024-03-01 12:00:00", "s", "ts")
    assert err.value.reason == "bad_timestamp" and "set timestamp.unit: iso" in err.value.detail


# -- one parser for replay and the daemon ------------------------------------------------------------

AGREE_CFG = """
detectors:
  - name: d
    topics: [t]
    entity: meta.host
    timestamp: {{field: meta.time, unit: {unit}}}
    features: [stats.cpu.user, 'a.b']
"""

AGREE_RECORDS = [
    {"meta": {"host": "web1", "time": 5}, "stats": {"cpu": {"user": 0.25}}, "a.b": 7},      # dotted key
    {"meta": {"host": 17, "time": 6}, "stats": {"cpu": {"user": "1"}}, "a": {"b": 8}},      # nested, numeric text
    {"meta": {"host": "web1", "time": 7}, "stats": {"cpu": 3}, "a.b": 9},                   # missing_field
    {"meta": {"host": "", "time": 7}, "stats": {"cpu": {"user": 1}}, "a.b": 9},             # empty entity
    {"meta": {"host": {"x": 1}, "time": 7}, "stats": {"cpu": {"user": 1}}, "a.b": 9},       # wrong_type entity
    {"meta": {"host": "h", "time": "yesterday"}, "stats": {"cpu": {"user": 1}}, "a.b": 9},  # bad_timestamp
    {"meta": {"host": "h", "time": 1e300}, "stats": {"cpu": {"user": 1}}, "a.b": 9},        # out of range
    {"meta": {"host": "h", "time": "nan"}, "stats": {"cpu": {"user": 1}}, "a.b": 9},        # NaN time
    {"meta": {"host": "h", "time": 8}, "stats": {"cpu": {"user": True}}, "a.b": 9},         # boolean feature
    {"meta": {"host": "h", "time": 8}, "stats": {"cpu": {"user": "inf"}}, "a.b": 9},        # non-finite
    {"meta": {"host": "h", "time": "2024-03-01T12:00:00Z"}, "stats": {"cpu": {"user": 1}}, "a.b": 9},
]


def _outcomes_daemon(cfg, records):
    import orjson
    from kafka.consumer.fetcher import ConsumerRecord

    from rnnstream.daemon.decode import decode_batch

    out = []
    for i, r in enumerate(records):   # one by one: the batch fast paths must agree with the general path
        value = orjson.dumps(r)
        rec = ConsumerRecord("t", 0, 0, i, 0, 0, None, value, [], None, -1, len(value), -1)
        d = decode_batch([rec], cfg)
        out.append(d.rejects[0].reason if d.rejects else (d.entities[0], d.x[0].tolist(), float(d.ts[0])))
    return out


def _outcomes_replay(cfg, records, tmp_path):
    import csv
    import json

    from rnnstream.replay import replay

    src, dst = tmp_path / "in.jsonl", tmp_path / "out.csv"
    src.write_text("".join(json.dumps(r) + "\n" for r in records))
    replay(cfg, src, dst, show_progress=False)
    out = []
    with dst.open(newline="") as fh:
        for row in csv.DictReader(fh):
            if row["rejected"]:
                out.append(row["rejected"])
            else:
                t = datetime.fromisoformat(row["timestamp"]).timestamp()
                out.append((row["entity"], [float(row["stats.cpu.user"]), float(row["a.b"])], t))
    return out


@pytest.mark.parametrize("unit", ["s", "iso"])
def test_replay_and_daemon_parse_the_same_records_the_same_way(tmp_path, unit):
    from rnnstream.config import load_config

    cfg = load_config(AGREE_CFG.format(unit=unit)).detectors[0]
    daemon = _outcomes_daemon(cfg, AGREE_RECORDS)
    assert _outcomes_replay(cfg, AGREE_RECORDS, tmp_path) == daemon
    if unit == "s":
        assert daemon[:2] == [("web1", [0.25, 7.0], 5.0), ("17", [1.0, 8.0], 6.0)]
        assert daemon[2:] == ["missing_field", "missing_field", "wrong_type", "bad_timestamp", "bad_timestamp",
                              "bad_timestamp", "wrong_type", "non_finite_value", "bad_timestamp"]
    else:
        assert daemon[-1] == ("h", [1.0, 9.0], datetime(2024, 3, 1, 12, tzinfo=timezone.utc).timestamp())
