"""``rnnstream state inspect|export|reset``: look into and reset the daemon's checkpoints.

``inspect --from-kafka`` and ``export --from-kafka`` read the detector's changelog topic instead
(``processing.changelog``), as any replica taking the partition over would restore it: both go
through ``changelog_partitions``, the records of each partition up to its last complete commit.

Checkpoints live in ``<state_dir>/<detector>/<topic>-<partition>/ckpt-<generation>.rns`` (see
``rnnstream.daemon.checkpoint``). inspect and export only read them; reset (``rnnstream.ops.state_reset``)
moves unit directories aside into ``<state_dir>/reset-<UTC timestamp>/`` and deletes nothing.

Not guaranteed: consistency with a running daemon. Inspecting or exporting while it runs is safe
(files are replaced atomically), but a reset must be done with the daemon stopped, otherwise its next
checkpoint recreates the unit.
"""

from __future__ import annotations

import json
import math
import re
import sys
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, TextIO

import numpy as np

from ..config import Config, load_config_file
from ..daemon.checkpoint import CheckpointStore, shape_fingerprint
from ..errors import RnnstreamError, StateFormatError
from ..kernels import calibrate as C
from ..kernels.params import from_config as kernel_params_from_config
from ..kernels.ring import flags_by_position, stored_inputs, unroll_windows
from ..state.fileformat import read_state_file
from ..state.slots import SlotState

_DETECTOR_DIR = re.compile(r"^[a-z0-9_]+$")
_UNIT_DIR = re.compile(r"^(.+)-(\d+)$")
COMMON_FIELDS = {"count", "last_ts", "nmean", "nvar", "pred", "sc", "ring_in", "ring_t", "ring_flag", "last_seq"}


def _feature_stats(sc, i: int) -> dict:
    """One feature's scorer statistics (``kernels.calibrate``'s per-feature block), by name."""
    k = C.SC_FEAT + C.PF * i
    return {"residual_scale": float(sc[k + C.FS_SCALE]), "tail_exceedance_rate": float(sc[k + C.FS_TAIL + C.TL_RATE]),
            "tail_mean_excess": float(sc[k + C.FS_TAIL + C.TL_M1]), "short_mean": float(sc[k + C.FS_SHORT]),
            "repeat_run_length": int(sc[k + C.FS_RUN]),
            "range": {"min": float(sc[k + C.FS_LO]), "max": float(sc[k + C.FS_HI])}}


def _iso(seconds: float | None) -> str | None:
    if seconds is None or not math.isfinite(seconds):
        return None
    return datetime.fromtimestamp(seconds, timezone.utc).isoformat().replace("+00:00", "Z")


# -- finding units ----------------------------------------------------------------------------------

@dataclass(frozen=True)
class Unit:
    detector: str
    topic: str
    partition: int
    path: Path

    @property
    def label(self) -> str:
        return f"{self.detector}/{self.topic}-{self.partition}"


def parse_partition(text: str) -> tuple[str, int]:
    """``"metrics.hosts-3"`` -> ``("metrics.hosts", 3)``; RnnstreamError otherwise."""
    m = _UNIT_DIR.match(text)
    if not m:
        raise RnnstreamError(f"--partition {text!r}: expected TOPIC-PARTITION, e.g. metrics.hosts-0")
    return m.group(1), int(m.group(2))


def find_units(state_dir: str | Path, detector: str | None = None, partition: str | None = None) -> list[Unit]:
    """Unit directories under ``state_dir`` (optionally of one detector / one ``TOPIC-P``), sorted."""
    root = Path(state_dir)
    wanted = parse_partition(partition) if partition else None
    units = []
    if not root.is_dir():
        return units
    for det_dir in sorted(root.iterdir()):
        if not det_dir.is_dir() or not _DETECTOR_DIR.match(det_dir.name):
            continue   # reset-* directories and anything else that is not a detector
        if detector is not None and det_dir.name != detector:
            continue
        for unit_dir in sorted(det_dir.iterdir()):
            m = _UNIT_DIR.match(unit_dir.name)
            if not unit_dir.is_dir() or not m:
                continue
            unit = Unit(det_dir.name, m.group(1), int(m.group(2)), unit_dir)
            if wanted is None or (unit.topic, unit.partition) == wanted:
                units.append(unit)
    return units


def nothing_found(state_dir: str | Path, detector: str | None, partition: str | None) -> str:
    what = " ".join(x for x in (f"detector {detector!r}" if detector else "",
                                f"partition {partition!r}" if partition else "") if x) or "any detector"
    return f"no checkpoint directories for {what} under {Path(state_dir).resolve()}"


