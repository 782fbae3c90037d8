"""``rnnstream reproduce``: the daemon's exact scores for one partition, from its checkpoint and its records.

The daemon keeps one model per (detector, partition), so a replay of one entity's events from
scratch does not give its scores. This does: it restores the partition's checkpoint from the
config's ``state_dir`` (the newest generation at or before ``until_offset``; point ``-c`` at a config
whose ``state_dir`` holds a copy), reads the partition's records from the checkpoint's offset up to
``until_offset`` (or the end offsets seen at the start) without a consumer group, decodes them with
the daemon's decoder and scores them with a restored detector, as the daemon did. Scores depend only
on the input stream, never on batching, so they equal the daemon's (``event_id``s included).

``from_beginning`` starts a fresh detector at the partition's first retained offset instead, which
equals the daemon only if it started there too (``auto_offset_reset: earliest`` with nothing deleted).

Output: one CSV row per record (replay's columns plus ``offset``), and optionally a plot of one
entity. Not guaranteed: a reproduction when the records before ``until_offset`` were deleted by
retention, or when the configuration's scoring settings changed since the checkpoint.
"""

from __future__ import annotations

import csv
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, TextIO

import numpy as np
from kafka import KafkaConsumer, TopicPartition
from kafka.errors import KafkaError

from ..config import Config, load_config_file
from ..daemon.checkpoint import CheckpointStore, restore_detector, shape_fingerprint
from ..daemon.decode import decode_batch
from ..detector import Detector
from ..errors import RnnstreamError, StateFormatError
from ..kernels.calibrate import score_flags
from ..progress import progress
from ..replay import PlotSeries, check_outputs
from ..state.fileformat import read_state_file
from .state_cmd import parse_partition


def restore_at(cfg: Config, detector: str, topic: str, partition: int, until_offset: int | None) -> tuple[Detector, int, str]:
    """``(detector, next_offset, description)`` from the newest readable checkpoint generation whose
    ``next_offset`` is at most ``until_offset`` (any, when None)."""
    det_cfg = cfg.detector(detector)
    store = CheckpointStore(cfg.state_dir, cfg.checkpoint.keep_generations)
    tp = (topic, partition)
    gens = store.generations(detector, tp)
    if not gens:
        raise RnnstreamError(f"no checkpoint of {detector}/{topic}-{partition} under {store.root} "
                             "(rnnstream state inspect lists them; --from-beginning starts fresh)")
    seen = []
    for generation, path in gens:
        try:
            arrays, meta = read_state_file(path)
        except StateFormatError:
            continue
        offset = int(meta.get("next_offset", -1))
        seen.append(offset)
        if until_offset is not None and offset > until_offset:
            continue
        if meta.get("shape_fingerprint") != shape_fingerprint(det_cfg):
            raise RnnstreamError(f"{path} was made for another model shape than detector {detector!r} has now")
        det = restore_detector(det_cfg, arrays, meta, background=False)
        return det, offset, f"checkpoint generation {generation} ({path}), next offset {offset}"
    raise RnnstreamError(f"every readable checkpoint of {detector}/{topic}-{partition} starts after offset "
                         f"{until_offset} (at {sorted(seen)}): the state before it is gone; --from-beginning "
                         "replays the partition from its first retained record instead")


def reproduce(cfg: Config, detector: str, partition: str, output: str | Path, *, until_offset: int | None = None,
              from_beginning: bool = False, plot: str | Path | None = None, entity: str | None = None,
              timeout_s: float = 60.0, out: TextIO | None = None) -> dict[str, Any]:
    """Score the partition's records as the daemon did (see the module docstring); returns a summary."""
    out = out or sys.stdout
    if cfg.kafka is None:
        raise RnnstreamError("the config has no 'kafka' section: cannot read the partition")
    det_cfg = cfg.detector(detector)
    topic, part = parse_partition(partition)
    if topic not in det_cfg.topics:
        raise RnnstreamError(f"topic {topic!r} is not an input of detector {detector!r} ({', '.join(det_cfg.topics)})")
    check_outputs(output, plot)
    tp = TopicPartition(topic, part)
    timeout_ms = max(1, int(timeout_s * 1000))
    try:
        consumer = KafkaConsumer(**cfg.kafka.client_kwargs(), group_id=None, enable_auto_commit=False,
                                 auto_offset_reset="earliest", allow_auto_create_topics=False,
                                 request_timeout_ms=timeout_ms, bootstrap_timeout_ms=timeout_ms,
                                 max_poll_records=cfg.kafka.max_poll_records)
    except KafkaError as exc:
        raise RnnstreamError(f"cannot reach {', '.join(cfg.kafka.bootstrap_servers)}: {exc} "
                             "(rnnstream check-connection -c FILE tells more)") from None
    try:
        consumer.assign([tp])
        first = consumer.beginning_offsets([tp])[tp]
        end = consumer.end_offsets([tp])[tp] if until_offset is None else until_offset + 1
        if from_beginning:
            det, start, origin = Detector(det_cfg, background=False), first, f"a fresh detector at offset {first}"
        else:
            det, start, origin = restore_at(cfg, detector, topic, part, until_offset)
        if start < first:
            det.close()
            raise RnnstreamError(f"{topic}-{part} starts at offset {first} now (retention): the records "
                                 f"{start}..{first - 1} the checkpoint needs are gone")
        print(f"{detector}/{topic}-{part}: from {origin}, records {start}..{end - 1}", file=out)
        consumer.seek(tp, start)
        summary = _score(consumer, tp, det, det_cfg, start, end, output, entity, plot is not None, timeout_s)
    finally:
        consumer.close()
    if plot is not None:
        from ..plot import plot_series

        series = summary.pop("series")
        if series is None or not series.t:
            raise RnnstreamError(f"--plot: entity {entity!r} has no scored events in these records")
        plot_series(series, list(det_cfg.features), plot, threshold=float(det_cfg.scoring.threshold))
    summary.pop("series", None)
    print(f"{summary['records']} records, {summary['scored']} scored, {summary['anomalies']} anomalies, "
          f"{summary['rejected']} rejected -> {output}" + (f"; plot: {plot}" if plot else ""), file=out)
    return summary


