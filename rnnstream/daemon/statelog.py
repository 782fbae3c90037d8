"""The daemon's side of the changelog (``rnnstream.daemon.changelog``): topics, writes at commits,
restores at assignment, with ``state_dir`` as a cache.

``StateLog.write`` sends one commit's records of some units and ``confirm`` settles them once the
producer has delivered them (at least once) or their transaction has committed (exactly once): only
then are the units' change sets cleared and their local cache files written, each recording the
changelog offset it reflects. At the periodic commits a unit's cache is rewritten at most every
``CACHE_EVERY_S`` (writing every entity's row each second had cost more than the changelog itself);
at revocation and shutdown always. An older cache only means more of the changelog to read back. ``restore`` rebuilds a unit's Detector: from the local cache plus the
changelog records after its offset when the cache belongs to this changelog, otherwise from the
whole changelog partition, and from the cache alone when the changelog holds nothing (state kept
before the changelog was turned on).

One thread at a time: the poll loop, or a rebalance callback while the loop waits.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass
from typing import Any, Callable

from ..detector import Detector
from ..errors import StateFormatError
from . import changelog as cl
from .checkpoint import CheckpointStore, config_fingerprint, shape_fingerprint

log = logging.getLogger(__name__)

CACHE_EVERY_S = 30.0


@dataclass
class Sent:
    """One unit's records of one commit, on their way."""

    unit: Any
    head: Any           # the producer's future of the head record
    writer: cl.WriterState   # the unit's writer state once these records are written
    entities: int
    records: int
    size: int