# -- inspect ----------------------------------------------------------------------------------------

@dataclass
class GenerationInfo:
    generation: int
    path: str
    size_bytes: int
    valid: bool
    error: str | None = None


@dataclass
class UnitInfo:
    detector: str
    topic: str
    partition: int
    path: str
    size_bytes: int                        # every file of the unit directory
    generations: list[GenerationInfo] = field(default_factory=list)
    newest_valid: bool = False
    # from the newest readable generation (None when there is none)
    generation: int | None = None
    entities: int | None = None
    model_type: str | None = None
    model_version: int | None = None
    next_offset: int | None = None
    created_at: str | None = None
    age_seconds: float | None = None
    source: str = "state_dir"              # or "changelog" (inspect --from-kafka): generations is then
                                           # one entry, the partition's last complete commit


def inspect_unit(store: CheckpointStore, unit: Unit, now: float | None = None) -> UnitInfo:
    """Read and checksum every generation of ``unit``."""
    now = time.time() if now is None else now
    size = sum(p.stat().st_size for p in unit.path.iterdir() if p.is_file())
    info = UnitInfo(unit.detector, unit.topic, unit.partition, str(unit.path), size)
    for generation, path in store.generations(unit.detector, (unit.topic, unit.partition)):
        gen = GenerationInfo(generation, str(path), path.stat().st_size, False)
        info.generations.append(gen)
        try:
            arrays, meta = read_state_file(path)
        except StateFormatError as exc:
            gen.error = str(exc)
            continue
        gen.valid = True
        if info.generation is None:
            info.generation = generation
            try:
                info.entities = len(SlotState.from_snapshot(arrays, meta))
            except (KeyError, ValueError):
                info.entities = None
            info.model_type = meta.get("model_type")
            info.model_version = _model_version(arrays)
            info.next_offset = meta.get("next_offset")
            created = meta.get("created_at")
            info.created_at = _iso(created)
            info.age_seconds = None if created is None else round(now - float(created), 3)
    info.newest_valid = bool(info.generations) and info.generations[0].valid
    return info


def inspect_state(cfg: Config, detector: str | None = None, now: float | None = None) -> list[UnitInfo]:
    store = CheckpointStore(cfg.state_dir, cfg.checkpoint.keep_generations)
    return [inspect_unit(store, u, now) for u in find_units(cfg.state_dir, detector)]


def inspect_changelog(cfg: Config, detector: str | None = None, now: float | None = None,
                      reader: Any = None) -> list[UnitInfo]:
    """``inspect_state`` from the changelog topics: per detector and input partition holding records,
    its last complete commit (entities, model, next offset, when written; "valid" when a restore can
    use it: a head of this format whose entity rows fit the config)."""
    now = time.time() if now is None else now
    out = []
    for det_cfg in _detectors(cfg, detector):
        for part in changelog_partitions(cfg, det_cfg, reader=reader):
            r, head = part.restored, part.restored.head
            gen = GenerationInfo(0, part.label, r.bytes, False)
            info = UnitInfo(det_cfg.name, part.input_topic, part.partition, part.label, r.bytes, [gen],
                            source="changelog")
            if head is None:
                gen.error = f"{r.records} record(s) but no complete commit"
            elif head.get("row_bytes") != part.codec.row_bytes:
                gen.error = (f"entity rows of {head.get('row_bytes')} bytes, this config's are "
                             f"{part.codec.row_bytes} (model shape changed): a restore starts fresh")
            else:
                gen.valid = True
            if head is not None:
                info.generation = 0
                info.entities = sum(1 for c in r.entities.values() if c and not any(x is None for x in c))
                info.model_type, info.model_version = head.get("model_type"), head.get("model_version")
                info.next_offset = head.get("next_offset")
                info.created_at = _iso(head.get("written_at"))
                info.age_seconds = None if head.get("written_at") is None else round(now - float(head["written_at"]), 3)
            info.newest_valid = gen.valid
            out.append(info)
    return out


def _age(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds / size:.1f}{unit}"
    return f"{seconds:.0f}s"


