"""kernels.calibrate against kernels.reference bit for bit: the scorer's speed-only changes (a quantity
computed only where it can matter, a constant looked up, a score reused) must not move any output
or statistic by one ulp. Both sides call the same libm functions, so they agree exactly."""

from __future__ import annotations

import numpy as np
import pytest

from rnnstream.kernels import reference as ref
from rnnstream.kernels.calibrate import sc_size, score_event
from rnnstream.kernels.params import kernel_params


@pytest.mark.parametrize("n_features, scoring", [
    (1, {}),                                                       # the defaults
    (3, {}),
    (1, {"short_window": 1, "flatline": False}),                   # one test per feature
    (2, {"short_window": 1}),                                      # two tests per feature
    (3, {"warmup_events": 20, "short_window": 4, "long_window": 60, "suppress_events": 5, "threshold": 0.3,
         "novelty_tolerance": 0.05}),
    (1, {"novelty_gate": 1.0}),                                    # novelty ungated
    (2, {"novelty_record_rate": 0.0, "novelty_gate": 0.5}),        # always gated
])
@pytest.mark.parametrize("walk", [False, True])                    # a walk keeps setting records
def test_kernel_equals_reference_bit_for_bit(n_features, scoring, walk):
    kp = kernel_params(**scoring)
    rng = np.random.default_rng(7 + n_features)
    n_events = 4000
    sc, rsc = np.zeros((1, sc_size(n_features))), ref.ScorerRef()
    kind = np.zeros(n_features, dtype=np.uint8)
    values = np.round(rng.standard_normal((n_events, n_features)), 1)   # rounded: repeats happen
    if walk:
        values = np.cumsum(values, axis=0)
    values[2000:2100] = values[1999]                                     # a stuck stretch
    values[3000] = 50.0                                                  # novelty
    errors = rng.standard_t(3, (n_events, n_features)) * np.where(rng.random((n_events, 1)) < 0.01, 30.0, 1.0)
    errors[rng.random((n_events, n_features)) < 0.02] = 0.0              # a residual of 0 (below MIN_MS)
    errors[2500:2520] += 6.0                                             # a level shift
    # the deviations the errors were normalised with: drifting, and 40 times larger from event 1000 on
    # (the features switched regimes)
    sds = np.exp(np.cumsum(rng.normal(0.0, 0.02, (n_events, n_features)), axis=0)) * np.where(
        np.arange(n_events)[:, None] >= 1000, 40.0, 1.0)
    # the normalised values: a shared daily wave, one feature leaving it for a while (the level test)
    zs = np.sin(np.arange(n_events) / 40.0)[:, None] * np.linspace(1.0, 1.5, n_features) + 0.2 * rng.standard_normal(
        (n_events, n_features))
    zs[3200:3300, 0] *= 3.0
    for n in range(n_events):
        score, flags = score_event(errors[n].copy(), values[n], sds[n], zs[n], n, float(n), 0, sc, kp, kind)
        want = ref.score_event(rsc, errors[n], values[n], n, float(n), kp, sds[n], zs[n])
        assert (score, flags) == (want[0], want[1]), n
        np.testing.assert_array_equal(kind, want[2])
    np.testing.assert_array_equal(sc[0], rsc.as_row(n_features))
