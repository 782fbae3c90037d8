"""What a detector writes back to Kafka: anomaly events, per-event scores, dead letters.

Anomaly event (JSON, key = entity, UTF-8)::

    {"event_id": "<detector>:<topic>:<partition>:<offset>", "detector", "entity",
     "timestamp": ISO-8601 UTC of the event time, "event_time": epoch seconds, "score", "error",
     "features": {name: {"observed", "predicted", "z", "kind"}}, "blamed": [feature names],
     "model_version", "instance_id", "source": {"topic", "partition", "offset"}}

A feature's ``kind`` is what the scorer blames it for (``spike``, ``drop``, ``level_shift``,
``flatline``, ``novelty``; see ``kernels.calibrate``), or null; ``blamed`` lists the features with a kind.

``event_id`` names the source record, so a consumer can drop the duplicates a restart replays (the
daemon guarantees at-least-once delivery, not exactly-once). Score events carry the same ids and a
subset of the fields plus ``anomaly``/``suppressed``. A dead letter is the ORIGINAL key and value bytes
with the source record's headers followed by ``rnnstream.*`` headers saying why.

Sends are asynchronous (the producer batches); failures are collected, and ``raise_if_failed`` (call it
after ``producer.flush()``, before committing offsets) reports them. A topic set to null in the config
is not written, and the call returns False.
"""

from __future__ import annotations

import threading
from datetime import datetime, timezone
from typing import Any, Sequence

import numpy as np
import orjson

from ..errors import RnnstreamError
from ..kernels.calibrate import FLAG_ANOMALY, FLAG_SUPPRESSED, KIND_NAMES

MAX_DETAIL_BYTES = 1024


class DeliveryError(RnnstreamError):
    """At least one output record could not be delivered to Kafka."""