def format_inspect(units: list[UnitInfo]) -> str:
    header = ("DETECTOR", "UNIT", "GENS", "ENTITIES", "MODEL", "VERSION", "NEXT_OFFSET", "AGE", "SIZE", "NEWEST")
    rows = [header]
    notes = []
    for u in units:
        gens = "changelog" if u.source == "changelog" else ",".join(str(g.generation) for g in u.generations) or "-"
        newest = "ok" if u.newest_valid else ("none" if not u.generations else "CORRUPT")
        rows.append((u.detector, f"{u.topic}-{u.partition}", gens, _dash(u.entities), _dash(u.model_type),
                     _dash(u.model_version), _dash(u.next_offset), _age(u.age_seconds),
                     f"{u.size_bytes / 1024:.1f}KiB", newest))
        notes += [f"{u.detector}/{u.topic}-{u.partition} "
                  f"{g.path if u.source == 'changelog' else f'generation {g.generation}'}: {g.error}"
                  for g in u.generations if not g.valid]
        if u.generations and not u.newest_valid and u.generation is not None:
            notes.append(f"{u.detector}/{u.topic}-{u.partition}: the daemon would restore generation {u.generation}")
    widths = [max(len(str(r[i])) for r in rows) for i in range(len(header))]
    lines = ["  ".join(str(v).ljust(w) for v, w in zip(r, widths)).rstrip() for r in rows]
    return "\n".join(lines + notes)


def _dash(v: Any) -> str:
    return "-" if v is None else str(v)


# -- export -----------------------------------------------------------------------------------------

def _newest_readable(store: CheckpointStore, unit: Unit) -> tuple[Path, dict, dict] | None:
    for _, path in store.generations(unit.detector, (unit.topic, unit.partition)):
        try:
            arrays, meta = read_state_file(path)
        except StateFormatError:
            continue
        return path, arrays, meta
    return None


def _model_version(arrays: dict[str, np.ndarray]) -> int | None:
    """The model version in a ``Detector.snapshot`` (its model's arrays are under ``model.``)."""
    return int(arrays["model.version"]) if "model.version" in arrays else None


def _time_feature_names(cfg: Any) -> list[str]:
    tf = cfg.time_features
    profile = ([f"{f}_profile_now" for f in cfg.features] + [f"{f}_profile_next" for f in cfg.features]
               if tf.daily_profile_bins else [])
    return ((["time_of_day_sin", "time_of_day_cos"] if tf.time_of_day else [])
            + (["day_of_week_sin", "day_of_week_cos"] if tf.day_of_week else [])
            + (["log_gap"] if tf.log_gap else []) + profile)


def entity_state(cfg: Any, unit: Unit, source: dict[str, Any], row: dict[str, np.ndarray],
                 model_type: str | None, model_version: int | None) -> dict[str, Any]:
    """One entity's row (its fields, as ``SlotState.export`` copies them out) as plain JSON-able
    values (see ``export_entity``). ``source`` says where the row was read (shown as ``checkpoint``)."""
    n_features = row["nmean"].shape[0]
    features = list(cfg.features) if len(cfg.features) == n_features else [f"f{i}" for i in range(n_features)]
    sc = row["sc"]
    count = int(row["count"])
    window = row["ring_in"].shape[0]
    inputs = features + _time_feature_names(cfg)
    # A row written under other time features cannot be unrolled with this config's: no history then.
    fits = row["ring_in"].shape[1] == stored_inputs(n_features, int(cfg.time_features.daily_profile_bins))
    n_hist = min(count, window) if fits and row.get("pool_row", 1) else 0   # pool_row 0: keeps no ring
    unrolled = np.zeros((1, n_hist, len(inputs)), dtype=np.float32)
    if n_hist:
        kp = kernel_params_from_config(cfg.time_features, cfg.scoring, cfg.late_tolerance_seconds)
        unroll_windows(np.zeros(1, dtype=np.int64), np.array([count], dtype=np.int64), n_features, kp,
                       row["ring_in"][None], row["ring_t"][None], unrolled)
    flags = flags_by_position(row["ring_flag"], window)
    history = [{"input": dict(zip(inputs, unrolled[0, i].astype(float).tolist())),
                "anomaly": bool(flags[(count - n_hist + i) % window])}
               for i in range(n_hist)]
    alarmed = bool(sc[C.SC_ALARMED])
    return {
        "detector": unit.detector,
        "entity": None,   # filled by the caller
        "unit": {"topic": unit.topic, "partition": unit.partition},
        "checkpoint": source,
        "model_type": model_type,
        "model_version": model_version,
        "event_count": count,
        "last_event_time": _iso(float(row["last_ts"])) if count else None,
        "last_event_epoch": float(row["last_ts"]) if count else None,
        "normaliser": {f: {"mean": float(row["nmean"][i]), "std": math.sqrt(max(float(row["nvar"][i]), 0.0))}
                       for i, f in enumerate(features)},
        "next_prediction_normalised": dict(zip(features, row["pred"].astype(float).tolist())),
        "scorer": {
            "errors_seen": int(sc[C.SC_N]),
            "alarmed": alarmed,
            "last_alarm_event_count": int(sc[C.SC_ALARM_N]) if alarmed else None,
            "last_alarm_time": _iso(float(sc[C.SC_ALARM_T])) if alarmed else None,
            "last_alarm_score": float(C.p_to_score(C.stored_alarm_logp(sc[C.SC_ALARM_LOGP]))) if alarmed else None,
            "features": {f: _feature_stats(sc, i) for i, f in enumerate(features)},
        },
        "recurrent_state": {k: v.astype(float).tolist() for k, v in row.items() if k not in COMMON_FIELDS},
        "history": history,
    }


