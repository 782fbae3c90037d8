"""The kernel parameter vector: one float64 array, so kernels keep one signature as parameters grow."""

from __future__ import annotations

import numpy as np

# Index of each kernel parameter in the vector built by ``kernel_params``.
KP_HALFLIFE = 0        # normaliser half-life, in events of the entity
KP_TOD = 1             # 1.0: time-of-day sin/cos features on
KP_DOW = 2             # 1.0: day-of-week sin/cos features on
KP_GAP = 3             # 1.0: log(gap since the entity's previous event) feature on
KP_SHORT = 4           # short window of the error mean, in events
KP_LONG = 5            # long window of the error distribution, in events
KP_WARMUP = 6          # events of an entity scored 0 before scoring starts
KP_THRESHOLD = 7       # score at or above which an event is an anomaly
KP_SUPPRESS = 8        # events after an anomaly during which the entity raises no other
KP_MIN_GAP = 9         # seconds after an anomaly during which the entity raises no other
KP_ZCLIP = 10          # normalised inputs are clipped to [-zclip, zclip]
KP_NOVELTY = 11        # value novelty: a value beyond the entity's seen range by this share of it scores 1 (0 = off)
KP_ERR_FLOOR = 12      # errors are calibrated as log(error + this), in normalised units (0 = raw error)
KP_PROFILE_BINS = 13   # daily profile: time-of-day bins (0 = off)
KP_PROFILE_RATE = 14   # daily profile: smallest weight of a bin's newest value in its mean
KP_LATE = 15           # an event older than its entity's previous one by more than this many seconds is late
KP_PROFILE_CAP = 16    # the scored error is at most this multiple of the error of the daily profile (0 = off)
KP_SIZE = 17

# Named so that tuning can add parameters without touching kernel signatures.
KP_NAMES = {
    "normaliser_halflife": KP_HALFLIFE,
    "short_window": KP_SHORT,
    "long_window": KP_LONG,
    "warmup_events": KP_WARMUP,
    "threshold": KP_THRESHOLD,
    "suppress_events": KP_SUPPRESS,
    "min_gap_seconds": KP_MIN_GAP,
    "zclip": KP_ZCLIP,
    "novelty_tolerance": KP_NOVELTY,
    "error_floor": KP_ERR_FLOOR,
    "profile_cap": KP_PROFILE_CAP,
}

DEFAULTS = {
    "normaliser_halflife": 1000.0,
    "short_window": 10.0,
    "long_window": 1000.0,
    "warmup_events": 50.0,
    "threshold": 0.5,
    "suppress_events": 100.0,
    "min_gap_seconds": 0.0,
    "zclip": 10.0,
    "novelty_tolerance": 0.0,
    "error_floor": 0.0,
    "profile_cap": 0.0,
}


PROFILE_RATE = 0.1  # a bin's mean is a running mean over its first 10 values, then exponential


def n_time_features(time_of_day: bool, day_of_week: bool, log_gap: bool, profile_bins: int = 0,
                    n_features: int = 1) -> int:
    """How many inputs the input vector carries after the normalised features.

    With a daily profile (``profile_bins > 0``), two per feature: the profile at the event's bin and
    at the bin of the expected next event.
    """
    return 2 * int(time_of_day) + 2 * int(day_of_week) + int(log_gap) + (2 * n_features if profile_bins else 0)


def kernel_params(time_of_day: bool = True, day_of_week: bool = True, log_gap: bool = True,
                  profile_bins: int = 0, **scoring: float) -> np.ndarray:
    """Build the parameter vector. Unknown names raise KeyError; missing ones take ``DEFAULTS``."""
    kp = np.zeros(KP_SIZE, dtype=np.float64)
    values = dict(DEFAULTS)
    for name, value in scoring.items():
        if name not in KP_NAMES:
            raise KeyError(f"unknown kernel parameter {name!r}")
        values[name] = float(value)
    for name, value in values.items():
        kp[KP_NAMES[name]] = value
    kp[KP_LATE] = np.inf  # the Detector sets the configured late tolerance
    kp[KP_TOD] = float(time_of_day)
    kp[KP_DOW] = float(day_of_week)
    kp[KP_GAP] = float(log_gap)
    kp[KP_PROFILE_BINS] = float(profile_bins)
    kp[KP_PROFILE_RATE] = PROFILE_RATE
    return kp
