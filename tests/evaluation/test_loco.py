"""Leave-one-category-out on a hand-built case: the candidate best without the held-out category is chosen,
and the held-out category is scored at the threshold chosen on the others (never re-optimised on it)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from rnnstream.errors import RnnstreamError
from rnnstream.evaluation import loco
from rnnstream.nab import scorer

N = 100
TS = np.arange(N) * 60
WINDOW = [(50 * 60, 59 * 60)]            # rows 50-59; probation is rows 0-14


def _events(score: np.ndarray, key: str) -> scorer.FileEvents:
    return scorer.file_events(TS, score, WINDOW, key)


def _perfect() -> np.ndarray:
    s = np.zeros(N)
    s[50] = 1.0
    return s


def _noisy_miss() -> np.ndarray:
    s = np.zeros(N)
    s[20:41] = 1.0                        # 21 detections before the window (weight -1 x 0.11 each), none in it
    return s


@pytest.fixture()
def events():
    """X: perfect on a and b, 21 false positives and a miss on c. Y: silent on a and b, perfect on c."""
    return {
        "X": {"a/1.csv": _events(_perfect(), "a"), "b/1.csv": _events(_perfect(), "b"),
              "c/1.csv": _events(_noisy_miss(), "c")},
        "Y": {"a/1.csv": _events(np.zeros(N), "a"), "b/1.csv": _events(np.zeros(N), "b"),
              "c/1.csv": _events(_perfect(), "c")},
    }


def test_each_category_gets_the_candidate_best_on_the_others(events):
    held = {h.category: h for h in loco.leave_one_out(events)}
    # without c, X is perfect (100) and Y finds nothing (0): X is chosen and c is scored with it
    assert held["c"].chosen == "X" and held["c"].train_score == pytest.approx(100.0)
    assert held["c"].threshold == 1.0
    # c at X's threshold: a miss (-1) and 21 false positives (-2.31), normalised over c's one window.
    # Re-optimised on c itself it would be 0 (detect nothing): the threshold was not re-chosen.
    assert held["c"].score == pytest.approx(100 * (-1 - 2.31 + 1) / 2)
    # without a: X on b + c is best detecting nothing (score 0); Y gets b wrong and c right (50): Y
    for cat in ("a", "b"):
        assert held[cat].chosen == "Y" and held[cat].train_score == pytest.approx(50.0)
        assert held[cat].score == pytest.approx(0.0)


def test_the_loco_figure_normalises_the_held_out_raw_scores_over_all_windows(events):
    held = loco.leave_one_out(events)
    assert loco.overall(held) == pytest.approx(100 * ((-1 - 1 - 3.31) + 3) / 6)
    text = loco.format_loco(held, {"X": 1.0, "Y": 2.0})
    assert "| c | X | 1.0000 | 100.00 | -115.50 |" in text


def test_a_tie_goes_to_the_earlier_candidate():
    same = {"a/1.csv": _events(_perfect(), "a"), "b/1.csv": _events(_perfect(), "b")}
    held = loco.leave_one_out({"first": same, "second": dict(same)})
    assert {h.chosen for h in held} == {"first"}


def test_score_at_threshold_agrees_with_the_optimiser_at_its_own_threshold(events):
    best = scorer.score_events(events["X"])
    for profile, r in best.items():
        at = scorer.score_at_threshold(events["X"], r["threshold"])[profile]
        assert math.isclose(at["score"], r["score"]) and (at["tp"], at["fp"], at["fn"]) == (r["tp"], r["fp"], r["fn"])


def test_grids_and_single_categories_are_refused_by_name(tmp_path):
    (tmp_path / "g.yaml").write_text("candidates: [a, b]\n")
    with pytest.raises(RnnstreamError, match="candidates: expected a mapping"):
        loco.load_grid(tmp_path / "g.yaml")
    with pytest.raises(RnnstreamError, match="at least two categories"):
        loco.leave_one_out({"X": {"a/1.csv": _events(_perfect(), "a")}})
