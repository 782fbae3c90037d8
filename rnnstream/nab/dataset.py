"""Read a NAB layout directory.

Layout (``root`` is e.g. ``../shared/nab``)::

    data/<category>/<file>.csv        timestamp,value
    labels/combined_windows.json      {"<category>/<file>.csv": [[start, end], ...]}
    profiles.json                     {"<profile>": {"CostMatrix": {"tpWeight": .., "fpWeight": .., "fnWeight": ..}}}

A file is identified by its *key*, the path relative to ``data/`` with forward slashes
(``"realKnownCause/nyc_taxi.csv"``).

Timestamps are returned as ``numpy.datetime64[s]`` arrays. Guaranteed: values are float64, rows
keep file order (not re-sorted), window bounds are whole seconds (a bound with a non-zero
sub-second part is rejected, since NAB matches bounds to rows by exact equality). Not checked
here: that timestamps are increasing, or that window bounds fall on rows (the scorer does that).
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np

from rnnstream.errors import RnnstreamError

WINDOWS_FILE = Path("labels") / "combined_windows.json"


class NabDataError(RnnstreamError):
    """A NAB file is missing or malformed. The message names the file (and row) at fault."""


def list_files(root: str | Path) -> list[str]:
    """Sorted keys of every ``data/<category>/<file>.csv`` under ``root``."""
    data = Path(root) / "data"
    if not data.is_dir():
        raise NabDataError(f"{data}: NAB data directory not found (expected data/<category>/<file>.csv)")
    return sorted(p.relative_to(data).as_posix() for p in data.glob("*/*.csv"))


def parse_timestamps(strings: list[str] | np.ndarray, where: str = "<timestamps>") -> np.ndarray:
    """Parse ``'YYYY-MM-DD HH:MM:SS[.ffffff]'`` strings into ``datetime64[s]``.

    Raises NabDataError if a string does not parse or has a non-zero sub-second part.
    """
    try:
        fine = np.asarray(strings, dtype="datetime64[us]")
    except ValueError as exc:
        raise NabDataError(f"{where}: unparsable timestamp ({exc}); expected 'YYYY-MM-DD HH:MM:SS'") from None
    coarse = fine.astype("datetime64[s]")
    bad = np.flatnonzero(coarse != fine)
    if bad.size:
        raise NabDataError(f"{where}: timestamp {strings[int(bad[0])]!r} has a sub-second part; "
                           "NAB timestamps are whole seconds")
    return coarse


def read_csv_columns(path: str | Path, columns: tuple[str, ...]) -> dict[str, list[str]]:
    """The named columns of a CSV file with a header row, as lists of strings (any column order)."""
    path = Path(path)
    try:
        with path.open(newline="") as fh:
            reader = csv.reader(fh)
            header = [h.strip() for h in next(reader, [])]
            missing = [c for c in columns if c not in header]
            if missing:
                raise NabDataError(f"{path}: header {header} lacks column(s) {missing}")
            idx = [header.index(c) for c in columns]
            rows = [r for r in reader if r]
    except OSError as exc:
        raise NabDataError(f"{path}: cannot read ({exc.strerror})") from None
    out: dict[str, list[str]] = {}
    for c, i in zip(columns, idx):
        try:
            out[c] = [r[i] for r in rows]
        except IndexError:
            short = next(n for n, r in enumerate(rows) if len(r) <= i)
            raise NabDataError(f"{path}: data row {short + 1} has no '{c}' field") from None
    return out


def to_float(strings: list[str], where: str) -> np.ndarray:
    """Strings to float64, naming the first bad row on failure."""
    try:
        return np.asarray(strings, dtype=np.float64)
    except ValueError:
        for n, s in enumerate(strings):
            try:
                float(s)
            except ValueError:
                raise NabDataError(f"{where}: data row {n + 1}: {s!r} is not a number") from None
        raise


def load_series(root: str | Path, key: str) -> tuple[np.ndarray, np.ndarray]:
    """``(timestamps datetime64[s], values float64)`` of ``data/<key>``, in file order."""
    path = Path(root) / "data" / key
    cols = read_csv_columns(path, ("timestamp", "value"))
    return parse_timestamps(cols["timestamp"], str(path)), to_float(cols["value"], str(path))


def read_parsed(path: str | Path, parse, kind: str, invalid: tuple[type[Exception], ...],
                error: type[RnnstreamError] = NabDataError):
    """``parse(text of path)``; an unreadable file or a parse error in ``invalid`` raises ``error`` naming the path."""
    try:
        return parse(Path(path).read_text())
    except OSError as exc:
        raise error(f"{path}: cannot read ({exc.strerror})") from None
    except invalid as exc:
        raise error(f"{path}: not valid {kind} ({exc})") from None


def load_windows(root: str | Path) -> dict[str, list[tuple[np.datetime64, np.datetime64]]]:
    """``labels/combined_windows.json`` as ``{key: [(start, end), ...]}`` with datetime64[s] bounds.

    Windows keep the file's order; each must have start <= end (checked).
    """
    path = Path(root) / WINDOWS_FILE
    raw = read_parsed(path, json.loads, "JSON", (json.JSONDecodeError,))
    if not isinstance(raw, dict):
        raise NabDataError(f"{path}: expected an object mapping file keys to window lists")
    out: dict[str, list[tuple[np.datetime64, np.datetime64]]] = {}
    for key, wins in raw.items():
        where = f"{path} [{key!r}]"
        if not isinstance(wins, list) or any(not isinstance(w, list) or len(w) != 2 for w in wins):
            raise NabDataError(f"{where}: expected a list of [start, end] pairs")
        bounds = parse_timestamps([s for w in wins for s in w], where).reshape(-1, 2)
        for n, (a, b) in enumerate(bounds):
            if b < a:
                raise NabDataError(f"{where}: window {n} ends ({b}) before it starts ({a})")
        out[key] = [(a, b) for a, b in bounds]
    return out


def load_profiles(path: str | Path) -> dict[str, dict[str, float]]:
    """``profiles.json`` as ``{profile: {"tpWeight", "fpWeight", "fnWeight"}}`` (other keys dropped)."""
    path = Path(path)
    try:
        raw = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise NabDataError(f"{path}: cannot read profiles ({exc})") from None
    out = {}
    for name, prof in raw.items():
        cost = prof.get("CostMatrix", prof) if isinstance(prof, dict) else None
        try:
            out[name] = {k: float(cost[k]) for k in ("tpWeight", "fpWeight", "fnWeight")}
        except (KeyError, TypeError, ValueError):
            raise NabDataError(f"{path}: profile {name!r} needs CostMatrix.tpWeight/fpWeight/fnWeight numbers") from None
    return out
