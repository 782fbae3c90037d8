"""Turning one record (a JSON object, a CSV row) into an event: entity, features and event time.

``RecordParser`` is the one parsing rule of replay and the daemon's decoder (``rnnstream.daemon.decode``
wraps it with the Kafka-only steps: size limit, JSON decoding, record key and timestamp), so a field
path, a timestamp unit or a refusal reason means the same thing in both.

Rules (guaranteed; tests/test_events.py checks replay and the daemon against each other):

* paths are dotted (``stats.cpu.user``); a key that itself contains dots is found before descending;
* the entity is a non-empty scalar (a number names an entity through ``str``), else ``missing_field``
  (absent, null or empty) or ``wrong_type`` (an object or a list);
* a feature is a JSON number or numeric text (CSV cells are text); booleans and other text are
  ``wrong_type``; NaN/inf are ``non_finite_value``;
* the event time is a number in ``timestamp.unit`` (s, ms, us, ns; numeric text too) or ISO-8601 text
  with unit ``iso`` (naive means UTC); anything else, and any time outside years 1..9999, is
  ``bad_timestamp``, with a hint when the text looks like the other kind (``timestamp.unit: iso``).
"""

from __future__ import annotations

import math
import re
from datetime import datetime, timezone
from typing import Any

from .errors import InputRejected

SCALE = {"s": 1.0, "ms": 1e-3, "us": 1e-6, "ns": 1e-9}
"""Seconds per unit of a numeric timestamp (``timestamp.unit``)."""
_MISSING = object()
# Event times datetime can turn into ISO-8601 text (years 1..9999), in epoch seconds.
TS_MIN, TS_MAX = -62135596800.0, 253402300799.0
_ISO_LIKE = re.compile(r"^\s*\d{4}-\d{2}-\d{2}")


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


def has_field(obj: Any, path: str) -> bool:
    """True when ``path`` names a value (possibly null or empty) in ``obj``."""
    return get_path(obj, path) is not _MISSING


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
    """An event time as epoch seconds: a number in ``unit``, or ISO-8601 text (naive means UTC).

    Every refusal is ``bad_timestamp``; the detail says what was found and what would fit.
    """
    if unit == "iso":
        if not isinstance(value, str) or isinstance(value, bool):
            hint = " (a number: set timestamp.unit to s, ms, us or ns)" if isinstance(value, (int, float)) else ""
            raise InputRejected("bad_timestamp", f"field {path!r} is {type(value).__name__} {value!r:.40}, "
                                                 f"expected ISO-8601 text{hint}")
        try:
            dt = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            raise InputRejected("bad_timestamp", f"field {path!r}: {value!r:.40} is not ISO-8601") from None
        if dt.tzinfo is None:
            dt = dt.replace(tzinfo=timezone.utc)
        return dt.timestamp()
    try:
        return number(value, path) * SCALE[unit]
    except InputRejected:
        hint = (" (ISO-8601 text: set timestamp.unit: iso)" if isinstance(value, str) and _ISO_LIKE.match(value)
                else "")
        raise InputRejected("bad_timestamp", f"field {path!r} is {type(value).__name__} {value!r:.40}, expected "
                                             f"a number of {unit}{hint}") from None


def check_time(seconds: float, where: str, unit: str) -> float:
    """``seconds`` if it is a finite time in years 1..9999, else InputRejected('bad_timestamp')."""
    if not (TS_MIN <= seconds <= TS_MAX):  # also false for NaN
        raise InputRejected("bad_timestamp", f"{where!r} is {seconds!r} s since 1970, outside years 1..9999 "
                                             f"(unit {unit!r})")
    return seconds


class RecordParser:
    """The entity, features and event time of one record, for one detector's config.

    ``parse(obj, key=..., record_ts_ms=...)``: ``obj`` is a decoded JSON object or a CSV row (dict);
    ``key`` (str or bytes) is the Kafka record key, used with ``entity.from_key``; ``record_ts_ms`` the
    record timestamp in milliseconds, used with ``timestamp.from_record``. ``default_entity``, when
    set, names the entity of records whose entity field is absent (replay of a one-entity file).
    Raises InputRejected with one of the reasons listed in the module docstring (plus
    ``undecodable`` for a key that is not UTF-8).
    """

    def __init__(self, cfg: Any, default_entity: str | None = None):
        self.features = tuple(cfg.features)
        self.entity_field = cfg.entity.field
        self.from_key = bool(cfg.entity.from_key)
        self.ts_field = cfg.timestamp.field
        self.ts_unit = cfg.timestamp.unit
        self.from_record = bool(cfg.timestamp.from_record)
        self.default_entity = default_entity

    def entity(self, obj: dict, key: Any = None) -> str:
        if self.from_key:
            if key is None:
                raise InputRejected("missing_field", "record has no key (entity.from_key is set)")
            if isinstance(key, (bytes, bytearray, memoryview)):
                try:
                    key = bytes(key).decode("utf-8")
                except UnicodeDecodeError:
                    raise InputRejected("undecodable", "record key is not UTF-8 (entity.from_key is set)") from None
            entity, path = str(key), "<record key>"
        else:
            path = self.entity_field
            if self.default_entity is not None and not has_field(obj, path):
                return self.default_entity
            value = field(obj, path)
            if isinstance(value, (dict, list)):
                raise InputRejected("wrong_type", f"field {path!r} is {type(value).__name__}, expected a scalar entity name")
            entity = value if isinstance(value, str) else str(value)
        if not entity:
            raise InputRejected("missing_field", f"entity {path!r} is empty")
        return entity

    def timestamp(self, obj: dict, record_ts_ms: Any = None) -> float:
        if self.from_record:
            t = record_ts_ms
            if t is None or isinstance(t, bool) or not isinstance(t, (int, float)) or t < 0:
                raise InputRejected("bad_timestamp", f"record has no timestamp ({t!r}) (timestamp.from_record is set)")
            return check_time(t / 1000.0, "<record timestamp>", "ms")
        path = self.ts_field
        return check_time(to_seconds(field(obj, path), self.ts_unit, path), path, self.ts_unit)

    def feature_values(self, obj: dict) -> list[float]:
        out = []
        for path in self.features:
            v = field(obj, path)
            value = v if type(v) is float else number(v, path)
            if not math.isfinite(value):
                raise InputRejected("non_finite_value", f"field {path!r} is {value!r}")
            out.append(value)
        return out

    def parse(self, obj: dict, *, key: Any = None, record_ts_ms: Any = None) -> tuple[str, list[float], float]:
        """``(entity, features, epoch seconds)`` of one record; InputRejected otherwise."""
        return self.entity(obj, key), self.feature_values(obj), self.timestamp(obj, record_ts_ms)