def export_entity(cfg: Config, detector: str, entity: str, partition: str | None = None) -> dict[str, Any]:
    """The state of ``entity`` in the newest readable checkpoint of the detector's units.

    When several units hold the entity, the one with its latest event is returned and the others
    are listed under ``also_in``. Raises RnnstreamError naming what was searched when it is absent.
    """
    det_cfg = cfg.detector(detector) if detector in {d.name for d in cfg.detectors} else None
    if det_cfg is None:
        raise RnnstreamError(f"no detector named {detector!r} in the config; it has {[d.name for d in cfg.detectors]}")
    store = CheckpointStore(cfg.state_dir, cfg.checkpoint.keep_generations)
    units = find_units(cfg.state_dir, detector, partition)
    if not units:
        raise RnnstreamError(nothing_found(cfg.state_dir, detector, partition))
    found, searched = [], []
    for unit in units:
        got = _newest_readable(store, unit)
        if got is None:
            searched.append(f"{unit.label} (no readable checkpoint)")
            continue
        path, arrays, meta = got
        try:
            slots = SlotState.from_snapshot(arrays, meta)
        except (KeyError, ValueError) as exc:
            searched.append(f"{path} (unreadable state: {exc})")
            continue
        searched.append(f"{path} ({len(slots)} entities)")
        blob = slots.export([entity])
        if blob.entities:
            source = {"path": str(path), "generation": meta.get("generation"),
                      "created_at": _iso(meta.get("created_at")), "next_offset": meta.get("next_offset"),
                      "config_matches_shape": meta.get("shape_fingerprint") == shape_fingerprint(det_cfg)}
            row = {k: v[0] for k, v in blob.arrays.items()}
            state = entity_state(det_cfg, unit, source, row, meta.get("model_type"), _model_version(arrays))
            state["entity"] = entity
            found.append(state)
    return _latest(found, f"entity {entity!r} is in none of the newest checkpoints of detector {detector!r}; "
                          "searched: " + "; ".join(searched))


@dataclass
class ChangelogPartition:
    """What one changelog partition holds for one input partition (``changelog_partitions``)."""

    changelog: str
    partition: int
    input_topic: str
    restored: Any           # rnnstream.daemon.changelog.Restored
    codec: Any              # the RowCodec that reads its rows into the config's (an earlier scorer layout's too)

    @property
    def label(self) -> str:
        return f"{self.changelog}[{self.partition}]"


def _detectors(cfg: Config, detector: str | None) -> list:
    if detector is not None and detector not in {d.name for d in cfg.detectors}:
        raise RnnstreamError(f"no detector named {detector!r} in the config; it has {[d.name for d in cfg.detectors]}")
    return [d for d in cfg.detectors if detector is None or d.name == detector]


def changelog_partitions(cfg: Config, det_cfg: Any, partition: str | None = None, reader: Any = None):
    """Yield a ``ChangelogPartition`` per input partition of ``det_cfg`` (only ``partition``,
    "TOPIC-N", when given) whose changelog partition holds records of it, read up to its end
    (read_committed). RnnstreamError when the changelog is off or its topic does not exist."""
    from ..daemon import changelog as cl
    from ..detector import Detector

    if cfg.kafka is None or not cfg.processing.changelog:
        raise RnnstreamError("--from-kafka needs a 'kafka' section and processing.changelog: true in the config")
    topic = cl.changelog_topic(cfg, det_cfg.name)
    own = reader is None
    reader = reader or cl.Reader(lambda: cl.restore_consumer(cfg))
    det = Detector(det_cfg, background=False)
    codec = cl.RowCodec(det.state)
    wanted = parse_partition(partition) if partition else None
    try:
        parts = reader.partitions(topic)
        if not parts:
            raise RnnstreamError(f"changelog topic {topic!r} does not exist (or has no partitions)")
        for input_topic in det_cfg.topics:
            for p in parts:
                if wanted is not None and wanted != (input_topic, p):
                    continue
                restored = reader.read(topic, p, input_topic)
                if restored.records:
                    head = restored.head
                    fits = None if head is None else cl.codec_for(det, head)
                    yield ChangelogPartition(topic, p, input_topic, restored, fits or codec)
    finally:
        det.close()
        if own:
            reader.close()


