"""kernels.params: the kernel parameter vector is built from the config schema, and a mismatch fails loudly."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from rnnstream.config.schema import ScoringConfig, TimeFeaturesConfig
from rnnstream.kernels import params as P


def test_every_scoring_and_time_field_lands_in_its_slot():
    scoring = dataclasses.replace(ScoringConfig(), threshold=0.7, scale_floor=0.2, flatline=False, short_window=3)
    kp = P.from_config(TimeFeaturesConfig(log_gap=False, daily_profile_bins=12), scoring, late_tolerance_seconds=5.0)
    assert kp.shape == (P.KP_SIZE,)
    for name, slot in P.SCORING_SLOTS.items():
        assert kp[slot] == float(getattr(scoring, name)), name
    assert (kp[P.KP_GAP], kp[P.KP_PROFILE_BINS], kp[P.KP_LATE]) == (0.0, 12.0, 5.0)
    assert kp[P.KP_PROFILE_RATE] == P.PROFILE_RATE


def test_defaults_come_from_the_schema():
    kp = P.kernel_params()
    defaults = ScoringConfig()
    assert kp[P.KP_SCALE_FLOOR] == defaults.scale_floor and kp[P.KP_NOVELTY] == defaults.novelty_tolerance
    assert kp[P.KP_PROFILE_BINS] == 0.0 and np.isinf(kp[P.KP_LATE])


def test_a_schema_field_without_a_kernel_slot_fails_loudly():
    @dataclasses.dataclass(frozen=True)
    class Scoring(ScoringConfig):
        new_knob: float = 1.0

    with pytest.raises(KeyError, match="new_knob"):
        P.from_config(TimeFeaturesConfig(), Scoring())
    with pytest.raises(TypeError):
        P.kernel_params(error_floor=0.7)   # a removed key is refused, not ignored
