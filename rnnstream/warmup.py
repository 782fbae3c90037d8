"""Compile every model type's kernels once so that numba's on-disk cache serves later processes."""

from __future__ import annotations

import time
from typing import Iterable

import numpy as np

from .config import load_config
from .config.model_params import MODEL_PARAMS
from .detector import Detector
from .models.base import model_types
from .state.index import warm_index

_TEMPLATE = """
detectors:
  - name: warmup
    topics: [warmup]
    entity: host
    timestamp: {{field: ts}}
    features: [a, b]
    model: {{type: {type}{extra}}}
    training: {{every_events: 64, min_events: 64, window: 16, steps: 1, batch_windows: 2}}
"""


def warmup(models: Iterable[tuple[str, int]] | None = None) -> float:
    """Run a small batch, with one retraining, through every registered model type (and, for a type
    with ``layers``, through a stack too: its kernels differ from one layer's), or through the
    ``(type, layers)`` pairs of ``models``; return seconds. Compiles the kernels, or loads them from
    numba's cache, into this process."""
    started = time.perf_counter()
    warm_index()
    rng = np.random.default_rng(0)
    if models is None:
        models = [(t, 1) for t in model_types()]
        models += [(t, 2) for t in model_types() if "layers" in MODEL_PARAMS[t].__dataclass_fields__]
    for type_name, layers in models:
        extra = f", layers: {layers}" if layers > 1 else ""
        cfg = load_config(_TEMPLATE.format(type=type_name, extra=extra)).detectors[0]
        det = Detector(cfg, background=False)
        try:
            n = 200
            det.process([f"e{i % 3}" for i in range(n)], rng.normal(size=(n, 2)), 60.0 * np.arange(n))
        finally:
            det.close()
    return time.perf_counter() - started
