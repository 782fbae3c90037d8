"""A versioned, checksummed file of named numpy arrays plus JSON metadata. No pickle.

Layout (little-endian)::

    b"RNNSTATE" | u32 format version | u64 header length | header (UTF-8 JSON) | padding to 64
    | array bytes, each at a 64-byte aligned offset | u32 CRC-32C of every byte before it

The header lists each array's name, dtype, shape and offset, and carries the caller's metadata.
Strings (entity names) are stored as one UTF-8 byte array plus int64 offsets (``encode_strings``).
``write_state_file`` writes atomically: temporary file, fsync, rename, fsync of the directory.
"""

from __future__ import annotations

import json
import os
import struct
from pathlib import Path
from typing import Any, Mapping

import crc32c
import numpy as np

from ..errors import StateFormatError, StateVersionError

MAGIC = b"RNNSTATE"
VERSION = 3
"""3: history rings are kept for a sample of entities only, in a pool beside the slot arrays
(``state.slots``, ``pool.*`` arrays and the ``pool_row`` field). 2: the per-entity history ring keeps
event times instead of calendar inputs (``kernels.ring``). Older versions are refused: version 2 has
a ring per entity, version 1 lost its event times."""
ALIGN = 64
_PREFIX = struct.Struct("<8sIQ")
_ALLOWED_KINDS = "biuf"  # bool, signed, unsigned, float: nothing that would need pickle


def encode_strings(strings: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """UTF-8 bytes of all strings concatenated, and the end offset of each."""
    encoded = [s.encode("utf-8") for s in strings]
    ends = np.cumsum([len(b) for b in encoded], dtype=np.int64)
    return np.frombuffer(b"".join(encoded), dtype=np.uint8).copy(), ends


def decode_strings(data: np.ndarray, ends: np.ndarray) -> list[str]:
    raw = data.tobytes()
    starts = np.concatenate(([0], ends[:-1])) if len(ends) else ends
    return [raw[a:b].decode("utf-8") for a, b in zip(starts.tolist(), ends.tolist())]


def _pad(n: int) -> int:
    return (-n) % ALIGN


def to_bytes(arrays: Mapping[str, np.ndarray], meta: Mapping[str, Any]) -> bytes:
    """Serialise ``arrays`` and ``meta`` (JSON-able) into the file format."""
    body = b"".join(to_parts(arrays, meta))
    return body + struct.pack("<I", crc32c.crc32c(body))


def to_parts(arrays: Mapping[str, np.ndarray], meta: Mapping[str, Any]) -> list[bytes]:
    """``to_bytes`` without its checksum, in pieces: each array copied once, nothing joined (what
    must happen while the arrays hold still; ``write_parts_atomically`` does the rest)."""
    entries, offset = [], 0
    for name, arr in arrays.items():
        arr = np.asarray(arr)
        if arr.dtype.kind not in _ALLOWED_KINDS:
            raise TypeError(f"array {name!r} has dtype {arr.dtype}, not a plain numeric type")
        entries.append({"name": name, "dtype": arr.dtype.newbyteorder("<").str,
                        "shape": list(arr.shape), "offset": offset, "nbytes": int(arr.nbytes)})
        offset += arr.nbytes + _pad(arr.nbytes)
    header = json.dumps({"meta": dict(meta), "arrays": entries}, separators=(",", ":")).encode()
    head = _PREFIX.pack(MAGIC, VERSION, len(header)) + header
    parts = [head, b"\0" * _pad(len(head))]
    for (name, arr), entry in zip(arrays.items(), entries):
        data = np.ascontiguousarray(arr, dtype=np.dtype(entry["dtype"])).tobytes()
        parts += [data, b"\0" * _pad(len(data))]
    return parts


def from_bytes(buf: bytes, source: str = "<bytes>") -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Parse the file format; raise StateFormatError naming ``source`` on any defect."""
    if len(buf) < _PREFIX.size + 4:
        raise StateFormatError(f"{source}: truncated ({len(buf)} bytes)")
    magic, version, header_len = _PREFIX.unpack_from(buf)
    if magic != MAGIC:
        raise StateFormatError(f"{source}: not an rnnstream state file (magic {magic!r})")
    if version != VERSION:
        hint = (" (written by an older rnnstream, whose per-entity history rings this build does not read: "
                "start the state afresh, or restore it with the build that wrote it)"
                if version < VERSION else "")
        raise StateVersionError(f"{source}: format version {version}, this build reads {VERSION}{hint}")
    body, (stored,) = buf[:-4], struct.unpack("<I", buf[-4:])
    if crc32c.crc32c(body) != stored:
        raise StateFormatError(f"{source}: checksum mismatch (corrupt or truncated)")
    try:
        header = json.loads(body[_PREFIX.size:_PREFIX.size + header_len])
    except ValueError as exc:
        raise StateFormatError(f"{source}: unreadable header: {exc}") from exc
    start = _PREFIX.size + header_len
    start += _pad(start)
    arrays = {}
    for e in header["arrays"]:
        a, b = start + e["offset"], start + e["offset"] + e["nbytes"]
        if b > len(body):
            raise StateFormatError(f"{source}: array {e['name']!r} runs past the end of the file")
        arrays[e["name"]] = np.frombuffer(body[a:b], dtype=np.dtype(e["dtype"])).reshape(e["shape"]).copy()
    return arrays, header["meta"]


def write_state_file(path: str | os.PathLike, arrays: Mapping[str, np.ndarray], meta: Mapping[str, Any]) -> None:
    """Write atomically: a reader sees the old file or the new one, never a mix, even after a crash."""
    write_parts_atomically(path, to_parts(arrays, meta))


def write_parts_atomically(path: str | os.PathLike, parts: list[bytes]) -> None:
    """Write ``to_parts``' output and its checksum (the bytes ``to_bytes`` gives) as
    ``write_state_file`` does."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    crc = 0
    for part in parts:
        crc = crc32c.crc32c(part, crc)
    try:
        # 1. Write the whole file under a temporary name and make its bytes durable.
        with open(tmp, "wb") as fh:
            fh.writelines(parts)
            fh.write(struct.pack("<I", crc))
            fh.flush()
            os.fsync(fh.fileno())
        # 2. Atomically replace the target name.
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)  # a failed write (disk full...) must not leave its debris behind
        raise
    # 3. Make the rename itself durable.
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def read_state_file(path: str | os.PathLike) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    try:
        buf = Path(path).read_bytes()
    except OSError as exc:
        raise StateFormatError(f"{path}: cannot read: {exc}") from exc
    return from_bytes(buf, str(path))
