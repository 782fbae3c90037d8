"""The daily profile end to end through a Detector: inputs, state layout, and the profile cap."""

from __future__ import annotations

import numpy as np
import pytest

from rnnstream.config import load_config
from rnnstream.detector import Detector

YAML = """
detectors:
  - name: test
    topics: [t]
    entity: host
    timestamp: {{field: ts}}
    features: [a]
    idle_ttl_seconds: 1.0e+12
    time_features: {{daily_profile_bins: {bins}}}
    model: {{type: naive}}
    training: {{enabled: false}}
    scoring: {{warmup_events: 50, short_window: 1, long_window: 1000, suppress_events: 0, threshold: 0.5,
              profile_cap: {cap}}}
"""

STEP = 300.0


def _detector(bins: int, cap: float) -> Detector:
    return Detector(load_config(YAML.format(bins=bins, cap=cap)).detectors[0])


def _square_wave(days: int, seed: int = 0):
    """5-minute samples: 20 at night, 80 from 09:00 to 17:00, small noise; one spike at 03:00 on the last day."""
    rng = np.random.default_rng(seed)
    ts = 1.7e9 - (1.7e9 % 86400.0) + np.arange(0.0, days * 86400.0, STEP)
    tod = ts % 86400.0
    x = np.where((tod >= 9 * 3600.0) & (tod < 17 * 3600.0), 80.0, 20.0) + 0.5 * rng.standard_normal(ts.size)
    spike = int((days - 1) * 86400.0 / STEP + 3 * 3600.0 / STEP)
    x[spike] += 30.0
    return ts, x[:, None], spike


def test_profile_adds_two_inputs_per_feature_and_room_in_the_statistics_row():
    plain, prof = _detector(0, 0.0), _detector(24, 0.0)
    assert prof.model.n_inputs == plain.model.n_inputs + 2
    # 24 float32 means packed 2 to a number, then the 24 bin counts packed 13 to a number
    assert prof.state["sc"].shape[1] == plain.state["sc"].shape[1] + 12 + 2


def test_bin_counts_saturate_where_they_no_longer_matter():
    """A bin's count is kept up to 15 (exact: only whether it reaches 1 / profile_rate = 10 matters)."""
    from rnnstream.kernels.calibrate import PROFILE_COUNT_MAX, profile_means_size, profile_offset
    from rnnstream.kernels.features import profile_count
    from rnnstream.kernels.params import PROFILE_RATE

    assert 1.0 / PROFILE_RATE < PROFILE_COUNT_MAX
    det = _detector(24, 0.0)
    ts, x, _ = _square_wave(days=3)
    det.process(["h"] * 300, x[:300], ts[:300])    # 300 five-minute events: 12 per hourly bin, 24 in 00:00-01:00
    counts_at = profile_offset(1) + profile_means_size(1, 24)
    got = [profile_count.py_func(det.state["sc"], 0, counts_at, b) for b in range(24)]
    assert got == [15.0] + [12.0] * 23
    det.process(["h"] * (len(ts) - 300), x[300:], ts[300:])
    assert [profile_count.py_func(det.state["sc"], 0, counts_at, b) for b in range(24)] == [15.0] * 24


def _late_jumps(ts):
    tod = ts % 86400.0
    return np.flatnonzero(np.isin(tod, [9 * 3600.0, 17 * 3600.0]) & (ts - ts[0] >= 3 * 86400.0))


def test_profile_cap_quiets_the_daily_jumps_but_not_a_spike():
    """The persistence model misses every daily jump; without the cap the jumps outscore a real spike."""
    ts, x, spike = _square_wave(days=6)
    jumps = _late_jumps(ts)
    later = np.arange(len(ts)) >= 3 * 86400.0 / STEP
    plain = _detector(24, 0.0).process(["h"] * len(ts), x, ts)
    capped = _detector(24, 0.75).process(["h"] * len(ts), x, ts)
    assert plain.score[jumps].max() > plain.score[spike]
    assert capped.score[jumps].max() < 0.1
    others = later.copy()
    others[spike] = False
    assert capped.score[spike] > 2 * capped.score[others].max()
    # The model's own error is reported unchanged: the cap only changes what is scored.
    np.testing.assert_array_equal(plain.err, capped.err)


