"""Compile every model type's kernels once so that numba's on-disk cache serves later processes."""

from __future__ import annotations

import time
from typing import Iterable

import numpy as np

from .config import load_config
from .detector import Detector
from .models.base import model_types

_TEMPLATE = """
detectors:
  - name: warmup
    topics: [warmup]
    entity: host
    timestamp: {{field: ts}}
    features: [a, b]
    model: {{type: {type}}}
    training: {{every_events: 64, min_events: 64, window: 16, steps: 1, batch_windows: 2}}
"""


def warmup(types: Iterable[str] | None = None) -> float:
    """Run a small batch, with one retraining, through every registered model type (or ``types``);
    return seconds. Compiles the kernels, or loads them from numba's cache, into this process."""
    started = time.perf_counter()
    rng = np.random.default_rng(0)
    for type_name in (model_types() if types is None else types):
        cfg = load_config(_TEMPLATE.format(type=type_name)).detectors[0]
        det = Detector(cfg, background=False)
        try:
            n = 200
            det.process([f"e{i % 3}" for i in range(n)], rng.normal(size=(n, 2)), 60.0 * np.arange(n))
        finally:
            det.close()
    return time.perf_counter() - started
