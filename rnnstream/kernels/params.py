"""The kernel parameter vector: one float64 array, so kernels keep one signature as parameters grow.

The values come from the config schema and nowhere else: :func:`from_config` reads every field of
``ScoringConfig`` and ``TimeFeaturesConfig``, and fails loudly (``KeyError``) when a field has no
kernel slot or a kernel slot has no field, so a renamed or added setting cannot be silently dropped.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

# Index of each kernel parameter in the vector built by ``from_config``.
KP_HALFLIFE = 0        # normaliser half-life, in events of the entity
KP_TOD = 1             # 1.0: time-of-day sin/cos features on
KP_DOW = 2             # 1.0: day-of-week sin/cos features on
KP_GAP = 3             # 1.0: log(gap since the entity's previous event) feature on
KP_SHORT = 4           # short window of the sustained-deviation test, in events (1 = off)
KP_LONG = 5            # memory of the per-entity residual statistics, in events
KP_WARMUP = 6          # events of an entity scored 0 before scoring starts
KP_THRESHOLD = 7       # score at or above which an event is an anomaly
KP_SUPPRESS = 8        # events after an anomaly during which the entity raises no weaker one
KP_MIN_GAP = 9         # seconds after an anomaly during which the entity raises no weaker one
KP_ZCLIP = 10          # normalised inputs are clipped to [-zclip, zclip]
KP_NOVELTY = 11        # value novelty: a value beyond the entity's seen range by this share of it scores 1 (0 = off)
KP_SCALE_FLOOR = 12    # smallest residual scale, in series standard deviations
KP_PROFILE_BINS = 13   # daily profile: time-of-day bins (0 = off)
KP_PROFILE_RATE = 14   # daily profile: smallest weight of a bin's newest value in its mean
KP_LATE = 15           # an event older than its entity's previous one by more than this many seconds is late
KP_PROFILE_CAP = 16    # the scored error is at most this multiple of the value's distance from the daily profile (0 = off)
KP_FLATLINE = 17       # 1.0: the stuck-value test is on
KP_BLEND = 18          # memory, in events, of the model-vs-persistence error means that set the blend (0 = off)
KP_NOVELTY_GATE = 19   # value novelty counts only where the feature's calibrated p-value is at most this (1 = always)
KP_NOVELTY_RECORDS = 20  # ... or where the feature's running rate of such records is at most this
KP_SIZE = 21

# Schema field -> kernel slot. Every field of ScoringConfig and TimeFeaturesConfig is listed here,
# or in NOT_IN_KERNEL with the reason.
SCORING_SLOTS = {
    "normaliser_halflife": KP_HALFLIFE,
    "short_window": KP_SHORT,
    "long_window": KP_LONG,
    "warmup_events": KP_WARMUP,
    "threshold": KP_THRESHOLD,
    "suppress_events": KP_SUPPRESS,
    "min_gap_seconds": KP_MIN_GAP,
    "zclip": KP_ZCLIP,
    "novelty_tolerance": KP_NOVELTY,
    "scale_floor": KP_SCALE_FLOOR,
    "profile_cap": KP_PROFILE_CAP,
    "flatline": KP_FLATLINE,
    "persistence_blend": KP_BLEND,
    "novelty_gate": KP_NOVELTY_GATE,
    "novelty_record_rate": KP_NOVELTY_RECORDS,
}
TIME_SLOTS = {
    "time_of_day": KP_TOD,
    "day_of_week": KP_DOW,
    "log_gap": KP_GAP,
    "daily_profile_bins": KP_PROFILE_BINS,
}
# Set by the Detector from other sections (KP_LATE) or fixed (KP_PROFILE_RATE).
OTHER_SLOTS = (KP_LATE, KP_PROFILE_RATE)

PROFILE_RATE = 0.1  # a bin's mean is a running mean over its first 10 values, then exponential


def n_time_features(time_of_day: bool, day_of_week: bool, log_gap: bool, profile_bins: int = 0,
                    n_features: int = 1) -> int:
    """How many inputs the input vector carries after the normalised features.

    With a daily profile (``profile_bins > 0``), two per feature: the profile at the event's bin and
    at the bin of the expected next event.
    """
    return 2 * int(time_of_day) + 2 * int(day_of_week) + int(log_gap) + (2 * n_features if profile_bins else 0)


def _fill(kp: np.ndarray, section: Any, slots: dict[str, int], what: str) -> None:
    names = {f.name for f in dataclasses.fields(section)}
    missing, unknown = sorted(names - slots.keys()), sorted(slots.keys() - names)
    if missing or unknown:
        raise KeyError(f"{what} and the kernel parameters disagree: fields without a kernel slot {missing}, "
                       f"kernel slots without a field {unknown}")
    for name, slot in slots.items():
        kp[slot] = float(getattr(section, name))


def from_config(time_features: Any, scoring: Any, late_tolerance_seconds: float = float("inf")) -> np.ndarray:
    """The parameter vector of a detector's ``time_features`` and ``scoring`` config sections."""
    covered = sorted([*SCORING_SLOTS.values(), *TIME_SLOTS.values(), *OTHER_SLOTS])
    if covered != list(range(KP_SIZE)):
        raise AssertionError(f"kernel parameter slots are not 0..{KP_SIZE - 1} exactly once: {covered}")
    kp = np.zeros(KP_SIZE, dtype=np.float64)
    _fill(kp, scoring, SCORING_SLOTS, "scoring")
    _fill(kp, time_features, TIME_SLOTS, "time_features")
    kp[KP_LATE] = float(late_tolerance_seconds)
    kp[KP_PROFILE_RATE] = PROFILE_RATE
    return kp


def kernel_params(time_of_day: bool = True, day_of_week: bool = True, log_gap: bool = True,
                  profile_bins: int = 0, **scoring: Any) -> np.ndarray:
    """The vector for the schema's defaults with some scoring settings changed (tests, benchmarks).

    Unknown scoring names raise TypeError (``dataclasses.replace``).
    """
    from ..config.schema import ScoringConfig, TimeFeaturesConfig

    tf = TimeFeaturesConfig(time_of_day=time_of_day, day_of_week=day_of_week, log_gap=log_gap,
                            daily_profile_bins=int(profile_bins))
    return from_config(tf, dataclasses.replace(ScoringConfig(), **scoring))
