"""``rnnstream plot``: a PNG of one entity, from a replay scores CSV or from the anomalies topic.

* ``--scores FILE``: the CSV ``rnnstream replay`` writes (``entity, timestamp (ISO), <f>...,
  <f>_predicted..., error, score, anomaly, ...``); features are the columns that have a
  ``<f>_predicted`` partner. Rejected rows (empty score) are skipped.
* ``--anomalies``: reads the detector's ``outputs.anomalies_topic`` from the beginning without a
  consumer group (nothing is committed), up to the end offsets seen at the start, ``max_records``
  records or ``timeout_s`` seconds, whichever comes first, and plots the entity's anomaly events
  (observed vs predicted per feature, and scores).

Both draw with ``rnnstream.plot.plot_entity``.
"""

from __future__ import annotations

import csv
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, TextIO

import numpy as np
import orjson
from kafka import KafkaConsumer, TopicPartition
from kafka.errors import KafkaError

from ..config import Config, load_config_file
from ..errors import RnnstreamError
from ..plot import plot_entity


def _seconds(iso: str) -> float:
    dt = datetime.fromisoformat(iso.replace("Z", "+00:00"))
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    return dt.timestamp()


def rows_from_scores(path: str | Path, entity: str) -> tuple[list[tuple], list[str]]:
    """Plot rows ``(entity, t, x, pred, score, anomaly)`` of ``entity`` and the feature names."""
    path = Path(path)
    try:
        fh = path.open(newline="")
    except OSError as exc:
        raise RnnstreamError(f"{path}: cannot read the scores file: {exc.strerror or exc}") from None
    with fh:
        reader = csv.DictReader(fh)
        cols = reader.fieldnames or []
        features = [c[: -len("_predicted")] for c in cols if c.endswith("_predicted") and c[: -len("_predicted")] in cols]
        missing = [c for c in ("entity", "timestamp", "score", "anomaly") if c not in cols]
        if missing or not features:
            raise RnnstreamError(f"{path}: not a replay scores file (missing columns {missing or ['<feature>_predicted']})")
        rows, entities = [], set()
        for n, rec in enumerate(reader, 2):
            entities.add(rec["entity"])
            if rec["entity"] != entity or not rec["score"]:
                continue
            try:
                rows.append((entity, _seconds(rec["timestamp"]),
                             np.array([float(rec[f]) for f in features]),
                             np.array([float(rec[f"{f}_predicted"]) for f in features]),
                             float(rec["score"]), rec["anomaly"] == "1"))
            except ValueError as exc:
                raise RnnstreamError(f"{path}:{n}: unreadable value ({exc})") from None
    if not rows:
        known = ", ".join(sorted(e for e in entities if e)[:10])
        raise RnnstreamError(f"{path}: no scored rows for entity {entity!r} (entities in the file: {known or 'none'})")
    return rows, features


