"""``rnnstream replay``: run one detector over a CSV or JSON-lines file and write every event's results.

Fields are read with the daemon's parser (``rnnstream.events.RecordParser``): ``entity.field``,
``timestamp.field`` with its unit, and ``features``, as dotted paths. With ``entity.from_key`` the
entity comes from a ``key`` column, with ``timestamp.from_record`` the time from a ``timestamp`` column
in milliseconds (the Kafka record's key and timestamp). A file whose first row has no entity is one
entity named after the file. Rows are processed in file order, in micro-batches, with inline
(deterministic) retraining. Refused rows are counted by reason, the first of each reason kept as an
example, and appear in the output with an empty score and their reason.

``check_paths`` refuses unusable paths before any work starts. Not guaranteed: the daemon's exact
scores, which come from one model per partition fed that partition's events (see the README's
runbook: replay one partition's events from its checkpoint's offset to reproduce them).
"""

from __future__ import annotations

import csv
import logging
import os
from collections import Counter
from dataclasses import dataclass, field as dc_field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import orjson

from .detector import Detector
from .errors import InputRejected, RnnstreamError
from .events import RecordParser, has_field
from .kernels.calibrate import KIND_NAMES, score_flags
from .progress import progress

log = logging.getLogger(__name__)
BATCH = 1024
SUFFIXES = (".csv", ".jsonl", ".ndjson", ".json")
PLOT_ENTITIES_NAMED = 10


@dataclass
class PlotSeries:
    """The scored events of one entity, in file order, for ``rnnstream.plot.plot_series``."""

    entity: str
    t: list[float] = dc_field(default_factory=list)
    x: list[np.ndarray] = dc_field(default_factory=list)
    pred: list[np.ndarray] = dc_field(default_factory=list)
    z: list[np.ndarray] = dc_field(default_factory=list)
    score: list[float] = dc_field(default_factory=list)
    anomaly: list[bool] = dc_field(default_factory=list)
    suppressed: list[bool] = dc_field(default_factory=list)
    blame: list[np.ndarray] | None = None   # per-feature blame, when the detector's results carry one


@dataclass
class ReplaySummary:
    events: int = 0
    processed: int = 0
    anomalies: list[tuple[str, float, float]] = dc_field(default_factory=list)  # (entity, ts, score)
    rejected: Counter = dc_field(default_factory=Counter)
    examples: dict[str, tuple[int, str, str]] = dc_field(default_factory=dict)   # reason -> (line, detail, row)
    entities: Counter = dc_field(default_factory=Counter)                         # scored events per entity
    columns: list[str] = dc_field(default_factory=list)                           # keys of the first row

    def reject(self, reason: str, line: int, detail: str, record: Any) -> None:
        self.rejected[reason] += 1
        if reason not in self.examples:
            shown = orjson.dumps(record, default=str).decode()
            self.examples[reason] = (line, detail, shown if len(shown) <= 200 else shown[:197] + "...")

    def explain_rejections(self, path: str | Path, limit: int = 3) -> str:
        """The most frequent refusal reasons, each with its first example row, for a person."""
        lines = []
        for reason, n in self.rejected.most_common(limit):
            line, detail, row = self.examples.get(reason, (0, "", ""))
            lines.append(f"  {reason} x{n}: first at {path}:{line}: {detail}")
            lines.append(f"    row: {row}")
            if reason == "missing_field" and self.columns:
                lines.append(f"    the first row has: {', '.join(self.columns)}")
        return "\n".join(lines)


def read_records(path: Path) -> Iterator[dict[str, Any]]:
    """Rows of a ``.csv`` (with header) or ``.jsonl`` file as dicts."""
    for _, rec in numbered_records(Path(path)):
        yield rec


