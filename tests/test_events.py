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
    assert err.value.reason == "wrong_type"
    with pytest.raises(InputRejected) as err:
        to_seconds("soon", "ms", "ts")
    assert err.value.reason == "wrong_type"
