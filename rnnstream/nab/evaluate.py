"""Run rnnstream over a NAB corpus under NAB's rules and score it.

Each file is its own stream, fed to a fresh detector built from the one configuration, in micro-batches,
with inline (deterministic) retraining. The score written for a row is the detector's reported score:
its calibrated score, or 0 inside the entity's suppression period after an anomaly. Only rows 0..i
influence row i's score.
"""

from __future__ import annotations

import os
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from ..config import load_config
from ..evaluation.run import run_detector
from . import dataset, report, scorer

def score_series(detector_cfg: Any, timestamps: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Reported score of every row of one series, from a fresh detector."""
    ts = timestamps.astype("datetime64[s]").astype(np.float64)
    score, _ = run_detector(detector_cfg, ["series"], np.zeros(len(values), dtype=np.int64), values[:, None], ts)
    return score


def _run_one(args: tuple[str, str | None, str, str, str]) -> tuple[str, np.ndarray, np.ndarray, float]:
    config_path, detector_name, root, key, out = args
    cfg = load_config(config_path).detector(detector_name)
    started = time.perf_counter()
    timestamps, values = dataset.load_series(root, key)
    scores = score_series(cfg, timestamps, values)
    report.write_result(out, "rnnstream", key, timestamps, values, scores)
    return key, timestamps, scores, time.perf_counter() - started


def evaluate(root: str | Path, config_path: str | Path, out: str | Path, detector: str | None = None,
             workers: int | None = None, files: list[str] | None = None) -> dict[str, dict]:
    """Write ``<out>/<category>/rnnstream_<file>.csv`` for every file and return the NAB scores."""
    root, out = Path(root), Path(out)
    load_config(config_path).detector(detector)  # fail early, in this process, on a bad config
    keys = files or dataset.list_files(root)
    jobs = [(str(config_path), detector, str(root), key, str(out)) for key in keys]
    workers = workers or min(len(jobs), os.cpu_count() or 1)
    if workers > 1:
        with ProcessPoolExecutor(workers) as pool:
            done = list(pool.map(_run_one, jobs))
    else:
        done = [_run_one(job) for job in jobs]
    results = {key: (ts, scores) for key, ts, scores, _ in done}
    windows = dataset.load_windows(root)
    return scorer.score_corpus(results, {k: windows.get(k, []) for k in keys})