def read_anomalies(cfg: Config, detector: str, entity: str, *, since: float | None = None,
                   max_records: int = 100_000, timeout_s: float = 30.0) -> tuple[list[dict], int]:
    """The anomaly events of ``entity`` by ``detector`` on its anomalies topic, and records scanned."""
    if cfg.kafka is None:
        raise RnnstreamError("the config has no 'kafka' section: cannot read the anomalies topic")
    det = next((d for d in cfg.detectors if d.name == detector), None)
    if det is None:
        raise RnnstreamError(f"no detector named {detector!r}; the config has {[d.name for d in cfg.detectors]}")
    topic = det.outputs.anomalies_topic
    if topic is None:
        raise RnnstreamError(f"detectors[{detector}].outputs.anomalies_topic is not set: no anomalies to read")
    timeout_ms = max(1, int(timeout_s * 1000))
    try:
        consumer = KafkaConsumer(**cfg.kafka.client_kwargs(), group_id=None, enable_auto_commit=False,
                                 auto_offset_reset="earliest", allow_auto_create_topics=False,
                                 consumer_timeout_ms=timeout_ms, request_timeout_ms=timeout_ms,
                                 bootstrap_timeout_ms=timeout_ms, max_poll_records=min(max_records, 5000))
    except KafkaError as exc:
        raise RnnstreamError(f"cannot read {topic!r} from {', '.join(det_servers(cfg))}: {type(exc).__name__}: "
                             f"{exc} (rnnstream check-connection -c FILE tells more)") from None
    found, scanned = [], 0
    try:
        parts = consumer.partitions_for_topic(topic)
        if not parts:
            raise RnnstreamError(f"anomalies topic {topic!r} does not exist on {', '.join(det_servers(cfg))}")
        tps = [TopicPartition(topic, p) for p in sorted(parts)]
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        end = consumer.end_offsets(tps)
        deadline = time.monotonic() + timeout_s
        pending = {tp for tp in tps if end[tp] > 0}
        while pending and scanned < max_records and time.monotonic() < deadline:
            batch = consumer.poll(timeout_ms=min(1000, timeout_ms), max_records=max_records - scanned)
            for tp, records in batch.items():
                for rec in records:
                    if rec.offset >= end[tp]:
                        continue
                    scanned += 1
                    event = _match(rec, detector, entity, since)
                    if event is not None:
                        found.append(event)
            pending = {tp for tp in pending if consumer.position(tp) < end[tp]}
    finally:
        consumer.close()
    found.sort(key=lambda e: e["event_time"])
    return found, scanned


def det_servers(cfg: Config) -> list[str]:
    return list(cfg.kafka.bootstrap_servers) if cfg.kafka else []


def _match(rec: Any, detector: str, entity: str, since: float | None) -> dict | None:
    if rec.key is not None and rec.key != entity.encode():
        return None
    try:
        event = orjson.loads(rec.value)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(event, dict) or event.get("detector") != detector or event.get("entity") != entity:
        return None
    if since is not None and float(event.get("event_time", 0.0)) < since:
        return None
    return event


def rows_from_anomalies(events: list[dict], features: list[str]) -> list[tuple]:
    rows = []
    for e in events:
        feats = e.get("features", {})
        x = np.array([float(feats.get(f, {}).get("observed", np.nan)) for f in features])
        pred = np.array([float(feats.get(f, {}).get("predicted", np.nan)) for f in features])
        rows.append((e["entity"], float(e["event_time"]), x, pred, float(e["score"]), True))
    return rows


def plot_main(*, out: str, entity: str, scores: str | None = None, config: str | None = None,
              anomalies: bool = False, detector: str | None = None, since: str | None = None,
              max_records: int = 100_000, timeout_s: float = 30.0, stdout: TextIO | None = None) -> int:
    """``rnnstream plot``: exactly one of ``scores`` or ``anomalies`` (which needs ``config``)."""
    stdout = stdout or sys.stdout
    if (scores is None) == (not anomalies):
        raise RnnstreamError("give exactly one of --scores FILE or --anomalies (with -c FILE and --detector)")
    if scores is not None:
        rows, features = rows_from_scores(scores, entity)
        source = f"{len(rows)} events from {scores}"
    else:
        if config is None or detector is None:
            raise RnnstreamError("--anomalies needs -c FILE and --detector")
        cfg = load_config_file(config)
        try:
            since_s = None if since is None else _seconds(since)
        except ValueError:
            raise RnnstreamError(f"--since {since!r}: expected an ISO-8601 time like 2024-01-02T03:04:05Z") from None
        events, scanned = read_anomalies(cfg, detector, entity, since=since_s, max_records=max_records,
                                         timeout_s=timeout_s)
        topic = cfg.detector(detector).outputs.anomalies_topic
        if not events:
            raise RnnstreamError(f"no anomalies of entity {entity!r} by detector {detector!r} in the first "
                                 f"{scanned} record(s) of topic {topic!r}" + (f" since {since}" if since else ""))
        features = list(cfg.detector(detector).features)
        rows = rows_from_anomalies(events, features)
        source = f"{len(rows)} anomalies from {topic} ({scanned} records read)"
    path = plot_entity(rows, features, out, entity=entity)
    print(f"{source} -> {path}", file=stdout)
    return 0
