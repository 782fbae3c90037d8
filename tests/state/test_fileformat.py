"""The checksummed state file format: round trip, every kind of damage, atomic writes."""

from __future__ import annotations

import os
import struct

import numpy as np
import pytest

from rnnstream.errors import StateFormatError
from rnnstream.state import fileformat as ff


def _arrays() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    names, ends = ff.encode_strings(["host-1", "ünïcødé ☃", "", "日本語", "x" * 100])
    return {
        "f32": rng.standard_normal((3, 5)).astype(np.float32),
        "f64": np.array([np.nan, np.inf, -0.0, 1e308]),
        "i64": np.arange(-3, 4, dtype=np.int64),
        "u8": rng.integers(0, 256, (2, 3, 4), dtype=np.uint8),
        "bool": np.array([True, False, True]),
        "big_endian": np.arange(4, dtype=">i4"),
        "scalar": np.array(7, dtype=np.int64),
        "empty": np.zeros((0, 4), dtype=np.float32),
        "names": names,
        "name_ends": ends,
    }


META = {"detector": "hosts", "version": 3, "nested": {"k": [1, 2.5, None]}, "text": "ü"}


def test_round_trip_mixed_dtypes_meta_and_strings():
    arrays = _arrays()
    buf = ff.to_bytes(arrays, META)
    got, meta = ff.from_bytes(buf)
    assert meta == META and list(got) == list(arrays)
    for name, arr in arrays.items():
        assert got[name].shape == arr.shape, name
        np.testing.assert_array_equal(got[name], arr, err_msg=name)
        assert got[name].dtype == arr.dtype.newbyteorder("<"), name
        assert got[name].flags.writeable and got[name].flags.c_contiguous
    assert ff.decode_strings(got["names"], got["name_ends"]) == ["host-1", "ünïcødé ☃", "", "日本語", "x" * 100]


def test_strings_edge_cases():
    data, ends = ff.encode_strings([])
    assert ff.decode_strings(data, ends) == [] and data.dtype == np.uint8 and ends.dtype == np.int64
    data, ends = ff.encode_strings(["", ""])
    assert ff.decode_strings(data, ends) == ["", ""]


def test_arrays_are_aligned():
    buf = ff.to_bytes({"a": np.arange(3, dtype=np.uint8), "b": np.arange(5.0)}, {})
    _, _, header_len = struct.unpack_from("<8sIQ", buf)
    start = 20 + header_len
    start += (-start) % 64
    assert start % 64 == 0
    assert np.frombuffer(buf[start + 64:start + 64 + 40], dtype="<f8").tolist() == [0, 1, 2, 3, 4]


def test_every_flipped_byte_is_detected():
    buf = ff.to_bytes({"a": np.arange(10, dtype=np.int32), "s": ff.encode_strings(["é"])[0]}, {"k": 1})
    for pos in range(len(buf)):
        damaged = bytearray(buf)
        damaged[pos] ^= 0x01
        with pytest.raises(StateFormatError, match="<bytes>"):
            ff.from_bytes(bytes(damaged))


def test_truncation_is_detected():
    buf = ff.to_bytes({"a": np.arange(100, dtype=np.float64)}, {"k": "v"})
    for length in [0, 1, 10, 23, 24, 100, len(buf) // 2, len(buf) - 4, len(buf) - 1]:
        with pytest.raises(StateFormatError):
            ff.from_bytes(buf[:length], "state.bin")


def test_wrong_magic_and_wrong_version():
    buf = ff.to_bytes({"a": np.arange(3)}, {})
    with pytest.raises(StateFormatError, match="not an rnnstream state file"):
        ff.from_bytes(b"PICKLED!" + buf[8:], "f")
    # A well-checksummed file of another format version.
    body = bytearray(buf[:-4])
    struct.pack_into("<I", body, 8, ff.VERSION + 1)
    import crc32c
    other = bytes(body) + struct.pack("<I", crc32c.crc32c(bytes(body)))
    with pytest.raises(StateFormatError, match=f"format version {ff.VERSION + 1}"):
        ff.from_bytes(other, "f")


@pytest.mark.parametrize("bad", [np.array(["a", "b"], dtype=object), np.array(["ab"]), np.array([1 + 2j]),
                                 np.array([(1, 2.0)], dtype=[("a", "i4"), ("b", "f8")])])
def test_non_numeric_dtypes_refused(bad):
    with pytest.raises(TypeError, match="not a plain numeric type"):
        ff.to_bytes({"ok": np.arange(2), "bad": bad}, {})


def test_write_and_read_file(tmp_path):
    path = tmp_path / "state.bin"
    ff.write_state_file(path, _arrays(), META)
    arrays, meta = ff.read_state_file(path)
    assert meta == META and set(arrays) == set(_arrays())
    assert os.listdir(tmp_path) == ["state.bin"]


def test_missing_file_is_a_state_format_error(tmp_path):
    with pytest.raises(StateFormatError, match="cannot read"):
        ff.read_state_file(tmp_path / "nope.bin")


def test_failed_serialisation_keeps_the_old_file(tmp_path):
    path = tmp_path / "state.bin"
    ff.write_state_file(path, {"a": np.arange(3)}, {"gen": 1})
    before = path.read_bytes()
    with pytest.raises(TypeError):
        ff.write_state_file(path, {"a": np.arange(3), "bad": np.array([object()])}, {"gen": 2})
    with pytest.raises(TypeError):
        ff.write_state_file(path, {"a": np.arange(3)}, {"gen": object()})  # meta not JSON-able
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["state.bin"]


@pytest.mark.parametrize("failing", ["fsync", "replace"])
def test_failed_write_keeps_the_old_file_and_leaves_no_temp_file(tmp_path, monkeypatch, failing):
    path = tmp_path / "state.bin"
    ff.write_state_file(path, {"a": np.arange(3)}, {"gen": 1})
    before = path.read_bytes()

    def boom(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(ff.os, failing, boom)
    with pytest.raises(OSError):
        ff.write_state_file(path, {"a": np.arange(5)}, {"gen": 2})
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["state.bin"]


def test_the_file_written_from_parts_is_to_bytes_exactly(tmp_path):
    """``write_state_file`` writes ``to_parts`` piece by piece with a running checksum: the same bytes
    ``to_bytes`` gives in one piece (the background checkpoint relies on the two agreeing)."""
    arrays = {"a": np.arange(7, dtype=np.float32), "b": np.ones((3, 5), dtype=np.int64), "c": np.zeros(0)}
    path = tmp_path / "x.rns"
    ff.write_state_file(path, arrays, {"gen": 3})
    assert path.read_bytes() == ff.to_bytes(arrays, {"gen": 3})


@pytest.mark.parametrize("version", [1, 2])
def test_a_file_of_a_previous_version_is_refused_with_what_to_do(version):
    import crc32c

    body = bytearray(ff.to_bytes({"a": np.arange(3)}, {})[:-4])
    struct.pack_into("<I", body, 8, version)
    old = bytes(body) + struct.pack("<I", crc32c.crc32c(bytes(body)))
    with pytest.raises(StateFormatError,
                       match=f"format version {version}, this build reads 3 .*older rnnstream.*afresh"):
        ff.from_bytes(old, "ckpt-000000000007.rns")