def iso_utc(seconds: float) -> str:
    """``2024-01-02T03:04:05.678Z`` for epoch ``seconds``."""
    return datetime.fromtimestamp(seconds, timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def event_id(detector: str, topic: str, partition: int, offset: int) -> str:
    return f"{detector}:{topic}:{partition}:{offset}"


class Outputs:
    """Writes one detector's outputs through a kafka-python ``KafkaProducer`` (or anything with ``send``).

    The producer must have no serializers: keys, values and header values are passed as bytes.
    """

    def __init__(self, producer: Any, cfg: Any, instance_id: str):
        self.producer = producer
        self.cfg = cfg
        self.detector = cfg.name
        self.instance_id = instance_id
        self.features = tuple(cfg.features)
        self.anomalies_topic = cfg.outputs.anomalies_topic
        self.scores_topic = cfg.outputs.scores_topic
        self.dead_letter_topic = cfg.outputs.dead_letter_topic
        self._lock = threading.Lock()   # errbacks run on the producer's I/O thread
        self._failures: list[str] = []
        self.sent = {"anomaly": 0, "score": 0, "dead_letter": 0}

    # -- single records ---------------------------------------------------------------------------

    def anomaly(self, record: Any, entity: str, event_time: float, score: float, error: float,
                observed: Sequence[float], predicted: Sequence[float], z: Sequence[float],
                model_version: int, kind: Sequence[int] | None = None) -> bool:
        """Publish the anomaly event of source ``record`` (anything with topic/partition/offset)."""
        if self.anomalies_topic is None:
            return False
        event = self.anomaly_event(record, entity, event_time, score, error, observed, predicted, z,
                                   model_version, kind)
        self._send(self.anomalies_topic, entity.encode(), orjson.dumps(event), None, "anomaly")
        return True

    def anomaly_event(self, record: Any, entity: str, event_time: float, score: float, error: float,
                      observed: Sequence[float], predicted: Sequence[float], z: Sequence[float],
                      model_version: int, kind: Sequence[int] | None = None) -> dict[str, Any]:
        """The anomaly event as a dict (what ``anomaly`` serialises)."""
        kinds = [KIND_NAMES[int(k)] or None for k in kind] if kind is not None else [None] * len(self.features)
        feats = {name: {"observed": float(observed[i]), "predicted": float(predicted[i]), "z": float(z[i]),
                        "kind": kinds[i]}
                 for i, name in enumerate(self.features)}
        return {
            "event_id": event_id(self.detector, record.topic, record.partition, record.offset),
            "detector": self.detector,
            "entity": entity,
            "timestamp": iso_utc(event_time),
            "event_time": float(event_time),
            "score": float(score),
            "error": float(error),
            "features": feats,
            "blamed": [name for name, k in zip(self.features, kinds) if k],
            "model_version": int(model_version),
            "instance_id": self.instance_id,
            "source": {"topic": record.topic, "partition": int(record.partition), "offset": int(record.offset)},
        }

    def score(self, record: Any, entity: str, event_time: float, score: float, error: float,
              flag: int, model_version: int) -> bool:
        """Publish one event's score to ``scores_topic`` (key = entity)."""
        if self.scores_topic is None:
            return False
        event = {
            "event_id": event_id(self.detector, record.topic, record.partition, record.offset),
            "detector": self.detector,
            "entity": entity,
            "event_time": float(event_time),
            "score": float(score),
            "error": float(error),
            "anomaly": bool(flag & FLAG_ANOMALY),
            "suppressed": bool(flag & FLAG_SUPPRESSED),
            "model_version": int(model_version),
        }
        self._send(self.scores_topic, entity.encode(), orjson.dumps(event), None, "score")
        return True

    def dead_letter(self, record: Any, reason: str, detail: str) -> bool:
        """Forward ``record``'s original key and value to ``dead_letter_topic`` with the reason in headers."""
        if self.dead_letter_topic is None:
            return False
        headers = list(record.headers or [])
        headers += [
            ("rnnstream.reason", reason.encode()),
            ("rnnstream.detail", detail.encode("utf-8", "replace")[:MAX_DETAIL_BYTES]),
            ("rnnstream.source.topic", record.topic.encode()),
            ("rnnstream.source.partition", str(record.partition).encode()),
            ("rnnstream.source.offset", str(record.offset).encode()),
            ("rnnstream.detector", self.detector.encode()),
        ]
        self._send(self.dead_letter_topic, record.key, record.value, headers, "dead_letter")
        return True

    # -- one processed batch ----------------------------------------------------------------------

    def publish(self, decoded: Any, result: Any) -> dict[str, int]:
        """All outputs of one batch: dead letters for ``decoded.rejects`` and ``result.rejected``,
        anomaly events for flag bit 0, scores when ``scores_topic`` is set. Returns counts sent
        (keys "anomaly", "score", "dead_letter"); anomalies are counted even when no topic is set.
        """
        counts = {"anomaly": 0, "score": 0, "dead_letter": 0}
        for rej in decoded.rejects:
            counts["dead_letter"] += self.dead_letter(rej.record, rej.reason, rej.detail)
        for pos, reason in result.rejected:
            rec = decoded.raw[pos]
            detail = f"{rec.topic}[{rec.partition}]@{rec.offset}: rejected by the detector"
            counts["dead_letter"] += self.dead_letter(rec, reason, detail)
        flags = result.flag
        anomalies = np.flatnonzero(flags & FLAG_ANOMALY)
        versions = result.model_version
        for j in anomalies.tolist():
            pos = int(result.index[j])
            self.anomaly(decoded.raw[pos], decoded.entities[pos], float(decoded.ts[pos]), float(result.score[j]),
                         float(result.err[j]), decoded.x[pos], result.pred[j], result.z[j], int(versions[j]),
                         None if result.kind is None else result.kind[j])
            counts["anomaly"] += 1
        if self.scores_topic is not None:
            for j, pos in enumerate(result.index.tolist()):
                counts["score"] += self.score(decoded.raw[pos], decoded.entities[pos], float(decoded.ts[pos]),
                                              float(result.score[j]), float(result.err[j]), int(flags[j]),
                                              int(versions[j]))
        return counts

    # -- delivery ---------------------------------------------------------------------------------

    def _send(self, topic: str, key: bytes | None, value: bytes | None, headers: list | None, kind: str) -> None:
        kwargs: dict[str, Any] = {"key": key, "value": value}
        if headers is not None:
            kwargs["headers"] = headers
        future = self.producer.send(topic, **kwargs)
        self.sent[kind] += 1
        if future is not None and hasattr(future, "add_errback"):
            future.add_errback(self._failed, topic)

    def _failed(self, topic: str, exc: BaseException) -> None:
        with self._lock:
            self._failures.append(f"{topic}: {exc!r}")

    def take_failures(self) -> list[str]:
        """Delivery failures seen since the last call (topic and error), and forget them."""
        with self._lock:
            failures, self._failures = self._failures, []
        return failures

    def raise_if_failed(self) -> None:
        """Raise DeliveryError if any send failed since the last check (call after ``producer.flush()``)."""
        failures = self.take_failures()
        if failures:
            more = f" (and {len(failures) - 3} more)" if len(failures) > 3 else ""
            raise DeliveryError(f"detector {self.detector}: {len(failures)} output record(s) not delivered: "
                                + "; ".join(failures[:3]) + more)