def numbered_records(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """``(line number, row)`` of a ``.csv`` (with header) or ``.jsonl`` file."""
    if path.suffix == ".csv":
        with path.open(newline="") as fh:
            reader = csv.DictReader(fh)
            for rec in reader:
                yield reader.line_num, rec
    elif path.suffix in (".jsonl", ".ndjson", ".json"):
        with path.open("rb") as fh:
            for n, line in enumerate(fh, 1):
                if line.strip():
                    try:
                        yield n, orjson.loads(line)
                    except orjson.JSONDecodeError as exc:
                        raise RnnstreamError(f"{path}:{n}: not JSON ({exc})") from None
    else:
        raise RnnstreamError(f"{path}: expected a .csv or .jsonl file")


def _writable_file(path: Path, what: str) -> None:
    if path.is_dir():
        raise RnnstreamError(f"{what} {path} is a directory; give a file name")
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir():
        raise RnnstreamError(f"{what} {path}: directory {parent} does not exist (create it first)")
    if not os.access(parent, os.W_OK | os.X_OK) or (path.exists() and not os.access(path, os.W_OK)):
        raise RnnstreamError(f"{what} {path}: not writable by this user")


def check_outputs(output_path: str | Path, plot_path: str | Path | None = None) -> None:
    """Raise RnnstreamError naming the first output (CSV, PNG) that cannot be written; nothing is written."""
    out = Path(output_path)
    _writable_file(out, "--output")
    if plot_path is not None:
        png = Path(plot_path)
        _writable_file(png, "--plot")
        if png.resolve() == out.resolve():
            raise RnnstreamError("--plot must differ from --output")
        from .plot import require_matplotlib

        require_matplotlib()


def check_paths(input_path: str | Path, output_path: str | Path, plot_path: str | Path | None = None) -> None:
    """Raise RnnstreamError naming the first unusable path; nothing is written."""
    src, out = Path(input_path), Path(output_path)
    if not src.exists():
        raise RnnstreamError(f"--input {src}: no such file")
    if not src.is_file():
        raise RnnstreamError(f"--input {src}: not a regular file")
    if src.suffix not in SUFFIXES:
        raise RnnstreamError(f"--input {src}: expected a .csv or .jsonl file")
    if not os.access(src, os.R_OK):
        raise RnnstreamError(f"--input {src}: not readable by this user")
    check_outputs(out, plot_path)
    if src.resolve() in {out.resolve(), *([Path(plot_path).resolve()] if plot_path is not None else [])}:
        raise RnnstreamError("--output and --plot must differ from --input")


def _count_rows(path: Path) -> int:
    """Rows of the file, for the progress bar (lines, minus a CSV header)."""
    n = 0
    with path.open("rb") as fh:
        while chunk := fh.read(1 << 20):
            n += chunk.count(b"\n")
    return max(n - (path.suffix == ".csv"), 0)


class _Source:
    """The parser of one file, with replay's stand-ins for the Kafka key and record timestamp."""

    def __init__(self, cfg: Any, first: dict[str, Any], stem: str):
        self.from_key = bool(cfg.entity.from_key)
        self.from_record = bool(cfg.timestamp.from_record)
        one_entity = (not has_field(first, "key")) if self.from_key else not has_field(first, cfg.entity.field)
        self.stem = stem if one_entity else None
        self.parser = RecordParser(cfg, default_entity=None if self.from_key else self.stem)

    def parse(self, rec: dict[str, Any]) -> tuple[str, list[float], float]:
        key = (self.stem or rec.get("key")) if self.from_key else None
        ts_ms = None
        if self.from_record:
            try:
                ts_ms = float(rec.get("timestamp"))   # a CSV cell is text
            except (TypeError, ValueError):
                ts_ms = None
        return self.parser.parse(rec, key=key, record_ts_ms=ts_ms)


def replay(cfg: Any, input_path: str | Path, output_path: str | Path, plot_path: str | Path | None = None, *,
           entity: str | None = None, show_progress: bool | None = None) -> ReplaySummary:
    """Replay ``input_path`` through a fresh detector built from ``cfg``; write ``output_path`` (CSV).

    With ``plot_path``, also draw ``entity`` (default: the first one scored). Paths are checked first.
    """
    check_paths(input_path, output_path, plot_path)
    input_path, output_path = Path(input_path), Path(output_path)
    summary = ReplaySummary()
    names = list(cfg.features)
    header = ["entity", "timestamp", *names, *(f"{n}_predicted" for n in names), "error", "score",
              "anomaly", "suppressed", "anomalous", "kind", "blamed", "model_version", "rejected"]
    series = PlotSeries(entity) if entity is not None else None
    want_plot = plot_path is not None
    det = Detector(cfg, background=False)
    bar = progress(total=_count_rows(input_path), desc=f"replay {input_path.name}", unit="rows",
                   enabled=show_progress)
    try:
        with output_path.open("w", newline="") as fh:
            writer = csv.writer(fh)
            writer.writerow(header)
            batch: list[tuple[int, dict, tuple | None, str]] = []
            source = None
            for line, rec in numbered_records(input_path):
                if source is None:
                    source = _Source(cfg, rec, input_path.stem)
                    summary.columns = list(rec)[:20] if isinstance(rec, dict) else []
                summary.events += 1
                try:
                    if not isinstance(rec, dict):
                        raise InputRejected("not_object", f"row is a JSON {type(rec).__name__}, expected an object")
                    batch.append((line, rec, source.parse(rec), ""))
                except InputRejected as exc:
                    summary.reject(exc.reason, line, exc.detail, rec)
                    batch.append((line, rec, None, exc.reason))
                if len(batch) >= BATCH:
                    series = _flush(det, batch, writer, summary, series, want_plot)
                    bar.update(len(batch))
                    batch = []
            series = _flush(det, batch, writer, summary, series, want_plot)
            bar.update(len(batch))
    finally:
        bar.close()
        det.close()
    if want_plot:
        from .plot import plot_series

        if series is None or not series.t:
            seen = ", ".join(e for e, _ in summary.entities.most_common(PLOT_ENTITIES_NAMED))
            more = f" (and {len(summary.entities) - PLOT_ENTITIES_NAMED} more)" if len(summary.entities) > PLOT_ENTITIES_NAMED else ""
            what = f"entity {entity!r} has no scored events" if entity is not None else "no event was scored"
            raise RnnstreamError(f"--plot: {what}; nothing drawn." + (f" Entities scored: {seen}{more}" if seen else ""))
        plot_series(series, names, plot_path, threshold=float(cfg.scoring.threshold))
    return summary


def _blame(kind: np.ndarray, names: list[str]) -> tuple[str, str]:
    """The ``kind`` and ``blamed`` cells: the distinct kinds ('+'-joined) and the blamed features (';')."""
    blamed = [(names[f], KIND_NAMES[int(k)]) for f, k in enumerate(kind) if k]
    kinds = "+".join(dict.fromkeys(k for _, k in blamed))
    return kinds, ";".join(n for n, _ in blamed)


def _flush(det: Detector, batch: list, writer: Any, summary: ReplaySummary, series: PlotSeries | None,
           want_plot: bool) -> PlotSeries | None:
    good = [k for k, item in enumerate(batch) if item[2] is not None]
    rows = []
    if good:
        ents = [batch[k][2][0] for k in good]
        x = np.array([batch[k][2][1] for k in good], dtype=np.float64).reshape(len(good), det.n_features)
        ts = np.array([batch[k][2][2] for k in good], dtype=np.float64)
        res = det.process(ents, x, ts)
        blame = res.kind != 0          # (events, features): the features each anomaly blames
        names = list(det.cfg.features)
        for pos, reason in res.rejected:
            k = good[pos]
            line, rec, _, _ = batch[k]
            batch[k] = (line, rec, None, reason)
            summary.reject(reason, line, f"refused by the detector ({reason})", rec)
        flags = [column.tolist() for column in score_flags(res.flag)]
        for j, pos in enumerate(res.index):
            k = good[int(pos)]
            entity, xv, t = batch[k][2]
            anomaly, suppressed, anomalous = (column[j] for column in flags)
            rows.append((k, [entity, datetime.fromtimestamp(t, timezone.utc).isoformat(), *map(repr, xv),
                             *map(repr, res.pred[j].tolist()), f"{res.err[j]:.6g}", f"{res.score[j]:.6g}",
                             int(anomaly), int(suppressed), int(anomalous), *_blame(res.kind[j], names), int(res.model_version[j]), ""]))
            summary.entities[entity] += 1
            if want_plot:
                if series is None:
                    series = PlotSeries(entity)
                if entity == series.entity:
                    series.t.append(t)
                    series.x.append(np.asarray(xv, dtype=np.float64))
                    series.pred.append(res.pred[j].copy())
                    series.z.append(res.z[j].copy())
                    series.score.append(float(res.score[j]))
                    series.anomaly.append(anomaly)
                    series.suppressed.append(suppressed)
                    if series.blame is None:
                        series.blame = []
                    series.blame.append(blame[j].copy())
            if anomaly:
                summary.anomalies.append((entity, t, float(res.score[j])))
        summary.processed += len(res.index)
    done = {k for k, _ in rows}
    width = 10 + 2 * det.n_features  # every column but the last, "rejected"
    for k, item in enumerate(batch):
        if k not in done:
            rows.append((k, [""] * width + [item[3]]))
    for _, row in sorted(rows, key=lambda r: r[0]):
        writer.writerow(row)
    return series
