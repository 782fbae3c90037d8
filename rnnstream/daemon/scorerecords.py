"""Every score record of one poll's events, encoded at once into Kafka record batches (the per-record
scores format, ``outputs.scores_format: record``).

``Outputs`` built each event's score record with a dict, an ``orjson.dumps`` and a key ``encode``, and
``rawbatch.encode_records`` framed them one by one: about 3 µs an event of Python on the poll loop's
thread, half the cost of scoring. ``encode`` does the same work per poll in a few C calls and one
compiled loop: ``orjson`` formats each column once (the floats and the JSON-escaped entity strings,
exactly as it formats them one record at a time), and the kernel copies the pieces into the records
part of a v2 record batch per output partition (``rawbatch``), splitting a partition's records into
batches of at most a given size. The bytes are the same as those of the record-at-a-time path
(``tests/daemon/test_scorerecords.py`` checks it against ``orjson.dumps`` of the dict).

Value of event ``k`` (``outputs`` module docstring)::

    {"event_id":"<detector>:<topic>:<partition>:<offset>","detector":..,"entity":..,"event_time":..,
     "score":..,"error":..,"anomaly":..,"suppressed":..,"anomalous":..,"model_version":..}

key: the entity's UTF-8 bytes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import orjson

from ..kernels.jit import device, kernel
from .rawbatch import HEADER

ROOM = HEADER.size            # bytes left free in front of each batch for its header (rawbatch.RecordBatchV2)

# The value's constant pieces, in order; the variable parts go between them.
_FIELDS = ('","detector":', ',"entity":', ',"event_time":', ',"score":', ',"error":', ',"anomaly":',
           ',"suppressed":', ',"anomalous":', ',"model_version":', "}")
_TRUE = len(_FIELDS)          # the pieces 'true' and 'false' follow the fields' (``pieces_for``)


@kernel
def _json_strings(buf, n, start, end):
    """Bounds of the ``n`` strings (quotes included) of the JSON array of strings in ``buf``."""
    pos = 1                                    # after '['
    for k in range(n):
        start[k] = pos                         # the opening quote
        pos += 1
        while buf[pos] != 34:                  # '"'
            pos += 2 if buf[pos] == 92 else 1  # '\\' escapes the next byte
        pos += 1
        end[k] = pos
        pos += 1                               # ',' or ']'


@kernel
def _json_numbers(buf, n, start, end):
    """Bounds of the ``n`` numbers (or nulls) of the JSON array ``buf`` (no commas inside them)."""
    pos = 1
    for k in range(n):
        start[k] = pos
        while buf[pos] != 44 and buf[pos] != 93:   # ',' ']'
            pos += 1
        end[k] = pos
        pos += 1


@device
def _varint_size(v):
    z = v << 1                                 # zig-zag of a non-negative int
    size = 1
    while z > 0x7F:
        z >>= 7
        size += 1
    return size


@device
def _put_varint(out, pos, v):
    z = v << 1
    while z > 0x7F:
        out[pos] = (z & 0x7F) | 0x80
        z >>= 7
        pos += 1
    out[pos] = z
    return pos + 1


@device
def _digits(v):
    size = 1 if v >= 0 else 2
    v = abs(v)
    while v >= 10:
        v //= 10
        size += 1
    return size


@device
def _put_int(out, pos, v):
    if v < 0:
        out[pos] = 45
        pos += 1
        v = -v
    size = _digits(v)
    for i in range(size - 1, -1, -1):
        out[pos + i] = 48 + v % 10
        v //= 10
    return pos + size


@device
def _put(out, pos, src, lo, hi):
    for i in range(lo, hi):
        out[pos] = src[i]
        pos += 1
    return pos


@kernel
def _plan(order, part, budget, first, room_left, ts_delta, offsets, versions, bools, piece_at,
          key_at, ent_lo, ent_hi, col_lo, col_hi, room, key_len, value_len, rec_len, batches):
    """Sizes of the records of events ``order[0], order[1], ..`` (grouped by ``part``, in event order
    within a partition) and their batches of at most ``budget`` bytes of records each (a record alone
    may be larger), each preceded by ``room`` free bytes: per batch, start of its records, end,
    record count, partition, index in ``order`` of its first event, offset delta of its first record,
    timestamp delta of its records. A partition ``p`` with ``first[p] > 0`` starts with records to
    append to an open batch of ``first[p]`` records: offset deltas from ``first[p]``, timestamp delta
    ``ts_delta[p]``, at most ``room_left[p]`` bytes (a new batch if its first record does not fit).
    Returns (batches, total bytes)."""
    n = len(order)
    fixed = piece_at[len(piece_at) - 1]        # every constant piece, less 'true'/'false'
    for k in range(n):
        e = order[k]
        v = fixed + _digits(offsets[e]) + _digits(versions[e]) + (ent_hi[e] - ent_lo[e])
        for c in range(3):
            v += col_hi[c, e] - col_lo[c, e]
        for c in range(bools.shape[0]):
            v += 4 if bools[c, e] else 5
        value_len[k] = v
        key_len[k] = key_at[e + 1] - key_at[e]
    nb = 0
    used = 0
    j = 0
    td = 0
    limit = budget
    total = 0
    for k in range(n):
        p = part[order[k]]
        fresh = nb == 0 or p != batches[nb - 1, 3]
        if fresh:
            j = first[p]
            td = ts_delta[p] if j > 0 else 0
            limit = room_left[p] if j > 0 else budget
        tail = _varint_size(key_len[k]) + key_len[k] + _varint_size(value_len[k]) + value_len[k]
        body = 2 + _varint_size(td) + _varint_size(j) + tail
        size = body + _varint_size(body)
        if fresh or used + size > limit:
            if not fresh or (j > 0 and size > limit):     # a new batch: deltas from 0, the whole budget
                j = 0
                td = 0
                limit = budget
                body = 3 + 1 + tail
                size = body + _varint_size(body)
            total += room
            batches[nb, 0] = total
            batches[nb, 2] = 0
            batches[nb, 3] = p
            batches[nb, 4] = k
            batches[nb, 5] = j
            batches[nb, 6] = td
            nb += 1
            used = 0
        rec_len[k] = body
        used += size
        total += size
        batches[nb - 1, 1] = total
        batches[nb - 1, 2] += 1
        j += 1
    return nb, total


@kernel
def _write(out, order, batches, nb, offsets, versions, bools, pieces, piece_at, keys, key_at,
           ents, ent_lo, ent_hi, cols, col_lo, col_hi, key_len, value_len, rec_len):
    """The records ``_plan`` sized, into ``out``."""
    b = 0
    pos = 0
    j = 0
    td = 0
    for k in range(len(order)):
        if b < nb and k == batches[b, 4]:
            pos = batches[b, 0]
            j = batches[b, 5]
            td = batches[b, 6]
            b += 1
        e = order[k]
        pos = _put_varint(out, pos, rec_len[k])
        out[pos] = 0                           # attributes
        pos = _put_varint(out, pos + 1, td)    # timestamp delta
        pos = _put_varint(out, pos, j)         # offset delta
        pos = _put_varint(out, pos, key_len[k])
        pos = _put(out, pos, keys, key_at[e], key_at[e + 1])
        pos = _put_varint(out, pos, value_len[k])
        pos = _put(out, pos, pieces, piece_at[0], piece_at[1])          # {"event_id":"<prefix>
        pos = _put_int(out, pos, offsets[e])
        pos = _put(out, pos, pieces, piece_at[1], piece_at[2])          # ","detector":..,"entity":
        pos = _put(out, pos, ents, ent_lo[e], ent_hi[e])
        for c in range(3):                                              # event_time, score, error
            pos = _put(out, pos, pieces, piece_at[2 + c], piece_at[3 + c])
            pos = _put(out, pos, cols, col_lo[c, e], col_hi[c, e])
        for c in range(bools.shape[0]):                                 # ,"anomaly": ,"suppressed": ,"anomalous":
            t = _TRUE if bools[c, e] else _TRUE + 1                     # true / false
            pos = _put(out, pos, pieces, piece_at[5 + c], piece_at[6 + c])
            pos = _put(out, pos, pieces, piece_at[t], piece_at[t + 1])
        pos = _put(out, pos, pieces, piece_at[8], piece_at[9])          # ,"model_version":
        pos = _put_int(out, pos, versions[e])
        pos = _put(out, pos, pieces, piece_at[9], piece_at[10])         # }
        out[pos] = 0                                                    # no headers
        pos += 1
        j += 1


@dataclass(slots=True)
class Batch:
    """One encoded batch: ``buffer`` is ``ROOM`` free bytes then its records; ``events`` the positions
    (in the caller's event order) of its records' events, in record order. ``first`` > 0: records to
    append to an open batch of that many records (``encode``'s ``first``), timestamp delta ``ts_delta``."""

    partition: int
    count: int
    buffer: bytearray
    events: np.ndarray
    first: int = 0
    ts_delta: int = 0


def pieces_for(detector: str, topic: str, partition: int) -> tuple[np.ndarray, np.ndarray]:
    """The constant parts of one source partition's score values, for ``encode``."""
    prefix = orjson.dumps(f"{detector}:{topic}:{partition}:")[:-1]          # '"det:topic:p:' less the quote
    parts = [b'{"event_id":' + prefix, b'","detector":' + orjson.dumps(detector) + b',"entity":']
    parts += [p.encode() for p in _FIELDS[2:]] + [b"true", b"false"]
    at = np.zeros(len(parts) + 1, np.int64)
    np.cumsum([len(p) for p in parts], out=at[1:])
    table = np.frombuffer(b"".join(parts), np.uint8)
    return table, np.append(at, at[_TRUE])  # last: the length of every piece but true/false


def encode(pieces: tuple[np.ndarray, np.ndarray], entities: Sequence[str], offsets: np.ndarray,
           event_time: np.ndarray, score: np.ndarray, error: np.ndarray, anomaly: np.ndarray,
           suppressed: np.ndarray, anomalous: np.ndarray, versions: np.ndarray, partitions: np.ndarray,
           budget: int, open_batches: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None) -> list[Batch]:
    """The score records of events ``0..n-1`` (event ``k``: ``entities[k]``, ``offsets[k]``, ...), in
    record batches per output partition (``partitions[k]``), each at most ``budget`` bytes of records
    unless one record alone is larger. ``open_batches``: per output partition, the record count, room
    left (bytes) and timestamp delta of an open batch to append to (``RawPublisher.open_batches``; a
    count of 0: none); a partition's first batch then continues that batch's offset deltas
    (``Batch.first``). Raises ``UnicodeEncodeError`` for an entity that is not valid UTF-8 text (as
    ``str.encode`` does)."""
    n = len(entities)
    joined = "".join(entities)
    keys_bytes = joined.encode()
    key_at = np.zeros(n + 1, np.int64)
    if len(keys_bytes) == len(joined):         # ASCII: a character is a byte
        np.cumsum(np.fromiter(map(len, entities), np.int64, n), out=key_at[1:])
    else:
        np.cumsum([len(e.encode()) for e in entities], out=key_at[1:])
    keys = np.frombuffer(keys_bytes, np.uint8)
    ents = np.frombuffer(orjson.dumps(entities), np.uint8)
    ent_lo, ent_hi = np.empty(n, np.int64), np.empty(n, np.int64)
    _json_strings(ents, n, ent_lo, ent_hi)
    texts = [orjson.dumps(np.ascontiguousarray(c, dtype=np.float64), option=orjson.OPT_SERIALIZE_NUMPY)
             for c in (event_time, score, error)]
    cols = np.frombuffer(b"".join(texts), np.uint8)
    col_lo, col_hi = np.empty((3, n), np.int64), np.empty((3, n), np.int64)
    base = 0
    for c, text in enumerate(texts):
        _json_numbers(cols[base:base + len(text)], n, col_lo[c], col_hi[c])
        col_lo[c] += base
        col_hi[c] += base
        base += len(text)
    partitions = np.ascontiguousarray(partitions, dtype=np.int64)
    order = np.argsort(partitions, kind="stable")
    table, at = pieces
    offsets = np.ascontiguousarray(offsets, dtype=np.int64)
    versions = np.ascontiguousarray(versions, dtype=np.int64)
    bools = np.empty((3, n), np.bool_)       # the fields anomaly, suppressed, anomalous, in order
    bools[0], bools[1], bools[2] = anomaly, suppressed, anomalous
    key_len, value_len, rec_len = np.empty(n, np.int64), np.empty(n, np.int64), np.empty(n, np.int64)
    table_b = np.empty((n, 7), np.int64)
    if open_batches is None:
        zeros = np.zeros(int(partitions.max(initial=0)) + 1, np.int64)
        open_batches = (zeros, zeros, zeros)
    first, room_left, ts_delta = (np.ascontiguousarray(a, dtype=np.int64) for a in open_batches)
    nb, total = _plan(order, partitions, int(budget), first, room_left, ts_delta, offsets, versions, bools,
                      at, key_at, ent_lo, ent_hi, col_lo, col_hi, ROOM, key_len, value_len, rec_len,
                      table_b)
    out = np.empty(total, np.uint8)
    _write(out, order, table_b, nb, offsets, versions, bools, table, at, keys, key_at, ents, ent_lo,
           ent_hi, cols, col_lo, col_hi, key_len, value_len, rec_len)
    table_b = table_b[:nb]
    batches = []
    ends = list(table_b[1:, 4]) + [n]
    for (start, end, count, partition, at_k, delta, td), last in zip(table_b.tolist(), ends):
        batches.append(Batch(int(partition), int(count), bytearray(out[start - ROOM:end]), order[at_k:last],
                             int(delta), int(td)))
    return batches


def warm() -> None:
    """Compile (or load from numba's cache) the kernels, before the daemon takes partitions."""
    pieces = pieces_for("warm", "warm", 0)
    one = np.zeros(2)
    encode(pieces, ["a", "b"], np.arange(2), one, one, one, one > 0, one > 0, one > 0, np.zeros(2, np.int64),
           np.arange(2), 1 << 16)