def export_entity_from_kafka(cfg: Config, detector: str, entity: str, partition: str | None = None,
                             reader: Any = None) -> dict[str, Any]:
    """``export_entity`` from the detector's changelog topic instead of ``state_dir``: the entity's
    state as of the last complete commit of each partition (read_committed). RnnstreamError when the
    changelog is off, missing, or does not hold the entity."""
    det_cfg = _detectors(cfg, detector)[0]
    found, searched = [], []
    for part in changelog_partitions(cfg, det_cfg, partition, reader):
        restored, head = part.restored, part.restored.head
        searched.append(f"{part.label} for {part.input_topic} ({len(restored.entities)} entities)")
        chunks = restored.entities.get(entity)
        if head is None or not chunks or any(c is None for c in chunks):
            continue
        try:
            blob = part.codec.decode([entity], [b"".join(chunks)])
        except ValueError as exc:
            searched[-1] += f": unreadable ({exc})"
            continue
        source = {"changelog": part.changelog, "partition": part.partition, "read_to_offset": restored.end_offset,
                  "next_offset": head.get("next_offset"), "written_at": _iso(head.get("written_at")),
                  "config_matches_shape": head.get("shape_fingerprint") == shape_fingerprint(det_cfg)}
        row = {k: v[0] for k, v in blob.arrays.items()}
        state = entity_state(det_cfg, Unit(detector, part.input_topic, part.partition, Path(part.changelog)),
                             source, row, head.get("model_type"), head.get("model_version"))
        state["entity"] = entity
        found.append(state)
    from ..daemon.changelog import changelog_topic
    return _latest(found, f"entity {entity!r} is in no partition of changelog {changelog_topic(cfg, detector)!r}; "
                          "searched: " + "; ".join(searched))


def _latest(found: list[dict[str, Any]], absent: str) -> dict[str, Any]:
    """The state with the entity's latest event, the other units listed under ``also_in``;
    RnnstreamError(``absent``) when there is none."""
    if not found:
        raise RnnstreamError(absent)
    found.sort(key=lambda s: s["last_event_epoch"] or -math.inf, reverse=True)
    best = found[0]
    best["also_in"] = [s["unit"] for s in found[1:]]
    return best


# -- entry points ------------------------------------------------------------------------------------

def inspect_main(config_path: str, detector: str | None = None, as_json: bool = False,
                 out: TextIO | None = None, from_kafka: bool = False) -> int:
    """``rnnstream state inspect``: 0 when every unit's newest checkpoint is valid (or there is no
    checkpoint yet: a fresh state_dir is not an error), 1 when one is unreadable. With ``from_kafka``
    the same of each changelog partition's last complete commit."""
    out = out or sys.stdout
    cfg = load_config_file(config_path)
    units = inspect_changelog(cfg, detector) if from_kafka else inspect_state(cfg, detector)
    if as_json:
        print(json.dumps([asdict(u) for u in units], indent=2), file=out)
    elif not units and from_kafka:
        print(f"no changelog records for {f'detector {detector!r}' if detector else 'any detector'}", file=out)
    elif not units:
        print(nothing_found(cfg.state_dir, detector, None), file=out)
    else:
        print(format_inspect(units), file=out)
    return 0 if all(u.newest_valid for u in units) else 1


def export_main(config_path: str, detector: str, entity: str, partition: str | None = None,
                out: TextIO | None = None, from_kafka: bool = False) -> int:
    """``rnnstream state export``: the entity's state as JSON on ``out`` (RnnstreamError when absent),
    from ``state_dir`` or, with ``from_kafka``, from the detector's changelog topic."""
    out = out or sys.stdout
    cfg = load_config_file(config_path)
    state = (export_entity_from_kafka if from_kafka else export_entity)(cfg, detector, entity, partition)
    print(json.dumps(json_safe(state), indent=2, allow_nan=False), file=out)
    return 0


def json_safe(value: Any) -> Any:
    """``value`` with every NaN/inf float replaced by None, so the output is strict JSON (a checkpoint
    written before values were range-checked may hold them)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    return value
