"""scoring.error_floor: the calibrated error is log(error + floor); 0 keeps the raw error."""

from __future__ import annotations

import numpy as np

from rnnstream.kernels.calibrate import FLAG_ANOMALY, sc_size, score_event
from rnnstream.kernels.params import kernel_params


def _scores(errors: np.ndarray, floor: float) -> tuple[np.ndarray, np.ndarray]:
    kp = kernel_params(warmup_events=20, short_window=1, long_window=500, suppress_events=0,
                       threshold=0.5, error_floor=floor)
    sc = np.zeros((1, sc_size(1)))
    x = np.zeros(1)
    scores, flags = np.zeros(len(errors)), np.zeros(len(errors), dtype=np.int64)
    for n, e in enumerate(errors):
        scores[n], flags[n] = score_event(np.array([e]), x, n, float(n), 0, sc, kp)
    return scores, flags


def test_errors_far_below_the_floor_count_as_equally_small():
    rng = np.random.default_rng(0)
    errors = 1e-4 * (1.0 + 0.1 * rng.random(600))
    errors[500] = 1e-2                       # 100 times the usual error, yet 30 times below the floor
    raw, _ = _scores(errors, 0.0)
    logged, _ = _scores(errors, 0.3)
    assert raw[500] > 0.9
    assert logged[500] < 0.1


def test_a_large_error_in_a_quiet_stream_still_scores_high():
    rng = np.random.default_rng(1)
    errors = np.abs(0.05 * rng.standard_normal(600))
    errors[500] = 5.0
    scores, flags = _scores(errors, 0.3)
    assert scores[500] > 0.9 and flags[500] & FLAG_ANOMALY
    assert np.all((scores >= 0.0) & (scores <= 1.0))


def test_heavy_tailed_errors_raise_fewer_alarms_on_the_log_scale():
    rng = np.random.default_rng(2)
    errors = np.abs(rng.standard_t(df=2, size=5000))   # heavy tails, no anomaly
    _, raw_flags = _scores(errors, 0.0)
    _, log_flags = _scores(errors, 0.3)
    n_raw = int(np.count_nonzero(raw_flags & FLAG_ANOMALY))
    n_log = int(np.count_nonzero(log_flags & FLAG_ANOMALY))
    assert n_raw > 0 and n_log < n_raw / 2, (n_raw, n_log)
