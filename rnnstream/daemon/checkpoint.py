"""Checkpoints of one unit (detector, topic, partition): everything its Detector's future output depends on.

Files: ``<state_dir>/<detector>/<topic>-<partition>/ckpt-<generation:012d>.rns`` in the format of
``rnnstream.state.fileformat`` (checksummed, written atomically). A unit checkpoint holds:

* the SlotState exactly as it is: every field array (all ``capacity`` rows), the entity of each live
  slot (slot numbers are kept, since training draws windows by slot), the free-slot stack, the
  logical clock ``seq`` and ``evicted_total``;
* ``model.snapshot()`` (weights, Adam state, version) and, in background mode, the result of a fit
  still to be put in force at the next trigger, or the windows of a fit still running (run again on
  restore: no waiting for it);
* the training schedule counters (events, next_at, k, seen_seq, events at the last trigger), its
  WindowBuffer and its stats; the detector's watermark;
* ``next_offset`` and meta: format, detector, topic, partition, model type, created_at and two config
  fingerprints: ``shape`` (model type and parameters, features and log features, time features, training window — what
  the arrays' shapes and meaning depend on) and ``config`` (model, training, scoring, features).

Guaranteed: with event-count triggers only, ``restore_detector(snapshot_detector(d))`` continues with
outputs bit-identical to ``d``'s. A checkpoint whose ``shape`` fingerprint differs from the current
config, or that holds more slots than ``max_entities`` now allows, is refused (treated as absent); a
scoring- or training-only change is accepted and logged.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import time
from dataclasses import asdict, is_dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..detector import Detector
from ..errors import StateFormatError, StateVersionError
from ..state.fileformat import read_state_file, to_parts, write_parts_atomically

log = logging.getLogger(__name__)

FORMAT = "rnnstream-checkpoint/1"
_NAME = re.compile(r"^ckpt-(\d{12})\.rns$")


# -- fingerprints -----------------------------------------------------------------------------------

def _plain(obj: Any) -> Any:
    return asdict(obj) if is_dataclass(obj) else obj


def _digest(parts: dict[str, Any]) -> str:
    text = json.dumps({k: _plain(v) for k, v in parts.items()}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def shape_fingerprint(cfg: Any) -> str:
    """Hash of what the checkpoint's arrays mean: model type/params, features and the ones on a log scale,
    time features, window. Without ``log_features`` the hash is the one of the builds before them, so
    their checkpoints still restore."""
    parts = {"model": cfg.model, "features": list(cfg.features), "time_features": cfg.time_features,
             "window": cfg.training.window}
    if cfg.log_features:
        parts["log_features"] = list(cfg.log_features)
    return _digest(parts)


def config_fingerprint(cfg: Any) -> str:
    """Hash of model, training, scoring and features (changes when any of them changes)."""
    return _digest({"model": cfg.model, "training": cfg.training, "scoring": cfg.scoring,
                    "features": list(cfg.features), "time_features": cfg.time_features})


# -- Detector <-> arrays ------------------------------------------------------------------------------

def snapshot_detector(det: Detector) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Arrays and meta capturing ``det``: ``Detector.snapshot()`` (it never waits for a background fit)."""
    return det.snapshot()


def restore_detector(cfg: Any, arrays: dict[str, np.ndarray], meta: dict[str, Any], *,
                     background: bool | None = None, entities: bool = True) -> Detector:
    """A new Detector built from ``cfg`` holding the state ``Detector.snapshot(entities)`` captured.

    Raises StateFormatError when arrays are missing or do not fit ``cfg``'s shapes.
    """
    det = Detector(cfg, background=background)
    try:
        det.restore(arrays, meta, entities=entities)
    except (KeyError, ValueError, TypeError, IndexError) as exc:
        det.close()
        raise StateFormatError(f"checkpoint does not fit detector {cfg.name!r}: {exc!r}") from exc
    except BaseException:
        det.close()
        raise
    return det


# -- the store ----------------------------------------------------------------------------------------

