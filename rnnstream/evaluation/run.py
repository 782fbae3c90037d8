"""Run a detector (or the z-score baseline) over every stream of a corpus; cache and score the results.

Each stream (file) gets a fresh detector built from one configuration; its ``features`` are set to the
stream's feature columns (the only per-stream setting). Rows go in in arrival order, in micro-batches,
with inline training, so each row's score depends on the rows before it alone. Per row we keep the
*reported* score (0 inside suppression; what NAB scores) and the *alarm* (the published anomaly flag).

Streams run in ``workers`` processes; results are collected by key, so they never depend on the
number of workers or the order in which streams finish. A result is cached under
``<cache>/<spec hash>/<key>.npz`` (the hash covers the configuration text and the values of the
environment variables it refers to, the baseline, the corpus root, the data file's size and mtime,
and the rnnstream source code), so LOCO grids and repeated runs score each stream once.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from rnnstream.config import load_config_text
from rnnstream.config.env import referenced
from rnnstream.errors import RnnstreamError

from . import zscore
from .corpora import Corpus

BATCH = 256  # rows per micro-batch; results do not depend on it


@dataclass(frozen=True)
class Spec:
    """What scores a stream: a detector configuration (YAML text) or the z-score baseline."""

    config_text: str | None = None
    detector: str | None = None
    zscore: zscore.ZScoreParams | None = None

    @property
    def label(self) -> str:
        return "zscore" if self.zscore is not None else "detector"

    def digest(self) -> str:
        """Hash of what the scores depend on: the configuration text, the values of the environment
        variables it refers to (``${VAR}``, substituted when it is loaded), the baseline and the code."""
        env = {name: os.environ.get(name) for name in referenced(self.config_text or "")}
        payload = json.dumps([self.config_text, env, self.detector, None if self.zscore is None else vars(self.zscore),
                              code_digest()])
        return hashlib.sha1(payload.encode()).hexdigest()[:16]


#: Sources that only turn scores into figures: editing them keeps the cached scores valid.
NOT_SCORING = {"evaluation/commands.py", "evaluation/evaluate.py", "evaluation/generate.py",
               "evaluation/loco.py", "evaluation/matched.py", "evaluation/operator.py", "evaluation/scenarios.py",
               "nab/report.py",
               "nab/scorer.py", "nab/weights.py", "cli.py", "docs.py", "demo.py", "plot.py"}


@functools.lru_cache(maxsize=1)
def code_digest() -> str:
    """Hash of the rnnstream sources a score depends on: a cached score is never reused after they change."""
    h = hashlib.sha1()
    package = Path(__file__).resolve().parents[1]
    for path in sorted(package.rglob("*.py")):
        if path.relative_to(package).as_posix() in NOT_SCORING:
            continue
        h.update(path.relative_to(package).as_posix().encode())
        h.update(path.read_bytes())
    return h.hexdigest()


@dataclass
class StreamScores:
    key: str
    score: np.ndarray     # (N,) reported score in [0, 1]
    alarm: np.ndarray     # (N,) bool
    raw: np.ndarray       # (N,) z-score baseline: |z|; detector: the score before suppression
    seconds: float
    kind: np.ndarray | None = None   # (N, F) detector: the kind blamed per feature (KIND_*); baseline: None


# ---------------------------------------------------------------- configuration with overrides

def _set_path(tree: dict, dotted: str, value: Any) -> None:
    node = tree
    parts = dotted.split(".")
    for p in parts[:-1]:
        nxt = node.get(p)
        if not isinstance(nxt, dict):
            nxt = node[p] = {}
        node = nxt
    node[parts[-1]] = value


def detector_tree(config_path: str | Path, detector: str | None = None) -> tuple[dict, int]:
    """The YAML tree of the whole config and the index of the chosen detector (checked)."""
    text = Path(config_path).read_text()
    cfg = load_config_text(text, source=str(config_path))   # validates, names the file on error
    names = [d.name for d in cfg.detectors]
    if detector is not None and detector not in names:
        raise RnnstreamError(f"{config_path}: no detector named {detector!r}; the config has {names}")
    return yaml.safe_load(text), 0 if detector is None else names.index(detector)


def config_text(config_path: str | Path, detector: str | None = None, overrides: dict[str, Any] | None = None,
                seed: int | None = None) -> str:
    """The config as YAML text with dotted ``overrides`` (replacing whole values) and ``model.seed``.

    Raises ConfigError naming the override source when the result does not validate.
    """
    tree, idx = detector_tree(config_path, detector)
    det = tree["detectors"][idx]
    for path, value in (overrides or {}).items():
        _set_path(det, path, value)
    if seed is not None:
        _set_path(det, "model.seed", int(seed))
    text = yaml.safe_dump(tree, sort_keys=False)
    load_config_text(text, source=f"{config_path} with overrides {overrides or {}} seed {seed}")
    return text


def parse_overrides(items: list[str] | None) -> dict[str, Any]:
    """``["model={type: naive}", "scoring.threshold=0.6"]`` -> ``{"model": {...}, "scoring.threshold": 0.6}``."""
    out: dict[str, Any] = {}
    for item in items or []:
        path, sep, value = item.partition("=")
        if not sep or not path.strip():
            raise RnnstreamError(f"--set {item!r}: expected PATH=VALUE, e.g. scoring.threshold=0.6")
        try:
            out[path.strip()] = yaml.safe_load(value)
        except yaml.YAMLError as exc:
            raise RnnstreamError(f"--set {item!r}: the value is not YAML ({exc})") from None
    return out


# ---------------------------------------------------------------- scoring one stream

def run_detector(detector_cfg: Any, entity_names: list[str], entity: np.ndarray, values: np.ndarray,
                 timestamps: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Reported score and published-alarm flag of every row, from a fresh detector."""
    rows = detector_rows(detector_cfg, entity_names, entity, values, timestamps)
    return rows.score, rows.alarm


