"""Result files round-trip through the scorer's reader; the table shows the three profiles."""

import numpy as np
import pytest

from rnnstream.nab import report, scorer
from rnnstream.nab.dataset import NabDataError


def test_result_file_layout_and_round_trip(tmp_path):
    ts = np.array(["2014-07-01 00:00:00", "2014-07-01 00:30:00"], dtype="datetime64[s]")
    values = np.array([10844.0, 0.1 + 0.2])
    scores = np.array([0.0, 1.0 / 3.0])
    path = report.write_result(tmp_path / "rnn", "rnn", "realKnownCause/nyc_taxi.csv", ts, values, scores)
    assert path == tmp_path / "rnn" / "realKnownCause" / "rnn_nyc_taxi.csv"
    lines = path.read_text().splitlines()
    assert lines[0] == "timestamp,value,anomaly_score"
    assert lines[1].startswith("2014-07-01 00:00:00,10844.0,0.0")
    back = scorer.read_results_dir(tmp_path / "rnn")
    bts, bscores = back["realKnownCause/nyc_taxi.csv"]
    assert np.array_equal(bts, ts.astype(np.int64)) and np.array_equal(bscores, scores)


def test_out_of_range_score_is_refused(tmp_path):
    ts = np.array(["2014-07-01 00:00:00"], dtype="datetime64[s]")
    with pytest.raises(NabDataError, match="row 0 is 1.5"):
        report.write_result(tmp_path, "x", "c/f.csv", ts, [1.0], [1.5])


def test_markdown_table_from_scores_and_numbers():
    got = {"standard": {"score": 71.449}, "reward_low_FP_rate": {"score": 65.441}, "reward_low_FN_rate": {"score": 75.652}}
    table = report.format_table({"rnnstream": got, "null": {"standard": 0.0}})
    lines = table.splitlines()
    assert lines[0] == "| detector | standard | reward low FP | reward low FN |"
    assert lines[2] == "| rnnstream | 71.45 | 65.44 | 75.65 |"
    assert lines[3] == "| null | 0.00 | - | - |"
