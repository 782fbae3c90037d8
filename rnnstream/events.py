"""Turning raw records (JSON objects, CSV rows) into the columns a detector takes.

Shared by replay and the daemon's decoder, so that a field path or a timestamp unit means the same
thing in both.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from .errors import InputRejected

_SCALE = {"s": 1.0, "ms": 1e-3, "us": 1e-6, "ns": 1e-9}
_MISSING = object()


def get_path(obj: Any, path: str) -> Any:
    """``obj["a"]["b"]`` for ``"a.b"``; a key that itself contains dots is found before descending."""
    if isinstance(obj, dict) and path in obj:
        return obj[path]
    cur = obj
    for part in path.split("."):
        if not isinstance(cur, dict):
            return _MISSING
        cur = cur.get(part, _MISSING)
        if cur is _MISSING:
            return _MISSING
    return cur


def field(obj: Any, path: str) -> Any:
    """The value at ``path``; InputRejected('missing_field') if absent."""
    value = get_path(obj, path)
    if value is _MISSING or value is None:
        raise InputRejected("missing_field", f"field {path!r} is missing")
    return value


def number(value: Any, path: str) -> float:
    """A JSON number (or numeric string) as float; InputRejected('wrong_type') otherwise."""
    if isinstance(value, bool):
        raise InputRejected("wrong_type", f"field {path!r} is a boolean, expected a number")
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            pass
    raise InputRejected("wrong_type", f"field {path!r} is {type(value).__name__} {value!r:.40}, expected a number")


def to_seconds(value: Any, unit: str, path: str) -> float:
    """An event time as epoch seconds: a number in ``unit``, or ISO-8601 text (naive means UTC)."""
    if unit == "iso":
        if not isinstance(value, str):
            raise InputRejected("wrong_type", f"field {path!r} is {type(value).__name__}, expected ISO-8601 text")
        try:
            dt = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            raise InputRejected("bad_timestamp", f"field {path!r}: {value!r:.40} is not ISO-8601") from None
        if dt.tzinfo is None:
            dt = dt.replace(tzinfo=timezone.utc)
        return dt.timestamp()
    return number(value, path) * _SCALE[unit]
