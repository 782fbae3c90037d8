"""One unit of daemon state: a Detector bound to one (detector, topic, partition), and its batch step.

A unit sees the records of its partition in offset order; ``Unit.handle`` turns one poll's records of
that partition into one ``Detector.process`` call plus the outputs and metrics of the batch. Python
work per event is limited to decoding (``decode_batch``) and building the output messages; metric
updates are per batch (histograms are filled from numpy bucket counts, ``BulkHistogram.observe_many``).
Processing latency is measured from each record's Kafka timestamp; event-time lag from the newest
event time scored. Each published anomaly is logged at INFO, rate-limited (``ANOMALY_LOG``).
Non-finite, out-of-range, future-dated (against the Kafka record timestamp) and late events are
refused by the Detector and go to the dead-letter topic.

Not thread-safe: one thread (the poll loop) owns every unit.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..detector import (MAX_ABS_VALUE, REASON_FUTURE, REASON_LATE, REASON_NON_FINITE, REASON_OUT_OF_RANGE,
                        Detector)
from ..kernels.calibrate import FLAG_ANOMALY
from ..metrics import DetectorMetrics
from .logs import RateLimitedLog

log = logging.getLogger("rnnstream.daemon")
ANOMALY_LOG = RateLimitedLog(log, burst=20, period=60.0)
"""One INFO line per published anomaly, at most 20 a minute per process (then a count of the skipped)."""

_DETAIL = {
    REASON_NON_FINITE: "non-finite feature value or event time",
    REASON_OUT_OF_RANGE: f"a feature value's magnitude exceeds {MAX_ABS_VALUE:g}",
    REASON_FUTURE: "event time {ts:.3f} is more than {future:g} s after the record timestamp {ref:.3f}",
    REASON_LATE: "event time {ts:.3f} is more than {tol:g} s older than the entity's previous event",
}


def record_times(records: list) -> np.ndarray:
    """Kafka record timestamps in seconds (NaN where a record has none): the reference clock of the
    ``future`` check. They are stored with the records, so a replay of the partition sees the same."""
    ms = np.array([r.timestamp for r in records], dtype=np.float64)   # None becomes NaN
    ms[ms < 0] = np.nan                                                  # -1: the record has none
    return ms / 1000.0


@dataclass
class BatchCounts:
    """What one ``Unit.handle`` call did, for the runner's invariants and tests."""

    consumed: int = 0
    processed: int = 0
    rejected: int = 0
    anomalies: int = 0