class StateLog:
    """Changelog topics of every detector of ``config``; ``producer`` writes, ``reader`` reads."""

    def __init__(self, config: Any, producer: Any, reader: cl.Reader, store: CheckpointStore, metrics: Any,
                 admin_factory: Callable[[], Any] | None = None):
        self.config = config
        self.producer = producer
        self.reader = reader
        self.store = store
        self.metrics = metrics
        self._admin_factory = admin_factory
        self._ensured: set[str] = set()
        self._cached_at: dict = {}    # (detector, partition) -> monotonic time of its last cache file

    def topic(self, detector: str) -> str:
        return cl.changelog_topic(self.config, detector)

    # -- topics ------------------------------------------------------------------------------------

    def ensure(self, det_cfg: Any, partitions: int) -> None:
        """Create the detector's changelog topic if missing, or check it (once per topic)."""
        topic = self.topic(det_cfg.name)
        if topic in self._ensured or self._admin_factory is None:
            return
        admin = self._admin_factory()
        try:
            cl.ensure_topic(admin, topic, partitions)
        finally:
            admin.close()
        self._ensured.add(topic)

    # -- writing -----------------------------------------------------------------------------------

    def write(self, units: list) -> list[Sent]:
        """Send each unit's records of this commit (not waiting for them)."""
        sent = []
        for unit in units:
            if unit.changelog is None:
                unit.changelog = cl.WriterState()
            topic = self.topic(unit.name)
            records, entities, writer = cl.commit_records(
                unit.detector, unit.tp.topic, unit.next_offset, unit.changelog,
                fingerprints={"shape_fingerprint": shape_fingerprint(unit.cfg),
                              "config_fingerprint": config_fingerprint(unit.cfg)})
            future = None
            size = 0
            for key, value in records:
                future = self.producer.send(topic, key=key, value=value, partition=unit.tp.partition)
                size += len(key) + len(value or b"")
            sent.append(Sent(unit, future, writer, entities, len(records), size))
        return sent

    def confirm(self, sent: list[Sent], save_cache: bool = True, *, periodic: bool = False) -> list:
        """After a flush (or a committed transaction): the units whose records were all written. Their
        change sets are cleared and their cache files written (``periodic``: only those not written
        for ``CACHE_EVERY_S``); the others write again next time."""
        ok = []
        for s in sent:
            try:
                meta = s.head.get(timeout=0)
            except Exception as exc:   # the head failed, or never went: nothing of this commit counts
                log.warning("changelog write failed; the partition's state is written again at the next commit",
                            extra={"partition": f"{s.unit.tp.topic}[{s.unit.tp.partition}]",
                                   "error": f"{type(exc).__name__}: {exc}"})
                continue
            unit = s.unit
            unit.detector.state.mark_clean()
            unit.changelog = s.writer
            unit.changelog_offset = int(meta.offset) + 1
            dm = self.metrics.for_detector(unit.name)
            dm.changelog_records.inc(s.records)
            dm.changelog_bytes.inc(s.size)
            now = time.monotonic()
            if save_cache and not (periodic and now - self._cached_at.get((unit.name, unit.tp), -math.inf) < CACHE_EVERY_S):
                self.save_cache(unit)
                self._cached_at[(unit.name, unit.tp)] = now
            ok.append(unit)
        return ok

    def save_cache(self, unit: Any) -> None:
        ws = unit.changelog
        unit.saved_path = self.store.save(unit.name, unit.tp, unit.detector, unit.next_offset, extra={
            "changelog": {"topic": self.topic(unit.name), "offset": unit.changelog_offset,
                          "arrays_id": ws.arrays_id, "parity": ws.parity, "chunks": ws.chunks,
                          "buckets": ws.buckets, "row_bytes": ws.row_bytes, "format": cl.FORMAT}})

    # -- restoring ---------------------------------------------------------------------------------

    def end_offset(self, detector: str, partition: int) -> int:
        return self.reader.bounds(self.topic(detector), partition)[1]

    def restore(self, det_cfg: Any, tp: Any, warm: tuple[cl.Collector, int] | None = None
                ) -> tuple[Detector, int | None, cl.WriterState, int]:
        """``(detector, next_offset or None for "nothing kept", writer state, changelog offset)`` for
        input partition ``tp``, from the cache and the changelog (see the module docstring).
        ``warm``: a standby copy (``rnnstream.daemon.standby``), a collector that read the changelog
        partition from its beginning up to the given offset; only the records after it are read then,
        and the cache is not used."""
        topic = self.topic(det_cfg.name)
        started = time.monotonic()
        self.metrics.restoring_partitions.inc()
        try:
            if warm is not None:
                collector, position = warm
                before = (collector.out.records, collector.out.bytes)
                restored = self.reader.read(topic, tp.partition, tp.topic, position, collector=collector,
                                            progress=self._progress(det_cfg.name, tp))
                if restored.head is not None:
                    self.metrics.for_detector(det_cfg.name).standby_takeovers.inc()
                    return self._apply_full(det_cfg, tp, topic, restored, started, "standby copy and changelog tail",
                                            read=(restored.records - before[0], restored.bytes - before[1]))
            cached = self.store.load_with_meta(det_cfg.name, tp, det_cfg)
            info = None if cached is None else cached[2].get("changelog")
            if info is not None:
                begin, end = self.reader.bounds(topic, tp.partition)
                if (info.get("topic") != topic or info.get("format") != cl.FORMAT
                        or not begin <= int(info["offset"]) <= end):
                    log.info("local cache belongs to another changelog (or one since recreated); ignored",
                             extra={"partition": _name(tp), "cache": info, "changelog": topic})
                    cached[0].close()
                    cached, info = None, None
            progress = self._progress(det_cfg.name, tp)
            if cached is not None and info is not None:
                det, next_offset, _ = cached
                restored = self.reader.read(topic, tp.partition, tp.topic, int(info["offset"]), progress=progress)
                ws = cl.WriterState(int(info["parity"]), info["arrays_id"], int(info["chunks"]),
                                    buckets=info["buckets"], row_bytes=info.get("row_bytes", 0))   # 0: unknown
                if restored.head is not None:
                    try:
                        cl.apply(det, restored, base_arrays_id=info["arrays_id"], base_buckets=info["buckets"])
                    except StateFormatError as exc:
                        log.info("cache cannot be completed from the changelog tail; reading all of it",
                                 extra={"partition": _name(tp), "reason": str(exc)})
                        det.close()
                        return self._full(det_cfg, tp, topic, progress, started)
                    next_offset = int(restored.head["next_offset"])
                    ws = _writer_from(restored)
                ws.fixups = restored.fixups
                self._account(det_cfg.name, restored, started, tp, "cache and changelog")
                return det, next_offset, ws, restored.end_offset
            return self._full(det_cfg, tp, topic, progress, started, legacy=cached)
        finally:
            self.metrics.restoring_partitions.dec()

    def _full(self, det_cfg: Any, tp: Any, topic: str, progress, started: float,
              legacy: tuple | None = None) -> tuple[Detector, int | None, cl.WriterState, int]:
        restored = self.reader.read(topic, tp.partition, tp.topic, None, progress=progress)
        if restored.head is None:
            ws = cl.WriterState(fixups=restored.fixups, legacy=dict(restored.legacy))
            if legacy is not None:   # state kept before the changelog was on: the cache is all there is
                log.info("changelog empty; restoring the local checkpoint", extra={"partition": _name(tp)})
                return legacy[0], legacy[1], ws, restored.end_offset
            return Detector(det_cfg), None, ws, restored.end_offset
        if legacy is not None:
            legacy[0].close()
        return self._apply_full(det_cfg, tp, topic, restored, started, "changelog")

    def _apply_full(self, det_cfg: Any, tp: Any, topic: str, restored: cl.Restored, started: float, source: str,
                    read: tuple[int, int] | None = None) -> tuple[Detector, int | None, cl.WriterState, int]:
        """A fresh detector brought to the state of ``restored`` (every record of the partition, with
        a head); ``read``: the (records, bytes) of them read from Kafka now, when not all were."""
        if restored.head.get("shape_fingerprint") != shape_fingerprint(det_cfg):
            log.warning("changelog state refused: model shape changed (model type/size, features, time "
                        "features or training.window); starting this partition fresh from the head's offset",
                        extra={"partition": _name(tp), "changelog": topic})
            ws = _writer_from(restored)
            ws.fixups = set(restored.buckets) | restored.fixups   # overwritten by the fresh state
            return Detector(det_cfg), int(restored.head["next_offset"]), ws, restored.end_offset
        det = Detector(det_cfg)
        try:
            cl.apply(det, restored)
        except BaseException:
            det.close()
            raise
        ws = _writer_from(restored)
        ws.fixups = restored.fixups
        self._account(det_cfg.name, restored, started, tp, source, read)
        return det, int(restored.head["next_offset"]), ws, restored.end_offset

    def _progress(self, detector: str, tp: Any):
        last = [time.monotonic()]

        def report(done: int, total: int) -> None:
            now = time.monotonic()
            if now - last[0] >= 5.0:
                last[0] = now
                log.info("restoring", extra={"detector": detector, "partition": _name(tp),
                                             "offsets_read": done, "offsets_total": total})
        return report

    def _account(self, detector: str, restored: cl.Restored, started: float, tp: Any, source: str,
                 read: tuple[int, int] | None = None) -> None:
        dm, took = self.metrics.for_detector(detector), time.monotonic() - started
        records, size = read if read is not None else (restored.records, restored.bytes)
        dm.restore_records.inc(records)
        dm.restore_bytes.inc(size)
        dm.restore_duration.observe(took)
        log.info("partition state restored", extra={
            "detector": detector, "partition": _name(tp), "source": source, "records": records,
            "bytes": size, "seconds": round(took, 3),
            "next_offset": None if restored.head is None else restored.head["next_offset"]})


def _writer_from(restored: cl.Restored) -> cl.WriterState:
    h = restored.head
    return cl.WriterState(int(h["parity"]), h["arrays_id"], int(h["chunks"]), buckets=h.get("buckets"),
                          legacy=dict(restored.legacy), row_bytes=h.get("row_bytes"))


def _name(tp: Any) -> str:
    return f"{tp.topic}[{tp.partition}]"
