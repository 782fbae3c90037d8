"""Kafka records of one partition -> the columns ``Detector.process`` takes, plus the rejects.

``decode_batch`` reads each record's value as one JSON object and pulls the entity, the event time
and the features out of it with replay's parser (``rnnstream.events.RecordParser``, the one rule):
dotted paths (a key that itself contains dots is found first), numbers or numeric strings as
features, timestamps in s/ms/us/ns or ISO-8601 text (naive means UTC).

Speed: a batch of clean events with top-level fields is decoded in one msgspec call into typed
columns (~0.5 µs an event); any other batch goes record by record (a fast path per record, then
the general path, which names the reason a record is refused).

Guaranteed: every input record ends up in exactly one of ``raw`` (accepted, input order kept) and
``rejects`` (with one of ``REASONS``); an accepted record has a non-empty entity, finite features and
a finite event time that ``datetime`` can represent. Not checked here: event-time order (the detector
handles late events) and duplicates.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Sequence

import msgspec
import numpy as np
import orjson

from ..errors import InputRejected
from ..events import TS_MAX as _TS_MAX
from ..events import TS_MIN as _TS_MIN
from ..events import SCALE as _SCALE
from ..events import RecordParser

REASONS = ("oversize", "undecodable", "not_object", "missing_field", "wrong_type", "bad_timestamp",
           "non_finite_value")
"""Every reject reason decode_batch emits (the ``reason`` label of rnnstream_events_rejected_total)."""



@dataclass(frozen=True)
class Reject:
    """A record refused by the decoder: ``reason`` is a metric label, ``detail`` is for an operator."""

    record: Any
    reason: str
    detail: str


@dataclass
class Decoded:
    """Accepted events of one batch as columns (row k came from ``raw[k]``), and the rejects."""

    entities: list[str]
    x: np.ndarray            # (n, F) float64
    ts: np.ndarray           # (n,) float64 epoch seconds
    offsets: np.ndarray      # (n,) int64
    raw: list[Any]
    rejects: list[Reject] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.raw)


def _where(record: Any) -> str:
    return f"{record.topic}[{record.partition}]@{record.offset}"


class _Decoder(RecordParser):
    """The per-detector settings of decode_batch, resolved once per batch: the shared record parser
    (``rnnstream.events.RecordParser``) plus the Kafka-only steps (size limit, JSON, key, timestamp)."""

    def __init__(self, cfg: Any):
        super().__init__(cfg)
        self.max_bytes = int(cfg.max_message_bytes)

    def one(self, record: Any) -> tuple[str, list[float], float]:
        value = record.value
        if value is None:
            raise InputRejected("undecodable", "record has no value (tombstone)")
        if len(value) > self.max_bytes:
            raise InputRejected("oversize", f"value is {len(value)} bytes, max_message_bytes is {self.max_bytes}")
        try:
            obj = orjson.loads(value)
        except orjson.JSONDecodeError as exc:
            raise InputRejected("undecodable", f"value is not UTF-8 JSON: {exc}") from None
        if not isinstance(obj, dict):
            raise InputRejected("not_object", f"value is a JSON {type(obj).__name__}, expected an object")
        return self.parse(obj, key=record.key, record_ts_ms=record.timestamp)


def _top_level_paths(dec: _Decoder) -> list[str] | None:
    """The entity, time and feature field names when all are plain top-level JSON fields of the value
    and the time is numeric (the layout the fast paths handle); else None."""
    paths = [dec.entity_field, dec.ts_field, *dec.features]
    if dec.from_key or dec.from_record or dec.ts_unit == "iso" or None in paths:
        return None
    return paths


def _fast_path(dec: _Decoder):
    """A decoder for the common layout (top-level fields, numeric time), or None when it does not apply.

    It accepts a record only when every check of the general path would pass with the same values;
    any other record is handed to the general path, which names the reason it is refused.
    """
    if _top_level_paths(dec) is None:
        return None
    ent, tsf, feats = dec.entity_field, dec.ts_field, dec.features
    scale = _SCALE[dec.ts_unit]
    max_bytes, loads, isfinite = dec.max_bytes, orjson.loads, math.isfinite
    num = (int, float)

    def one(record: Any):
        value = record.value
        if value is None or len(value) > max_bytes:
            return None
        try:
            obj = loads(value)
            entity, t = obj[ent], obj[tsf]
            xs = [obj[f] for f in feats]
        except (orjson.JSONDecodeError, TypeError, KeyError):
            return None
        if type(entity) is not str or not entity or type(t) not in num:
            return None
        seconds = t * scale
        if not _TS_MIN <= seconds <= _TS_MAX:
            return None
        for v in xs:
            if type(v) not in num or not isfinite(v):
                return None
        return entity, [float(v) for v in xs], seconds

    return one


@lru_cache(maxsize=64)
def _batch_decoder(entity: str, ts_field: str, features: tuple[str, ...]) -> msgspec.json.Decoder:
    """A msgspec decoder of a JSON array of events with exactly these top-level fields (others ignored)."""
    names = [entity, ts_field, *features]
    event = msgspec.defstruct("Event", [(f"f{i}", str if i == 0 else float) for i in range(len(names))],
                              rename={f"f{i}": name for i, name in enumerate(names)})
    return msgspec.json.Decoder(list[event])


def _decode_columns(dec: _Decoder, records: Sequence[Any]) -> Decoded | None:
    """The whole batch in one msgspec call, when every record is a clean event; else None.

    msgspec checks types strictly (no booleans or strings for numbers), so a batch it accepts is one
    the general path would accept record by record, with the same values.
    """
    paths = _top_level_paths(dec)
    if paths is None or len(set(paths)) != len(paths) or not records:
        return None
    values = [r.value for r in records]
    if None in values or max(map(len, values)) > dec.max_bytes:
        return None
    try:
        events = _batch_decoder(paths[0], paths[1], tuple(paths[2:])).decode(b"[" + b",".join(values) + b"]")
    except msgspec.DecodeError:
        return None
    entities = [e.f0 for e in events]
    if not all(entities):
        return None
    ts = np.array([e.f1 for e in events], dtype=np.float64) * _SCALE[dec.ts_unit]
    cols = [np.array([getattr(e, f"f{k + 2}") for e in events], dtype=np.float64) for k in range(len(dec.features))]
    x = np.column_stack(cols) if cols else np.zeros((len(events), 0))
    if not (np.isfinite(x).all() and ((ts >= _TS_MIN) & (ts <= _TS_MAX)).all()):
        return None
    offsets = np.fromiter((r.offset for r in records), dtype=np.int64, count=len(records))
    return Decoded(entities, x, ts, offsets, list(records), [])


def decode_batch(records: Sequence[Any], cfg: Any) -> Decoded:
    """Decode ``records`` (kafka-python ConsumerRecords of ONE partition, offset order) for detector ``cfg``."""
    dec = _Decoder(cfg)
    columns = _decode_columns(dec, records)
    if columns is not None:
        return columns
    fast = _fast_path(dec)
    entities: list[str] = []
    rows: list[list[float]] = []
    times: list[float] = []
    offsets: list[int] = []
    raw: list[Any] = []
    rejects: list[Reject] = []
    for record in records:
        got = fast(record) if fast is not None else None
        if got is None:
            try:
                got = dec.one(record)
            except InputRejected as exc:
                rejects.append(Reject(record, exc.reason, f"{_where(record)}: {exc.detail}"))
                continue
        entity, x, t = got
        entities.append(entity)
        rows.append(x)
        times.append(t)
        offsets.append(record.offset)
        raw.append(record)
    n_features = len(dec.features)
    x_arr = np.array(rows, dtype=np.float64).reshape(len(rows), n_features)
    return Decoded(entities, x_arr, np.array(times, dtype=np.float64), np.array(offsets, dtype=np.int64),
                   raw, rejects)
