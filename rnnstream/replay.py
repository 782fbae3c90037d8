"""``rnnstream replay``: run one detector over a CSV or JSON-lines file and write every event's results.

Column (or field) names come from the detector's config: ``entity.field``, ``timestamp.field`` with its
unit, and ``features``. A file without the entity column is one entity named after the file. Rows
are processed in file order, in micro-batches, with inline (deterministic) retraining. Rows that are
refused (missing or non-numeric fields, non-finite values) are counted by reason and reported, and
appear in the output with an empty score and their reason.
"""

from __future__ import annotations

import csv
import logging
from collections import Counter
from dataclasses import dataclass, field as dc_field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import orjson

from .detector import Detector
from .errors import InputRejected, RnnstreamError
from .events import field, number, to_seconds
from .kernels.calibrate import FLAG_ANOMALY, FLAG_SUPPRESSED, KIND_NAMES

log = logging.getLogger(__name__)
BATCH = 1024


@dataclass
class ReplaySummary:
    events: int = 0
    processed: int = 0
    anomalies: list[tuple[str, float, float]] = dc_field(default_factory=list)  # (entity, ts, score)
    rejected: Counter = dc_field(default_factory=Counter)


def read_records(path: Path) -> Iterator[dict[str, Any]]:
    """Rows of a ``.csv`` (with header) or ``.jsonl`` file as dicts."""
    if path.suffix == ".csv":
        with path.open(newline="") as fh:
            yield from csv.DictReader(fh)
    elif path.suffix in (".jsonl", ".ndjson", ".json"):
        with path.open("rb") as fh:
            for n, line in enumerate(fh, 1):
                if line.strip():
                    try:
                        yield orjson.loads(line)
                    except orjson.JSONDecodeError as exc:
                        raise RnnstreamError(f"{path}:{n}: not JSON ({exc})") from None
    else:
        raise RnnstreamError(f"{path}: expected a .csv or .jsonl file")


def parse_record(rec: dict[str, Any], cfg: Any, default_entity: str) -> tuple[str, np.ndarray, float]:
    """(entity, features, seconds) of one record; raises InputRejected."""
    ent_field = cfg.entity.field
    entity = str(rec[ent_field]) if ent_field and rec.get(ent_field) not in (None, "") else default_entity
    ts_field = cfg.timestamp.field or "timestamp"
    t = to_seconds(field(rec, ts_field), cfg.timestamp.unit, ts_field)
    x = np.array([number(field(rec, f), f) for f in cfg.features])
    return entity, x, t


def replay(cfg: Any, input_path: str | Path, output_path: str | Path, plot_path: str | Path | None = None) -> ReplaySummary:
    """Replay ``input_path`` through a fresh detector built from ``cfg``; write ``output_path`` (CSV)."""
    input_path, output_path = Path(input_path), Path(output_path)
    det = Detector(cfg, background=False)
    summary = ReplaySummary()
    names = list(cfg.features)
    header = ["entity", "timestamp", *names, *(f"{n}_predicted" for n in names), "error", "score",
              "anomaly", "suppressed", "kind", "blamed", "model_version", "rejected"]
    plot_rows: list[tuple] = []
    try:
        with output_path.open("w", newline="") as fh:
            writer = csv.writer(fh)
            writer.writerow(header)
            batch: list[tuple[dict, tuple | None, str]] = []
            for rec in read_records(input_path):
                summary.events += 1
                try:
                    batch.append((rec, parse_record(rec, cfg, input_path.stem), ""))
                except InputRejected as exc:
                    summary.rejected[exc.reason] += 1
                    batch.append((rec, None, exc.reason))
                if len(batch) >= BATCH:
                    _flush(det, batch, writer, summary, plot_rows)
                    batch = []
            _flush(det, batch, writer, summary, plot_rows)
    finally:
        det.close()
    if plot_path is not None:
        from .plot import plot_entity

        plot_entity(plot_rows, names, plot_path)
    return summary


def _blame(kind: np.ndarray, names: list[str]) -> tuple[str, str]:
    """The ``kind`` and ``blamed`` cells: the distinct kinds ('+'-joined) and the blamed features (';')."""
    blamed = [(names[f], KIND_NAMES[int(k)]) for f, k in enumerate(kind) if k]
    kinds = "+".join(dict.fromkeys(k for _, k in blamed))
    return kinds, ";".join(n for n, _ in blamed)


def _flush(det: Detector, batch: list, writer: Any, summary: ReplaySummary, plot_rows: list) -> None:
    good = [k for k, (_, parsed, _) in enumerate(batch) if parsed is not None]
    if not good:
        rows = []
    else:
        ents = [batch[k][1][0] for k in good]
        x = np.stack([batch[k][1][1] for k in good])
        ts = np.array([batch[k][1][2] for k in good])
        res = det.process(ents, x, ts)
        for pos, reason in res.rejected:
            k = good[pos]
            rec, _, _ = batch[k]
            batch[k] = (rec, None, reason)
            summary.rejected[reason] += 1
        rows = []
        for j, pos in enumerate(res.index):
            k = good[int(pos)]
            entity, xv, t = batch[k][1]
            flag = int(res.flag[j])
            rows.append((k, [entity, datetime.fromtimestamp(t, timezone.utc).isoformat(), *map(repr, xv.tolist()), *map(repr, res.pred[j].tolist()),
                             f"{res.err[j]:.6g}", f"{res.score[j]:.6g}", int(bool(flag & FLAG_ANOMALY)),
                             int(bool(flag & FLAG_SUPPRESSED)), *_blame(res.kind[j], list(det.cfg.features)), int(res.model_version[j]), ""]))
            plot_rows.append((entity, t, xv.copy(), res.pred[j].copy(), float(res.score[j]), bool(flag & FLAG_ANOMALY)))
            if flag & FLAG_ANOMALY:
                summary.anomalies.append((entity, t, float(res.score[j])))
        summary.processed += len(res.index)
    done = {k for k, _ in rows}
    width = 9 + 2 * det.n_features  # every column but the last, "rejected"
    for k, (_, _, reason) in enumerate(batch):
        if k not in done:
            rows.append((k, [""] * width + [reason]))
    for _, row in sorted(rows, key=lambda r: r[0]):
        writer.writerow(row)
