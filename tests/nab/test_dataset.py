"""The NAB loader reads the shared subset and rejects malformed input with a named location."""

import json

import numpy as np
import pytest

from rnnstream.nab import dataset
from rnnstream.nab.dataset import NabDataError
from rnnstream.nab.weights import window_rows


def test_lists_the_41_files_sorted_with_relative_keys(nab_root):
    keys = dataset.list_files(nab_root)
    assert len(keys) == 41
    assert keys == sorted(keys)
    assert "realKnownCause/nyc_taxi.csv" in keys
    assert set(keys) == set(dataset.load_windows(nab_root))


def test_load_series_matches_the_csv(nab_root):
    ts, values = dataset.load_series(nab_root, "realKnownCause/nyc_taxi.csv")
    assert ts.dtype == np.dtype("datetime64[s]") and values.dtype == np.float64
    assert len(ts) == len(values) == 10320
    assert ts[0] == np.datetime64("2014-07-01 00:00:00") and values[0] == 10844.0
    assert ts[1] - ts[0] == np.timedelta64(1800, "s") and values[1] == 8127.0


def test_every_window_lands_on_rows_after_probation(nab_root):
    windows = dataset.load_windows(nab_root)
    assert sum(len(w) for w in windows.values()) == 69
    for key in dataset.list_files(nab_root):
        ts, _ = dataset.load_series(nab_root, key)
        rows = window_rows(ts, windows[key], key)
        for (a, b), (start, end) in zip(rows, windows[key]):
            assert ts[a] == start and ts[b] == end and a <= b


def test_sub_second_window_bound_is_rejected(tmp_path):
    (tmp_path / "labels").mkdir()
    (tmp_path / "labels" / "combined_windows.json").write_text(
        json.dumps({"c/f.csv": [["2014-02-19 10:50:00.500000", "2014-02-20 03:30:00.000000"]]}))
    with pytest.raises(NabDataError, match="sub-second"):
        dataset.load_windows(tmp_path)


def test_bad_value_names_file_and_row(tmp_path):
    (tmp_path / "data" / "c").mkdir(parents=True)
    (tmp_path / "data" / "c" / "f.csv").write_text("timestamp,value\n2020-01-01 00:00:00,1\n2020-01-01 00:05:00,x\n")
    with pytest.raises(NabDataError, match=r"f\.csv: data row 2: 'x'"):
        dataset.load_series(tmp_path, "c/f.csv")


def test_missing_data_dir_is_reported(tmp_path):
    with pytest.raises(NabDataError, match="data directory not found"):
        dataset.list_files(tmp_path)
