"""A detector: one model's weights, its entities' slot state, its retraining schedule, its scorer settings.

``Detector.process`` takes a micro-batch of events (entity, features, event time) in arrival order and
returns, for each accepted event, the prediction made before it, its error, its calibrated score and
its flags. The model kernel runs once per batch, or once per stretch between two retraining triggers
(``rnnstream.training.schedule`` explains why triggers fall between fixed events).

Not thread-safe: one thread calls ``process``; training runs beside it in the schedule's own thread.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from .kernels.calibrate import FLAG_ANOMALY, FLAG_SUPPRESSED
from .kernels.params import KP_NAMES, kernel_params, n_time_features
from .models.base import BatchOutput, common_fields, create
from .state.slots import SlotState
from .training.schedule import TrainingSchedule

REASON_NON_FINITE = "non_finite_value"


@dataclass
class BatchResult:
    """Results of one ``process`` call. Arrays are views into a buffer the next call overwrites.

    ``index[k]`` is the position in the input batch of accepted event k; ``rejected`` lists
    ``(position, reason)`` of the events that were refused and never touched any state.
    """

    index: np.ndarray
    pred: np.ndarray
    z: np.ndarray
    err: np.ndarray
    score: np.ndarray
    flag: np.ndarray
    rejected: list[tuple[int, str]]
    evicted: list[str]
    model_version: int

    @property
    def anomalies(self) -> np.ndarray:
        """Positions (into the accepted events) of the events that raised an anomaly."""
        return np.flatnonzero(self.flag & FLAG_ANOMALY)

    def reported_score(self) -> np.ndarray:
        """The score an alert threshold sees: 0 inside an entity's suppression period."""
        return np.where(self.flag & FLAG_SUPPRESSED, 0.0, self.score)


class Detector:
    """Built from a ``DetectorConfig`` (see ``rnnstream.config``)."""

    def __init__(self, cfg: Any, *, background: bool | None = None, batch_capacity: int = 4096):
        self.cfg = cfg
        self.name = cfg.name
        tf = cfg.time_features
        self.n_features = len(cfg.features)
        n_inputs = self.n_features + n_time_features(tf.time_of_day, tf.day_of_week, tf.log_gap)
        self.model = create(cfg.model.type, self.n_features, n_inputs, cfg.model.params)
        scoring = {name: getattr(cfg.scoring, name) for name in KP_NAMES if hasattr(cfg.scoring, name)}
        self.kp = kernel_params(tf.time_of_day, tf.day_of_week, tf.log_gap, **scoring)
        window = cfg.training.window
        fields = {**common_fields(self.n_features, n_inputs, window), **self.model.state_fields()}
        self.state = SlotState(fields, cfg.max_entities)
        self.training = TrainingSchedule(self.model, cfg.training, window, seed=self.model.seed,
                                         background=background)
        self.out = BatchOutput.allocate(batch_capacity, self.n_features)
        self.watermark = float("-inf")   # newest event time seen, for idle eviction

    def process(self, entities: Sequence[str], x: np.ndarray, ts: np.ndarray) -> BatchResult:
        """Advance the batch ``(entities[i], x[i], ts[i])`` in order. ``x`` is (N, F), ``ts`` seconds."""
        x = np.ascontiguousarray(x, dtype=np.float64).reshape(len(entities), self.n_features)
        ts = np.ascontiguousarray(ts, dtype=np.float64).reshape(len(entities))
        ok = np.isfinite(x).all(axis=1) & np.isfinite(ts)
        rejected: list[tuple[int, str]] = []
        index = np.arange(len(entities))
        if not ok.all():
            rejected = [(int(i), REASON_NON_FINITE) for i in np.flatnonzero(~ok)]
            index = index[ok]
            entities = [entities[i] for i in index]
            x, ts = x[ok], ts[ok]
        n = len(index)
        if n > len(self.out.err):
            self.out = BatchOutput.allocate(max(n, 2 * len(self.out.err)), self.n_features)
        evicted: list[str] = []
        out, start = self.out, 0
        while start < n:
            due = self.training.events_until_due()
            if due == 0:
                self.training.trigger(self.state)
                continue
            stop = min(n, start + due)
            # Slots are assigned per stretch between triggers, not per batch: a trigger picks the
            # entities "seen since the last trigger" by their SlotState clock, which must not already
            # count events after the trigger, or the choice would depend on the batch size.
            slots, gone = self.state.slots_for(entities[start:stop])
            evicted += gone
            view = BatchOutput(out.pred[start:stop], out.z[start:stop], out.err[start:stop],
                               out.score[start:stop], out.flag[start:stop])
            self.model.step(self.state.arrays, slots, x[start:stop], ts[start:stop], self.kp, view)
            self.training.advance(stop - start)
            start = stop
        if n:
            self.watermark = max(self.watermark, float(ts.max()))
        return BatchResult(index, out.pred[:n], out.z[:n], out.err[:n], out.score[:n], out.flag[:n],
                           rejected, evicted, self.model.version)

    def evict_idle(self) -> list[str]:
        """Evict entities idle for more than ``idle_ttl_seconds`` of event time before the watermark."""
        return self.state.evict_idle(self.watermark, float(self.cfg.idle_ttl_seconds))

    def close(self) -> None:
        self.training.close()
