"""The generic labelled-corpus layout: many entities per stream, 1 to 16 features, typed windows.

Layout (``root``, e.g. ``out/corpus/metrics-0``)::

    corpus.json                      {"name", "seed", "definition", "categories": {...}} (informative)
    data/<category>/<stream>.csv     entity,timestamp,<feature>,...   one stream per file
    labels/windows.json              {"<category>/<stream>.csv": [window, ...]}

A stream is identified by its *key*, the path relative to ``data/`` (as in NAB); its category is
the directory. In a data file, ``timestamp`` is ``YYYY-MM-DD HH:MM:SS`` (UTC, whole seconds, as in
NAB), ``entity`` any string, every other column a numeric feature (the header names them; every
row has every feature). Rows are in arrival order: the order a detector sees them (timestamps of one
entity increase; entities interleave).

A window is ``{"entity", "start", "end", "type", "features": [names]}`` with inclusive
``start``/``end`` timestamps of that entity's rows; ``type`` names the anomaly kind (free text, e.g.
``extremum``). Windows of one entity must not overlap. A stream with no windows may be absent from
``labels/windows.json`` or map to ``[]``.

Guaranteed by :func:`read_stream`: float64 features, int64 epoch seconds, entity codes in first-seen
order. Checked by :func:`load_windows`: every window names an entity and features of its stream,
start <= end.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from rnnstream.nab.dataset import NabDataError, parse_timestamps, read_csv_columns, read_parsed, to_float
from rnnstream.nab.report import format_timestamps

MANIFEST = "corpus.json"
WINDOWS_FILE = Path("labels") / "windows.json"


class CorpusDataError(NabDataError):
    """A generic-layout file is missing or malformed. The message names the file at fault."""


@dataclass(frozen=True)
class Window:
    """One labelled anomaly of one entity: inclusive epoch-second bounds, kind, affected features."""

    entity: str
    start: int
    end: int
    type: str
    features: tuple[str, ...]

    def to_json(self) -> dict:
        d = asdict(self)
        d["start"], d["end"] = format_timestamps([self.start, self.end])
        d["features"] = list(self.features)
        return d


@dataclass
class Stream:
    """One data file: rows in arrival order."""

    key: str
    entity_names: list[str]      # entity code -> name
    entity: np.ndarray           # (N,) int64 codes into entity_names
    timestamps: np.ndarray       # (N,) int64 epoch seconds
    values: np.ndarray           # (N, F) float64
    features: list[str]

    @property
    def category(self) -> str:
        return category_of(self.key)

    def rows_of(self, code: int) -> np.ndarray:
        """Row indices of one entity, in arrival order."""
        return np.flatnonzero(self.entity == code)


def category_of(key: str) -> str:
    category, _, name = key.rpartition("/")
    if not category or not name:
        raise CorpusDataError(f"{key!r}: a stream key looks like '<category>/<stream>.csv'")
    return category


def list_streams(root: str | Path) -> list[str]:
    """Sorted keys of every ``data/<category>/<stream>.csv`` under ``root``."""
    data = Path(root) / "data"
    if not data.is_dir():
        raise CorpusDataError(f"{data}: corpus data directory not found (expected data/<category>/<stream>.csv)")
    return sorted(p.relative_to(data).as_posix() for p in data.glob("*/*.csv"))


def write_stream(root: str | Path, stream: Stream) -> Path:
    """Write ``data/<key>``; numbers use Python's shortest round-trip repr."""
    path = Path(root) / "data" / stream.key
    path.parent.mkdir(parents=True, exist_ok=True)
    ts = format_timestamps(stream.timestamps)
    names = [stream.entity_names[c] for c in stream.entity.tolist()]
    with path.open("w", newline="") as fh:
        fh.write(",".join(["entity", "timestamp", *stream.features]) + "\n")
        fh.writelines(f"{e},{t}," + ",".join(map(repr, row)) + "\n"
                      for e, t, row in zip(names, ts, stream.values.tolist()))
    return path


def read_stream(root: str | Path, key: str) -> Stream:
    """Read ``data/<key>``: every column but ``entity`` and ``timestamp`` is a feature."""
    path = Path(root) / "data" / key
    try:
        with path.open() as fh:
            header = [h.strip() for h in fh.readline().rstrip("\n").split(",")]
    except OSError as exc:
        raise CorpusDataError(f"{path}: cannot read ({exc.strerror})") from None
    features = [h for h in header if h not in ("entity", "timestamp")]
    if not features:
        raise CorpusDataError(f"{path}: header {header} has no feature column besides entity and timestamp")
    cols = read_csv_columns(path, ("entity", "timestamp", *features))
    index: dict[str, int] = {}
    codes = np.fromiter((index.setdefault(e, len(index)) for e in cols["entity"]), dtype=np.int64,
                        count=len(cols["entity"]))
    values = np.column_stack([to_float(cols[f], f"{path} column {f!r}") for f in features]) \
        if codes.size else np.empty((0, len(features)))
    return Stream(key, list(index), codes, parse_timestamps(cols["timestamp"], str(path)).astype(np.int64),
                  values, features)


def write_windows(root: str | Path, windows: dict[str, list[Window]]) -> Path:
    path = Path(root) / WINDOWS_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({k: [w.to_json() for w in v] for k, v in sorted(windows.items())}, indent=1) + "\n")
    return path


def load_windows(root: str | Path) -> dict[str, list[Window]]:
    """``labels/windows.json`` as ``{key: [Window, ...]}`` (file order kept)."""
    path = Path(root) / WINDOWS_FILE
    raw = read_parsed(path, json.loads, "JSON", (json.JSONDecodeError,), CorpusDataError)
    if not isinstance(raw, dict):
        raise CorpusDataError(f"{path}: expected an object mapping stream keys to window lists")
    out: dict[str, list[Window]] = {}
    for key, wins in raw.items():
        where = f"{path} [{key!r}]"
        parsed = []
        for n, w in enumerate(wins if isinstance(wins, list) else [None]):
            try:
                start, end = parse_timestamps([w["start"], w["end"]], where).astype(np.int64).tolist()
                win = Window(str(w["entity"]), start, end, str(w["type"]), tuple(str(f) for f in w["features"]))
            except (KeyError, TypeError):
                raise CorpusDataError(f"{where}: window {n} needs entity, start, end, type and features") from None
            if win.end < win.start:
                raise CorpusDataError(f"{where}: window {n} ends before it starts")
            parsed.append(win)
        out[key] = parsed
    return out


def check_windows(stream: Stream, windows: list[Window], where: str) -> None:
    """Raise CorpusDataError if a window names an unknown entity or feature, or windows overlap."""
    by_entity: dict[str, list[Window]] = {}
    for w in windows:
        if w.entity not in stream.entity_names:
            raise CorpusDataError(f"{where}: window of unknown entity {w.entity!r}")
        unknown = [f for f in w.features if f not in stream.features]
        if unknown:
            raise CorpusDataError(f"{where}: window of {w.entity!r} names unknown features {unknown}")
        by_entity.setdefault(w.entity, []).append(w)
    for ent, ws in by_entity.items():
        ws = sorted(ws, key=lambda w: w.start)
        for a, b in zip(ws, ws[1:]):
            if b.start <= a.end:
                raise CorpusDataError(f"{where}: windows of {ent!r} overlap ({a.type} and {b.type})")


def write_manifest(root: str | Path, manifest: dict) -> Path:
    path = Path(root) / MANIFEST
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n")
    return path