@dataclass
class Unit:
    """A detector instance owning one partition of one of its topics."""

    name: str
    tp: Any                      # kafka TopicPartition
    cfg: Any                     # DetectorConfig
    detector: Detector
    metrics: DetectorMetrics
    next_offset: int | None = None   # offset of the next record to process (None: nothing seen yet)
    restored: bool = False
    saved_path: Any = None           # the checkpoint file this unit wrote last
    changelog: Any = None            # its changelog writer's state (rnnstream.daemon.changelog.WriterState)
    changelog_offset: int | None = None   # changelog offset its state reflects (end of its last commit)
    totals: BatchCounts = field(default_factory=BatchCounts)
    top_k: int = 0                   # metrics.top_k_entities: keep the latest scores of candidates
    latest: dict = field(default_factory=dict)   # entity -> latest reported score (top_k > 0 only)
    anomaly_log: Any = ANOMALY_LOG               # the per-process limit of "anomaly published" lines

    def handle(self, records: list, outputs: Any, decode_batch: Any) -> BatchCounts:
        """Process one poll's records of this unit's partition (offset order). Returns the counts."""
        counts = BatchCounts(consumed=len(records))
        if not records:
            return counts
        dm, cfg = self.metrics, self.cfg
        dec = decode_batch(records, cfg)
        for rej in dec.rejects:
            outputs.dead_letter(rej.record, rej.reason, rej.detail)
            dm.rejected(rej.reason).inc()
        counts.rejected += len(dec.rejects)
        raw, entities, x, ts = dec.raw, dec.entities, dec.x, dec.ts
        if entities:
            started = time.perf_counter()
            ref = record_times(raw)
            # Outputs queued earlier and not yet sent go now: the producer's sender thread does its
            # Python work (a ms or two a produce request) while the scoring kernel runs without the GIL.
            wake = getattr(outputs, "wake", None)
            if wake is not None:
                wake()
            res = self.detector.process(entities, x, ts, ref)
            dm.batch_duration.observe(time.perf_counter() - started)
            for pos, reason in res.rejected:
                outputs.dead_letter(raw[pos], reason, _DETAIL[reason].format(
                    ts=ts[pos], tol=cfg.late_tolerance_seconds, future=cfg.future_tolerance_seconds, ref=ref[pos]))
                dm.rejected(reason).inc()
            counts.rejected += len(res.rejected)
            n = len(res.index)
            counts.processed = n
            if n:
                self._emit(res, raw, entities, x, ts, ref, outputs, counts)
            if res.evicted:
                dm.evicted.inc(len(res.evicted))
        dm.processed.inc(counts.processed)
        self.next_offset = records[-1].offset + 1
        t = self.totals
        t.consumed += counts.consumed
        t.processed += counts.processed
        t.rejected += counts.rejected
        t.anomalies += counts.anomalies
        return counts

    def _emit(self, res: Any, raw: list, entities: list, x: np.ndarray, ts: np.ndarray, ref: np.ndarray,
              outputs: Any, counts: BatchCounts) -> None:
        dm = self.metrics
        index = res.index
        reported = res.reported_score()
        dm.score.observe_many(reported)
        if self.top_k:
            self._track_top(entities, index, reported)
        now = time.time()
        record_ts = ref[index]
        known = np.isfinite(record_ts)    # NaN: the record has no timestamp
        dm.latency.observe_many(np.maximum(now - record_ts[known], 0.0))
        dm.event_time_lag.set(max(now - float(ts[index].max()), 0.0))
        hits = np.flatnonzero(res.flag & FLAG_ANOMALY)
        versions = np.broadcast_to(np.asarray(res.model_version), index.shape).tolist()
        for j in hits.tolist():
            i = int(index[j])
            outputs.anomaly(raw[i], entities[i], float(ts[i]), float(res.score[j]), float(res.err[j]),
                            x[i], res.pred[j], res.z[j], versions[j], res.kind[j])
            dm.note_anomaly(entities[i], now)
            self.anomaly_log.info("anomaly published", detector=self.name, entity=entities[i],
                             score=round(float(res.score[j]), 4), event_time=float(ts[i]),
                             partition=f"{raw[i].topic}[{raw[i].partition}]", offset=raw[i].offset)
        if len(hits):
            dm.anomalies.inc(len(hits))
            counts.anomalies = len(hits)
        if self.cfg.outputs.scores_topic:
            outputs.scores(raw, entities, ts, index, res.score, res.err, res.flag, res.model_version)

    def _track_top(self, entities: list, index: np.ndarray, reported: np.ndarray) -> None:
        """Latest score of the entities that could be in the top K: this batch's K highest, plus
        those already tracked (so a tracked entity's score falls when it calms down)."""
        latest = self.latest
        for j, i in enumerate(index.tolist()):
            if entities[i] in latest:
                latest[entities[i]] = float(reported[j])
        k = min(self.top_k, len(reported))
        for j in np.argpartition(-reported, k - 1)[:k].tolist():
            latest[entities[int(index[j])]] = float(reported[j])
        if len(latest) > 4 * self.top_k:
            keep = sorted(latest.items(), key=lambda kv: kv[1], reverse=True)[: self.top_k]
            self.latest = dict(keep)

    def close(self) -> None:
        self.detector.close()
