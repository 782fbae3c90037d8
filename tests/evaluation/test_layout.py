"""The generic labelled-corpus layout round-trips and refuses malformed files by name."""

from __future__ import annotations

import json

import numpy as np
import pytest

from rnnstream.evaluation.layout import (CorpusDataError, Stream, Window, check_windows, list_streams,
                                         load_windows, read_stream, write_stream, write_windows)


def _stream() -> Stream:
    rng = np.random.default_rng(0)
    n = 50
    entity = rng.integers(0, 3, n)
    entity[:3] = [0, 1, 2]              # codes in first-seen order, as read_stream gives them
    values = rng.normal(size=(n, 2)) * [1.0, 1e6]
    values[5, 0] = 0.1 + 0.2            # needs the shortest round-trip repr
    return Stream("web/one.csv", ["host-c", "host-a", "host-b"], entity.astype(np.int64),
                  1_767_225_600 + 60 * np.arange(n, dtype=np.int64), values, ["cpu", "bytes.out"])


def test_stream_round_trips_exactly(tmp_path):
    s = _stream()
    write_stream(tmp_path, s)
    back = read_stream(tmp_path, s.key)
    assert back.entity_names == s.entity_names and back.features == s.features
    np.testing.assert_array_equal(back.entity, s.entity)
    np.testing.assert_array_equal(back.timestamps, s.timestamps)
    np.testing.assert_array_equal(back.values, s.values)
    assert list_streams(tmp_path) == ["web/one.csv"]
    assert back.category == "web"
    assert (tmp_path / "data" / "web" / "one.csv").read_text().splitlines()[1].startswith("host-c,2026-01-01 00:00:00,")


def test_windows_round_trip_with_type_and_features(tmp_path):
    wins = {"web/one.csv": [Window("host-a", 1_767_225_660, 1_767_225_780, "mean", ("cpu", "bytes.out")),
                            Window("host-b", 1_767_225_600, 1_767_225_600, "extremum", ("cpu",))]}
    write_windows(tmp_path, wins)
    raw = json.loads((tmp_path / "labels" / "windows.json").read_text())
    assert raw["web/one.csv"][0] == {"entity": "host-a", "start": "2026-01-01 00:01:00",
                                     "end": "2026-01-01 00:03:00", "type": "mean", "features": ["cpu", "bytes.out"]}
    assert load_windows(tmp_path) == wins
    check_windows(_stream(), wins["web/one.csv"], "here")


def test_bad_windows_are_refused_by_name(tmp_path):
    s = _stream()
    with pytest.raises(CorpusDataError, match="unknown entity 'nope'"):
        check_windows(s, [Window("nope", 0, 1, "mean", ("cpu",))], "here")
    with pytest.raises(CorpusDataError, match="unknown features"):
        check_windows(s, [Window("host-a", 0, 1, "mean", ("mem",))], "here")
    with pytest.raises(CorpusDataError, match="overlap"):
        check_windows(s, [Window("host-a", 0, 10, "mean", ("cpu",)), Window("host-a", 5, 20, "trend", ("cpu",))], "here")
    (tmp_path / "labels").mkdir()
    (tmp_path / "labels" / "windows.json").write_text('{"a/b.csv": [{"entity": "x", "start": "2026-01-01 00:00:00"}]}')
    with pytest.raises(CorpusDataError, match=r"window 0 needs entity, start, end, type and features"):
        load_windows(tmp_path)


def test_a_stream_without_features_is_refused(tmp_path):
    (tmp_path / "data" / "c").mkdir(parents=True)
    (tmp_path / "data" / "c" / "s.csv").write_text("entity,timestamp\nx,2026-01-01 00:00:00\n")
    with pytest.raises(CorpusDataError, match="no feature column"):
        read_stream(tmp_path, "c/s.csv")
