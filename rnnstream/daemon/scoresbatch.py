"""The batched scores format (``outputs.scores_format: batch``): one Kafka record value holding the
scores of one poll's events of one source partition. ``encode`` writes version 2; ``decode`` reads
versions 1 and 2 (what a consumer needs; the README's "Outputs" documents both).

Version 2: a JSON header, spaces up to a multiple of 8 bytes, a newline, then the numeric columns in
binary, little-endian (``n`` = ``count``)::

    {"schema":"rnnstream.scores","version":2,"detector":"cpu","instance_id":"host-a:4711",
     "source":{"topic":"metrics.hosts","partition":3,"first_offset":81723,"last_offset":81726},
     "count":3,"offset_runs":[[81723,2],[81726,1]],"model_version_runs":[[12,3]],
     "entity":["web-17","web-3","web-17"]}   \\n
    event_time: n float64 | score: n float64 | error: n float64 | flags: n uint8

* ``offset_runs``: the events' source offsets as runs of consecutive offsets ``[first, length]``, in
  order (offsets without a score, refused events, make a new run);
* ``model_version_runs``: the events' model versions as runs ``[version, length]``;
* ``flags``: bit 0 (1) the event is an anomaly, bit 1 (2) it is suppressed, bit 2 (4) it is anomalous
  (its own score reached the threshold; 0 in values written before 2026-12-01); the other bits are 0.

The header is JSON written by ``orjson`` (no raw newline in it: the first ``\\n`` ends it); the
columns start at a multiple of 8 bytes from the value's start. The numbers are the scorer's float64
values, exactly (version 1 printed them as JSON numbers, which read back to the same floats). Event
``k``'s values depend on that event alone, never on how events were batched.

Version 1 was the same facts as one JSON object with a column per field (``offset``, ``entity``,
``event_time``, ``score``, ``error``, ``anomaly``, ``suppressed``, ``model_version``): 73 bytes an event
in the daemon's benchmark against 38 for version 2, and its float formatting cost the daemon's loop
about 0.15 µs an event (``encode``: about 0.02).
"""

from __future__ import annotations

from typing import Any, Iterator, Sequence

import numpy as np
import orjson

SCHEMA = "rnnstream.scores"
VERSION = 2
VERSIONS = (1, 2)                  # what ``decode`` reads
FLAG_ANOMALY = 1
FLAG_SUPPRESSED = 2
FLAG_ANOMALOUS = 4
COLUMNS = (("event_time", "<f8"), ("score", "<f8"), ("error", "<f8"), ("flags", "u1"))
BYTES_PER_EVENT = sum(np.dtype(t).itemsize for _, t in COLUMNS)
ALIGN = 8


def _runs(values: np.ndarray, step: int) -> list[list[int]]:
    """``values`` as runs ``[first, length]`` of values that grow by ``step`` (1: consecutive offsets,
    0: equal versions)."""
    n = len(values)
    if n == 0:
        return []
    first = int(values[0])
    if int(values[-1]) == first + step * (n - 1) and (step or (values == first).all()):
        return [[first, n]]            # one run (offsets increase: the ends say it), the usual case
    cut = np.flatnonzero(np.diff(values) != step) + 1
    starts = np.concatenate(([0], cut))
    lengths = np.diff(np.concatenate((starts, [n])))
    return np.stack((values[starts], lengths), axis=1).tolist()


def encode(detector: str, instance_id: str, topic: str, partition: int, offsets: np.ndarray,
           entities: Sequence[str], event_time: np.ndarray, score: np.ndarray, error: np.ndarray,
           anomaly: np.ndarray, suppressed: np.ndarray, anomalous: np.ndarray, model_version: np.ndarray) -> bytes:
    """The version 2 value of ``n`` events (``offsets`` increasing; ``anomaly``, ``suppressed``,
    ``anomalous``: bools).
    Raises ``orjson.JSONEncodeError`` (a ``TypeError``) for an entity that is not valid Unicode
    (a lone surrogate), as version 1's encoding did."""
    offsets = np.asarray(offsets, dtype=np.int64)
    n = len(offsets)
    header = orjson.dumps({
        "schema": SCHEMA, "version": VERSION, "detector": detector, "instance_id": instance_id,
        "source": {"topic": topic, "partition": int(partition),
                   "first_offset": int(offsets[0]) if n else None, "last_offset": int(offsets[-1]) if n else None},
        "count": n,
        "offset_runs": _runs(offsets, 1),
        "model_version_runs": _runs(np.asarray(model_version, dtype=np.int64), 0),
        "entity": entities if type(entities) is list else list(entities),
    })
    flags = np.asarray(anomaly, dtype=bool).view(np.uint8) * np.uint8(FLAG_ANOMALY)
    flags |= np.asarray(suppressed, dtype=bool).view(np.uint8) * np.uint8(FLAG_SUPPRESSED)
    flags |= np.asarray(anomalous, dtype=bool).view(np.uint8) * np.uint8(FLAG_ANOMALOUS)
    pad = -(len(header) + 1) % ALIGN
    return b"".join((header, b" " * pad, b"\n", np.asarray(event_time, dtype="<f8").tobytes(),
                     np.asarray(score, dtype="<f8").tobytes(), np.asarray(error, dtype="<f8").tobytes(),
                     flags.tobytes()))


