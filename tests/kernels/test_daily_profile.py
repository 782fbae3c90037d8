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