def _score(consumer: Any, tp: Any, det: Detector, cfg: Any, start: int, end: int, output: str | Path,
           entity: str | None, want_plot: bool, timeout_s: float) -> dict[str, Any]:
    names = list(cfg.features)
    header = ["offset", "entity", "timestamp", *names, *(f"{n}_predicted" for n in names), "error", "score",
              "anomaly", "suppressed", "anomalous", "model_version", "rejected"]
    series = PlotSeries(entity) if entity is not None else None
    counts = {"records": 0, "scored": 0, "anomalies": 0, "rejected": 0}
    deadline = time.monotonic() + timeout_s
    bar = progress(total=max(end - start, 0), desc=f"reproduce {tp.topic}-{tp.partition}", unit="records")
    try:
        with Path(output).open("w", newline="") as fh:
            writer = csv.writer(fh)
            writer.writerow(header)
            position = start
            while position < end:
                if time.monotonic() > deadline:
                    raise RnnstreamError(f"timed out after {timeout_s:g}s at offset {position} of {end - 1}")
                records = [r for r in consumer.poll(timeout_ms=1000).get(tp, []) if r.offset < end]
                if not records:
                    position = max(position, consumer.position(tp))
                    continue
                position = records[-1].offset + 1
                rows: dict[int, list] = {}
                dec = decode_batch(records, cfg)
                counts["rejected"] += len(dec.rejects)
                for rej in dec.rejects:
                    rows[rej.record.offset] = [rej.record.offset] + [""] * (len(header) - 2) + [rej.reason]
                if len(dec):
                    res = det.process(dec.entities, dec.x, dec.ts)
                    counts["rejected"] += len(res.rejected)
                    for pos, reason in res.rejected:
                        rows[dec.raw[pos].offset] = [dec.raw[pos].offset] + [""] * (len(header) - 2) + [reason]
                    flags = [column.tolist() for column in score_flags(res.flag)]
                    for j, i in enumerate(res.index.tolist()):
                        anomaly, suppressed, anomalous = (column[j] for column in flags)
                        ent, t = dec.entities[i], float(dec.ts[i])
                        rows[int(dec.offsets[i])] = [
                            int(dec.offsets[i]), ent, datetime.fromtimestamp(t, timezone.utc).isoformat(),
                            *map(repr, dec.x[i].tolist()), *map(repr, res.pred[j].tolist()), f"{res.err[j]:.6g}",
                            f"{res.score[j]:.6g}", int(anomaly), int(suppressed), int(anomalous),
                            int(res.model_version[j]), ""]
                        counts["anomalies"] += anomaly
                        counts["scored"] += 1
                        if want_plot and ent == entity:
                            series.t.append(t)
                            series.x.append(dec.x[i].copy())
                            series.pred.append(res.pred[j].copy())
                            series.z.append(res.z[j].copy())
                            series.score.append(float(res.score[j]))
                            series.anomaly.append(anomaly)
                            series.suppressed.append(suppressed)
                counts["records"] += len(records)
                for offset in sorted(rows):
                    writer.writerow(rows[offset])
                bar.update(len(records))
    finally:
        bar.close()
        det.close()
    return {**counts, "series": series}


def reproduce_main(config: str, detector: str, partition: str, output: str, *, until_offset: int | None = None,
                   from_beginning: bool = False, plot: str | None = None, entity: str | None = None,
                   timeout_s: float = 60.0) -> int:
    """``rnnstream reproduce``."""
    if plot is not None and entity is None:
        raise RnnstreamError("--plot needs --entity (the entity to draw)")
    reproduce(load_config_file(config), detector, partition, output, until_offset=until_offset,
              from_beginning=from_beginning, plot=plot, entity=entity, timeout_s=timeout_s)
    return 0