def _tp(tp: Any) -> tuple[str, int]:
    if hasattr(tp, "topic"):
        return tp.topic, int(tp.partition)
    topic, partition = tp
    return topic, int(partition)


class CheckpointStore:
    """Checkpoint generations of every unit under ``state_dir``.

    ``metrics`` (an ``rnnstream.metrics.Metrics``) is optional; ``corrupt_total`` counts unreadable
    files either way, each once: they are moved to ``<unit dir>/corrupt/`` when found. One thread should use a store at a time per unit.
    """

    def __init__(self, state_dir: str | os.PathLike, keep_generations: int = 2, *, metrics: Any = None):
        if keep_generations < 1:
            raise ValueError(f"keep_generations must be >= 1, got {keep_generations}")
        self.root = Path(state_dir)
        self.keep_generations = int(keep_generations)
        self.metrics = metrics
        self.corrupt_total = 0

    def unit_dir(self, detector_name: str, tp: Any) -> Path:
        topic, partition = _tp(tp)
        return self.root / detector_name / f"{topic}-{partition}"

    def generations(self, detector_name: str, tp: Any) -> list[tuple[int, Path]]:
        """``(generation, path)`` of the unit's checkpoint files, newest first."""
        d = self.unit_dir(detector_name, tp)
        try:
            entries = list(d.iterdir())
        except FileNotFoundError:
            return []
        found = [(int(m.group(1)), p) for p in entries if (m := _NAME.match(p.name))]
        return sorted(found, reverse=True)

    def save(self, detector_name: str, tp: Any, detector: Detector, next_offset: int,
             extra: dict[str, Any] | None = None) -> Path:
        """Write a new generation for the unit, then delete all but the newest ``keep_generations``.

        ``extra`` (JSON-able) is kept in the meta, e.g. the changelog offset this state reflects."""
        return self.write(self.prepare(detector_name, tp, detector, next_offset, extra))

    def prepare(self, detector_name: str, tp: Any, detector: Detector, next_offset: int,
                extra: dict[str, Any] | None = None) -> tuple[Path, list[bytes]]:
        """``save``'s first half, in the thread that owns ``detector``: the new generation's path and
        its content in pieces (``to_parts``: the arrays copied, as the detector may change as soon as
        this returns; the checksum and the joining are left to ``write``). ``write`` does the
        rest, in any thread; the unit's next ``prepare`` must wait for that ``write``."""
        topic, partition = _tp(tp)
        d = self.unit_dir(detector_name, tp)
        d.mkdir(parents=True, exist_ok=True)
        gens = self.generations(detector_name, tp)
        generation = gens[0][0] + 1 if gens else 1
        arrays, meta = snapshot_detector(detector)
        cfg = detector.cfg
        meta.update({
            "format": FORMAT, "detector": detector_name, "topic": topic, "partition": partition,
            "model_type": cfg.model.type, "shape_fingerprint": shape_fingerprint(cfg),
            "config_fingerprint": config_fingerprint(cfg), "next_offset": int(next_offset),
            "generation": generation, "created_at": time.time(), **(extra or {}),
        })
        return d / f"ckpt-{generation:012d}.rns", to_parts(arrays, meta)

    def write(self, prepared: tuple[Path, list[bytes]]) -> Path:
        """Write what ``prepare`` made (atomically, durably), then delete all but the newest
        ``keep_generations`` of the unit. Returns the file's path."""
        path, parts = prepared
        write_parts_atomically(path, parts)
        d = path.parent
        gens = [(int(m.group(1)), p) for p in d.iterdir() if (m := _NAME.match(p.name))]
        for _, old in sorted(gens, reverse=True)[self.keep_generations:]:
            try:
                old.unlink()
            except FileNotFoundError:
                pass
        for stale in d.glob(".ckpt-*.tmp-*"):   # left by a crash mid-write
            if not stale.name.endswith(f".tmp-{os.getpid()}"):
                stale.unlink(missing_ok=True)
        return path

    def load(self, detector_name: str, tp: Any, cfg: Any, *,
             background: bool | None = None) -> tuple[Detector, int] | None:
        """``(detector, next_offset)`` from the newest readable generation, or None if there is none.

        Unreadable files are logged, counted and skipped for the previous generation. A checkpoint
        made for a different model shape is refused: logged, and None is returned (start fresh).
        """
        got = self.load_with_meta(detector_name, tp, cfg, background=background)
        return None if got is None else (got[0], got[1])

    def load_with_meta(self, detector_name: str, tp: Any, cfg: Any, *,
                       background: bool | None = None) -> tuple[Detector, int, dict[str, Any]] | None:
        """``load``, plus the checkpoint's meta (with what ``save`` got as ``extra``)."""
        topic, partition = _tp(tp)
        for generation, path in self.generations(detector_name, tp):
            try:
                arrays, meta = read_state_file(path)
                if meta.get("format") != FORMAT:
                    raise StateFormatError(f"{path}: format {meta.get('format')!r}, expected {FORMAT!r}")
                if (meta.get("detector"), meta.get("topic"), meta.get("partition")) != (detector_name, topic, partition):
                    raise StateFormatError(f"{path}: belongs to {meta.get('detector')}/{meta.get('topic')}-"
                                           f"{meta.get('partition')}")
            except StateVersionError as exc:   # sound, but of another build: not corrupt
                log.warning("checkpoint refused: written by another rnnstream version; starting this "
                            "partition fresh", extra={"path": str(path), "detector": detector_name,
                                                      "topic": topic, "partition": partition, "reason": str(exc)})
                return None
            except StateFormatError as exc:
                self._corrupt(path, str(exc))
                continue
            if meta.get("shape_fingerprint") != shape_fingerprint(cfg):
                log.warning("checkpoint refused: model shape changed (model type/size, features, log_features, "
                            "time features or training.window); starting this partition fresh",
                            extra={"path": str(path), "detector": detector_name, "topic": topic,
                                   "partition": partition, "checkpoint_model_type": meta.get("model_type"),
                                   "config_model_type": cfg.model.type})
                return None
            if int(meta.get("capacity", 0)) > cfg.max_entities:
                log.warning("checkpoint refused: it holds more entity slots than max_entities allows; "
                            "starting this partition fresh",
                            extra={"path": str(path), "detector": detector_name, "topic": topic,
                                   "partition": partition, "slots": meta.get("capacity"),
                                   "max_entities": cfg.max_entities})
                return None
            if meta.get("config_fingerprint") != config_fingerprint(cfg):
                log.info("checkpoint made with different scoring/training settings; restoring its state "
                         "under the current settings", extra={"path": str(path), "detector": detector_name})
            try:
                detector = restore_detector(cfg, arrays, meta, background=background)
            except StateFormatError as exc:
                self._corrupt(path, str(exc))
                continue
            log.info("checkpoint restored", extra={"path": str(path), "detector": detector_name, "topic": topic,
                                                   "partition": partition, "generation": generation,
                                                   "next_offset": meta["next_offset"],
                                                   "entities": len(detector.state)})
            return detector, int(meta["next_offset"]), meta
        return None

    def _corrupt(self, path: Path, reason: str) -> None:
        """Count an unreadable file once and move it aside to ``<unit dir>/corrupt/``, where neither a
        later load (which would count it again) nor the rotation of generations (which would delete
        it) touches it: it is kept for investigation."""
        self.corrupt_total += 1
        if self.metrics is not None:
            self.metrics.checkpoint_corrupt.inc()
        aside = path.parent / "corrupt" / path.name
        try:
            aside.parent.mkdir(exist_ok=True)
            if aside.exists():
                aside = aside.with_name(f"{path.name}.{time.time_ns()}")
            path.rename(aside)
        except FileNotFoundError:      # another replica sharing state_dir moved it first
            aside = None
        except OSError as exc:
            log.error("could not move the corrupt checkpoint aside", extra={"path": str(path), "error": str(exc)})
            aside = None
        log.error("checkpoint unreadable, trying the previous generation",
                  extra={"path": str(path), "moved_to": None if aside is None else str(aside), "reason": reason})