@dataclass
class DetectorRows:
    """Per row: the reported score, the published-alarm flag, the score before suppression, and per
    feature the blamed kind (``KIND_*``); ``anomalous``: the row's own score reached the threshold."""

    score: np.ndarray
    alarm: np.ndarray
    unsuppressed: np.ndarray
    kind: np.ndarray
    anomalous: np.ndarray


def detector_rows(detector_cfg: Any, entity_names: list[str], entity: np.ndarray, values: np.ndarray,
                  timestamps: np.ndarray) -> DetectorRows:
    """Every row scored causally by a fresh detector (micro-batches of ``BATCH`` rows)."""
    from rnnstream.detector import Detector
    from rnnstream.kernels.calibrate import score_flags

    det = Detector(detector_cfg, background=False)
    try:
        ts = np.asarray(timestamps, dtype=np.float64)
        names = np.asarray(entity_names, dtype=object)[entity]
        n = len(ts)
        out = DetectorRows(np.zeros(n), np.zeros(n, dtype=bool), np.zeros(n),
                           np.zeros((n, values.shape[1]), dtype=np.uint8), np.zeros(n, dtype=bool))
        for start in range(0, n, BATCH):
            stop = min(start + BATCH, n)
            res = det.process(names[start:stop].tolist(), values[start:stop], ts[start:stop])
            at = start + res.index
            out.score[at] = res.reported_score()
            out.unsuppressed[at] = res.score
            out.alarm[at], _, out.anomalous[at] = score_flags(res.flag)
            out.kind[at] = res.kind
        return out
    finally:
        det.close()


def score_stream(spec: Spec, corpus: Corpus, key: str) -> StreamScores:
    started = time.perf_counter()
    stream = corpus.load(key)
    if spec.zscore is not None:
        z = zscore.score_stream(stream.entity, stream.values, spec.zscore)
        return StreamScores(key, zscore.to_score(z, spec.zscore.threshold), z >= spec.zscore.threshold, z,
                            time.perf_counter() - started)
    cfg = load_config_text(spec.config_text).detector(spec.detector)
    if corpus.kind == "generic":
        cfg = cfg.with_features(tuple(stream.features))
    rows = detector_rows(cfg, stream.entity_names, stream.entity, stream.values, stream.timestamps)
    return StreamScores(key, rows.score, rows.alarm, rows.unsuppressed, time.perf_counter() - started, rows.kind)


# ---------------------------------------------------------------- the corpus, cached, in workers

def _cache_file(cache: Path, spec: Spec, corpus: Corpus, key: str) -> Path:
    data = corpus.root / "data" / key
    st = data.stat()
    h = hashlib.sha1(f"{spec.digest()}|{corpus.root.resolve()}|{key}|{st.st_size}|{st.st_mtime_ns}".encode())
    return cache / spec.digest() / f"{h.hexdigest()[:16]}.npz"


def _job(args: tuple[Spec, Corpus, str, str | None]) -> StreamScores:
    spec, corpus, key, cache_path = args
    if cache_path is not None and Path(cache_path).is_file():
        with np.load(cache_path) as z:
            return StreamScores(key, z["score"], z["alarm"], z["raw"], float(z["seconds"]),
                                z["kind"] if "kind" in z.files else None)
    res = score_stream(spec, corpus, key)
    if cache_path is not None:
        Path(cache_path).parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(cache_path).with_suffix(f".{os.getpid()}.tmp.npz")  # two evaluations may score the same stream at once
        extra = {} if res.kind is None else {"kind": res.kind}
        np.savez(tmp, score=res.score, alarm=res.alarm, raw=res.raw, seconds=res.seconds, **extra)
        os.replace(tmp, cache_path)
    return res


def run_corpus(spec: Spec, corpus: Corpus, workers: int | None = None, cache: str | Path | None = None,
               on_done: Callable[[StreamScores], None] | None = None) -> dict[str, StreamScores]:
    """Score every stream of ``corpus``; ``on_done`` is called (in this process) as each finishes."""
    jobs = [(spec, corpus, key, None if cache is None else str(_cache_file(Path(cache), spec, corpus, key)))
            for key in corpus.keys]
    workers = workers or min(len(jobs), os.cpu_count() or 1, 2)
    results: dict[str, StreamScores] = {}
    if workers > 1 and len(jobs) > 1:
        with ProcessPoolExecutor(workers) as pool:
            futures = {pool.submit(_job, job): job[2] for job in jobs}
            for fut in as_completed(futures):
                res = fut.result()
                results[res.key] = res
                if on_done:
                    on_done(res)
    else:
        for job in jobs:
            res = _job(job)
            results[res.key] = res
            if on_done:
                on_done(res)
    return {k: results[k] for k in corpus.keys}