def _expand(runs: Any, step: int, what: str) -> np.ndarray:
    if not isinstance(runs, list) or not all(isinstance(r, list) and len(r) == 2 for r in runs):
        raise ValueError(f"{what}: not a list of [first, length] pairs")
    if not runs:
        return np.zeros(0, np.int64)
    firsts, lengths = np.asarray(runs, dtype=np.int64).T
    if (lengths < 1).any():
        raise ValueError(f"{what}: a run of length < 1")
    at = np.repeat(firsts, lengths)
    if step:
        starts = np.repeat(np.cumsum(lengths) - lengths, lengths)
        at += np.arange(len(at)) - starts
    return at


def decode(value: bytes | bytearray | memoryview) -> dict[str, Any]:
    """A batched scores value (version 1 or 2) as a dict: ``schema``, ``version``, ``detector``,
    ``instance_id``, ``source``, ``count``, and the columns ``offset``, ``model_version`` (int64 arrays),
    ``entity`` (a list of str), ``event_time``, ``score``, ``error`` (float64 arrays), ``anomaly``,
    ``suppressed`` (bool arrays) and, in version 2, ``anomalous`` (a bool array; version 1 had none). Raises ``ValueError`` for a value of another schema or version, or
    whose parts disagree (lengths, counts)."""
    data = bytes(value)
    end = data.find(b"\n")              # version 2's header ends at its first newline
    try:
        head = orjson.loads(data if end < 0 else data[:end])
    except orjson.JSONDecodeError as exc:
        raise ValueError(f"not a batched scores value: {exc}") from None
    body = None if end < 0 else memoryview(data)[end + 1:]
    if not isinstance(head, dict) or head.get("schema") != SCHEMA:
        raise ValueError(f"not a batched scores value (schema {head.get('schema') if isinstance(head, dict) else None!r})")
    version = head.get("version")
    if version not in VERSIONS:
        raise ValueError(f"batched scores version {version!r}: this reader knows {list(VERSIONS)}")
    n = head["count"]
    out = {k: head[k] for k in ("schema", "version", "detector", "instance_id", "source", "count")}
    if version == 1:
        if body is not None:
            raise ValueError("version 1 has no binary columns")
        out["offset"] = np.asarray(head["offset"], dtype=np.int64)
        out["entity"] = head["entity"]
        for name in ("event_time", "score", "error"):
            out[name] = np.asarray(head[name], dtype=np.float64)
        out["anomaly"] = np.asarray(head["anomaly"], dtype=bool)
        out["suppressed"] = np.asarray(head["suppressed"], dtype=bool)
        out["model_version"] = np.asarray(head["model_version"], dtype=np.int64)
    else:
        if body is None or len(body) != n * BYTES_PER_EVENT:
            raise ValueError(f"version 2 with {n} events needs {n * BYTES_PER_EVENT} bytes of columns, "
                             f"has {0 if body is None else len(body)}")
        out["offset"] = _expand(head["offset_runs"], 1, "offset_runs")
        out["entity"] = head["entity"]
        out["model_version"] = _expand(head["model_version_runs"], 0, "model_version_runs")
        pos = 0
        for name, dtype in COLUMNS:
            col = np.frombuffer(body, dtype, n, pos)
            pos += col.nbytes
            out[name] = col.astype(np.dtype(dtype).newbyteorder("="))
        flags = out.pop("flags")
        out["anomaly"] = (flags & FLAG_ANOMALY) != 0
        out["suppressed"] = (flags & FLAG_SUPPRESSED) != 0
        out["anomalous"] = (flags & FLAG_ANOMALOUS) != 0
    for name in ("offset", "entity", "event_time", "score", "error", "anomaly", "suppressed", "anomalous",
                 "model_version"):
        if name in out and len(out[name]) != n:
            raise ValueError(f"{name}: {len(out[name])} values for a count of {n}")
    return out


def events(value: bytes | bytearray | memoryview) -> Iterator[dict[str, Any]]:
    """Each event of a batched scores value as the per-record format's value (``scores_format:
    record``) of the same event: ``event_id``, ``detector``, ``entity``, ``event_time``, ``score``,
    ``error``, ``anomaly``, ``suppressed``, ``anomalous`` (not in version 1's), ``model_version``."""
    b = decode(value)
    prefix = f"{b['detector']}:{b['source']['topic']}:{b['source']['partition']}:"
    n = b["count"]
    anomalous = b["anomalous"].tolist() if "anomalous" in b else [None] * n
    cols = (b["offset"].tolist(), b["entity"], b["event_time"].tolist(), b["score"].tolist(), b["error"].tolist(),
            b["anomaly"].tolist(), b["suppressed"].tolist(), anomalous, b["model_version"].tolist())
    for offset, entity, t, score, error, anomaly, suppressed, anom, version in zip(*cols):
        event = {"event_id": f"{prefix}{offset}", "detector": b["detector"], "entity": entity, "event_time": t,
                 "score": score, "error": error, "anomaly": anomaly, "suppressed": suppressed}
        if anom is not None:
            event["anomalous"] = anom
        event["model_version"] = version
        yield event
