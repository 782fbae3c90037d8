"""``rnnstream plot``: a PNG of one entity, from a replay scores CSV or from the anomalies topic.

* ``--scores FILE``: the CSV ``rnnstream replay`` writes (``entity, timestamp (ISO), <f>...,
  <f>_predicted..., error, score, anomaly, ...``); features are the columns that have a
  ``<f>_predicted`` partner. Rejected rows (empty score) are skipped.
* ``--anomalies``: reads the detector's ``outputs.anomalies_topic`` without a consumer group (nothing
  is committed), from ``since`` (found with the brokers' time index) or the beginning, up to the end
  offsets seen at the start, ``max_records`` records or ``timeout_s`` seconds, whichever comes first.
  It draws the entity's anomaly events (observed vs predicted per feature, and scores) on a time axis
  of ``context`` seconds either side of them; when the detector also has ``outputs.scores_topic``,
  the entity's every score in that range is read from it and drawn too (with suppressed events).

Both draw with ``rnnstream.plot.plot_series``.
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
from ..plot import Series, plot_entity, plot_series


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
    det = _detector_of(cfg, detector)
    topic = det.outputs.anomalies_topic
    if topic is None:
        raise RnnstreamError(f"detectors[{detector}].outputs.anomalies_topic is not set: no anomalies to read")
    return read_entity_events(cfg, topic, detector, entity, since=since, max_records=max_records,
                              timeout_s=timeout_s, what="anomalies topic")


def _detector_of(cfg: Config, detector: str):
    if cfg.kafka is None:
        raise RnnstreamError("the config has no 'kafka' section: cannot read the output topics")
    det = next((d for d in cfg.detectors if d.name == detector), None)
    if det is None:
        raise RnnstreamError(f"no detector named {detector!r}; the config has {[d.name for d in cfg.detectors]}")
    return det


def read_entity_events(cfg: Config, topic: str, detector: str, entity: str, *, since: float | None = None,
                       until: float | None = None, max_records: int = 100_000, timeout_s: float = 30.0,
                       what: str = "topic") -> tuple[list[dict], int]:
    """JSON events of ``entity`` by ``detector`` on an output ``topic`` with ``since <= event_time <=
    until``, sorted by event time, and the number of records scanned. Starts at the offsets the
    brokers' time index gives for ``since`` (record timestamps), else at the beginning."""
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
            raise RnnstreamError(f"{what} {topic!r} does not exist on {', '.join(det_servers(cfg))}")
        tps = [TopicPartition(topic, p) for p in sorted(parts)]
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        end = consumer.end_offsets(tps)
        if since is not None:
            # Record timestamps are publication times, at or after the event time: seeking to `since`
            # skips nothing wanted (a replayed event published later is still found).
            starts = consumer.offsets_for_times({tp: max(int(since * 1000), 0) for tp in tps})
            for tp, found_at in starts.items():
                consumer.seek(tp, end[tp] if found_at is None else found_at.offset)
        deadline = time.monotonic() + timeout_s
        pending = {tp for tp in tps if end[tp] > 0 and consumer.position(tp) < end[tp]}
        while pending and scanned < max_records and time.monotonic() < deadline:
            batch = consumer.poll(timeout_ms=min(1000, timeout_ms), max_records=max_records - scanned)
            for tp, records in batch.items():
                for rec in records:
                    if rec.offset >= end[tp]:
                        continue
                    scanned += 1
                    event = _match(rec, detector, entity, since, until)
                    if event is not None:
                        found.append(event)
            pending = {tp for tp in pending if consumer.position(tp) < end[tp]}
    finally:
        consumer.close()
    found.sort(key=lambda e: e["event_time"])
    return found, scanned


def det_servers(cfg: Config) -> list[str]:
    return list(cfg.kafka.bootstrap_servers) if cfg.kafka else []


def _match(rec: Any, detector: str, entity: str, since: float | None, until: float | None = None) -> dict | None:
    if rec.key is not None and rec.key != entity.encode():
        return None
    try:
        event = orjson.loads(rec.value)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(event, dict) or event.get("detector") != detector or event.get("entity") != entity:
        return None
    t = float(event.get("event_time", 0.0))
    if (since is not None and t < since) or (until is not None and t > until):
        return None
    return event


def series_from_topics(entity: str, anomalies: list[dict], scores: list[dict], features: list[str]) -> Series:
    """One entity's scores (every event, from the scores topic) with the observed and predicted
    values of its anomalies (from the anomalies topic) at their times; NaN where not known."""
    by_time = {float(e["event_time"]): e for e in anomalies}
    times = sorted(set(by_time) | {float(e["event_time"]) for e in scores})
    score_at = {float(e["event_time"]): e for e in scores}
    n, f = len(times), len(features)
    x, pred = np.full((n, f), np.nan), np.full((n, f), np.nan)
    score, anomaly, suppressed = np.zeros(n), np.zeros(n, dtype=bool), np.zeros(n, dtype=bool)
    z = np.zeros((n, f))
    for i, t in enumerate(times):
        a, sc = by_time.get(t), score_at.get(t)
        if sc is not None:
            score[i], anomaly[i], suppressed[i] = float(sc["score"]), bool(sc.get("anomaly")), bool(sc.get("suppressed"))
        if a is not None:
            feats = a.get("features", {})
            x[i] = [float(feats.get(k, {}).get("observed", np.nan)) for k in features]
            pred[i] = [float(feats.get(k, {}).get("predicted", np.nan)) for k in features]
            z[i] = [float(feats.get(k, {}).get("z", 0.0)) for k in features]
            score[i], anomaly[i] = float(a["score"]), True
    return Series.of(entity, times, x, pred, score, anomaly, suppressed, z=z)


def plot_main(*, out: str, entity: str, scores: str | None = None, config: str | None = None,
              anomalies: bool = False, detector: str | None = None, since: str | None = None,
              max_records: int = 100_000, timeout_s: float = 30.0, context_s: float = 6 * 3600.0,
              stdout: TextIO | None = None) -> int:
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
        det = cfg.detector(detector)
        features = list(det.features)
        start = events[0]["event_time"] - context_s
        end = events[-1]["event_time"] + context_s
        context: list[dict] = []
        if det.outputs.scores_topic:
            context, _ = read_entity_events(cfg, det.outputs.scores_topic, detector, entity, since=start, until=end,
                                            max_records=max_records, timeout_s=timeout_s, what="scores topic")
        series = series_from_topics(entity, events, context, features)
        source = f"{len(events)} anomalies from {topic} ({scanned} records read)"
        if context:
            source += f", {len(context)} scores from {det.outputs.scores_topic}"
        else:
            source += " (set outputs.scores_topic to draw every score around them)"
        path = plot_series(series, features, out, threshold=float(det.scoring.threshold), start=start, end=end,
                           title=f"entity {entity}: {len(events)} anomalies, {context_s / 3600:g} h either side")
        print(f"{source} -> {path}", file=stdout)
        return 0
    path = plot_entity(rows, features, out, entity=entity)
    print(f"{source} -> {path}", file=stdout)
    return 0