def test_outputs_do_not_depend_on_batching():
    ts, x, _ = _square_wave(days=3, seed=1)
    whole = _detector(24, 0.75).process(["h"] * len(ts), x, ts)
    ref = np.column_stack([whole.score, whole.flag, whole.err]).copy()
    det = _detector(24, 0.75)
    parts = []
    for lo in range(0, len(ts), 97):
        r = det.process(["h"] * len(ts[lo:lo + 97]), x[lo:lo + 97], ts[lo:lo + 97])
        parts.append(np.column_stack([r.score, r.flag, r.err]).copy())
    np.testing.assert_array_equal(np.concatenate(parts), ref)


def _flipping_days(days: int, seed: int = 0):
    """Hourly samples of a square wave (80 from 09:00 to 17:00, 20 otherwise) whose phase flips every
    day: each hour's history says the opposite of today half the time, so the time of day explains
    nothing (its mean sits between the levels)."""
    rng = np.random.default_rng(seed)
    ts = 1.7e9 - (1.7e9 % 86400.0) + np.arange(0.0, days * 86400.0, 3600.0)
    tod, day = ts % 86400.0, (ts - ts[0]) // 86400.0
    office = (tod >= 9 * 3600.0) & (tod < 17 * 3600.0)
    x = np.where(office == (day % 2 == 0), 80.0, 20.0) + 0.5 * rng.standard_normal(ts.size)
    return ts, x[:, None]


def _profile_distance(det: Detector) -> float:
    from rnnstream.kernels.calibrate import FS_PROFILE_ERR, SC_FEAT

    return float(det.state["sc"][0, SC_FEAT + FS_PROFILE_ERR])


def test_the_profile_distance_tells_a_daily_rhythm_from_a_series_the_time_of_day_does_not_explain():
    from rnnstream.kernels.calibrate import PROFILE_GATE

    daily, other = _detector(24, 0.75), _detector(24, 0.75)
    ts, x, _ = _square_wave(days=6)
    daily.process(["h"] * len(ts), x, ts)
    ts, x = _flipping_days(days=30)
    other.process(["h"] * len(ts), x, ts)
    assert _profile_distance(daily) < 0.3 < PROFILE_GATE < _profile_distance(other)


def test_the_cap_holds_only_where_the_profile_explains_the_series():
    """The rule itself, on the reference (which the kernel matches bit for bit): with the running distance
    at most PROFILE_GATE the error is clipped to cap x the value's distance from its profile; above it the
    error is scored as it is. Either way the distance takes in this value (memory PROFILE_ERR_EVENTS)."""
    from rnnstream.kernels import reference as ref
    from rnnstream.kernels.calibrate import PROFILE_ERR0, PROFILE_ERR_EVENTS, PROFILE_GATE
    from rnnstream.kernels.params import kernel_params

    kp = kernel_params(True, True, True, 24, profile_cap=0.75)
    u = np.array([2.0, 0.1, 0.2, 0.3, 0.4, 0.5, 1.5, 1.6], dtype=np.float32)   # value 2.0, its profile 1.5

    def entity(distance: float, in_bin: float) -> ref.EntityRef:
        ent = ref.EntityRef(1, len(u), 8, 24)
        ent.sc.feats = [ref.FeatureStats(profile_err=distance)]
        ent.in_bin = in_bin
        return ent

    assert PROFILE_ERR0 < PROFILE_GATE    # a young entity's profile is trusted until it is seen to fail
    for before, want in [(PROFILE_GATE, 0.375), (0.1, 0.375), (PROFILE_GATE + 1e-9, 3.0)]:
        ent = entity(before, 10.0)
        assert ref.capped_errors(ent, np.array([3.0]), u, kp)[0] == want
        assert ent.sc.feats[0].profile_err == before + (0.5 - before) / PROFILE_ERR_EVENTS
    ent = entity(0.1, 3.0)   # the bin is in its running-mean phase: no cap yet, the distance learns already
    assert ref.capped_errors(ent, np.array([3.0]), u, kp)[0] == 3.0
    assert ent.sc.feats[0].profile_err == 0.1 + 0.4 / PROFILE_ERR_EVENTS
