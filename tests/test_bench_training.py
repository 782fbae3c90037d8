"""benchmarks/bench_training.py's arithmetic: training's cost from paired rounds without and with it."""

from __future__ import annotations

import gc
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
import bench_training  # noqa: E402


def test_the_cost_is_the_median_of_each_rounds_extra_time_over_its_own_time_without_training():
    # Round 2 ran on a machine twice as loaded: its ratio is still 2, and one outlier round (ratio 9)
    # does not move the median.
    got = bench_training.overhead([1.0, 2.0, 1.0], [3.0, 6.0, 10.0])
    assert got.ratio == pytest.approx(2.0)
    assert (got.off, got.on) == (1.0, 6.0)
    assert got.cost == pytest.approx(2.0)   # the median round's cost, in seconds


def test_a_cost_below_the_scoring_time_is_a_fraction_and_a_saving_is_negative():
    assert bench_training.overhead([0.5], [0.55]).ratio == pytest.approx(0.1)
    assert bench_training.overhead([1.0, 1.0], [0.9, 0.9]).ratio == pytest.approx(-0.1)


@pytest.mark.parametrize("off, on", [([], []), ([1.0], [1.0, 2.0]), ([0.0], [1.0])])
def test_unpaired_or_empty_rounds_are_refused(off, on):
    with pytest.raises(ValueError):
        bench_training.overhead(off, on)


def test_the_steady_state_cost_is_per_fit_and_per_scored_event_whatever_the_rounds_length():
    # 2 fits a round costing 0.1 s each over 1,000 events scored at 1 ms each; one fit every 500 events
    # in the steady state: 0.1 s against 0.5 s of scoring = 20% (round 2, twice as loaded, gives 10%
    # a fit: the median is taken per round).
    got = bench_training.fit_cost([1.0, 2.0, 1.0], [1.2, 2.2, 1.2], [2, 2, 2], 1000, 500)
    assert got.per_fit == pytest.approx(0.1)
    assert got.per_event == pytest.approx(1e-3)
    assert got.share == pytest.approx(0.2)
    # the same rounds with a fit every 5,000 events in the steady state: 2%
    assert bench_training.fit_cost([1.0], [1.2], [2], 1000, 5000).share == pytest.approx(0.02)


@pytest.mark.parametrize("fits", [[2, 3, 2], [0, 0, 0], [2, 2]])
def test_rounds_with_different_or_no_fits_are_refused(fits):
    with pytest.raises(ValueError):
        bench_training.fit_cost([1.0, 1.0, 1.0], [1.2, 1.2, 1.2], fits, 1000, 500)


def test_the_gc_clock_counts_only_the_collections_inside_timed_runs():
    clock = bench_training.GCClock()
    try:
        bench_training.settled()   # outside a timed run: not counted
        assert (clock.collections, clock.seconds) == (0, 0.0)
        clock.running = True
        gc.collect()
        clock.running = False
        assert clock.collections == 1 and clock.seconds >= 0.0
        gc.collect()
        assert clock.collections == 1
    finally:
        gc.callbacks.remove(clock._callback)


def test_each_round_replays_twice_with_and_twice_without_training_in_mirrored_orders():
    for r in range(4):
        order = bench_training.round_order(r)
        assert sorted(order) == [False, False, True, True]
        assert order == order[::-1]   # mirrored: a steady drift through the round weighs on both alike
        assert bench_training.round_order(r + 1) == tuple(not x for x in order)
    assert bench_training.round_order(0) == (False, True, True, False)
    assert bench_training.round_order(1) == (True, False, False, True)
