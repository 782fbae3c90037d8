"""A detector: one model's weights, its entities' slot state, its retraining schedule, its scorer settings.

``Detector.process`` takes a micro-batch of events (entity, features, event time) in arrival order and
returns, for each accepted event, the prediction made before it, its error, its calibrated score and
its flags. The model kernel runs once per batch, or once per stretch between two points fixed by the
event sequence: a retraining trigger (``rnnstream.training.schedule``), an idle sweep, or the state
filling up (then the least recently seen entities are evicted).

Guaranteed: outputs and state are a function of the event sequence alone, whatever the batching (with
background training, as long as no retraining is skipped: see ``rnnstream.training.schedule``).
Refused with a reason, touching no state: events with a non-finite value or time
(``non_finite_value``); a feature value whose magnitude exceeds ``MAX_ABS_VALUE`` (``out_of_range``:
the normaliser squares deviations, and above ~1e154 the square overflows to inf, so such values could
only ever poison state); an event time more than ``future_tolerance_seconds`` after the reference
clock the caller passes (``future``, see ``process``); late events (older than the entity's previous
event by more than ``late_tolerance_seconds``). An entity whose event comes more than ``idle_ttl_seconds``
of event time after its previous one starts afresh, as if it had been evicted.

Features named in ``log_features`` enter the detector as ``sign(x) log(1 + |x|)`` (:func:`to_log`), after
the checks above; their predictions come back in their own units (:func:`from_log`), while ``z`` and
the errors stay in log units.

Persistence: ``snapshot``/``restore`` capture everything future outputs depend on, composed of the
parts' own snapshots (``SlotState``, the model, ``TrainingSchedule``) plus the detector's counters.
``snapshot(entities=False)`` leaves the per-entity rows out, for a changelog that carries them per
entity (``SlotState.export``/``restore_entities``).

Not thread-safe: one thread calls ``process``; training runs beside it in the schedule's own thread.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from .kernels.calibrate import (FLAG_ANOMALOUS, FLAG_ANOMALY, FLAG_LATE, FLAG_SUPPRESSED, LAYOUTS, SCORER_LAYOUT, layout_width,
                                legacy_widths, upgrade_rows)
from .kernels.params import from_config, n_time_features
from .models.base import BatchOutput, common_fields, create
from .state.slots import SlotState
from .training.schedule import TrainingSchedule

REASON_NON_FINITE = "non_finite_value"
REASON_OUT_OF_RANGE = "out_of_range"
REASON_FUTURE = "future"
REASON_LATE = "late"
MAX_ABS_VALUE = 1e100
"""Largest feature magnitude accepted. Squares of deviations stay below ~1e201, far from overflow,
and no real metric comes near it; the one bound checked by ``Detector.process``."""
SWEEP_EVERY = 65536  # events between two sweeps of idle entities (memory only: expiry is per event)

LOG_MAX = float(np.log1p(MAX_ABS_VALUE))
"""The largest value of a ``log_features`` feature on its log scale; predictions beyond it map back to
``MAX_ABS_VALUE``."""


def to_log(x: np.ndarray) -> np.ndarray:
    """A ``log_features`` value on the scale the detector models it: ``sign(x) log(1 + |x|)``."""
    return np.sign(x) * np.log1p(np.abs(x))


def from_log(y: np.ndarray) -> np.ndarray:
    """The inverse of :func:`to_log`, at most ``MAX_ABS_VALUE`` in magnitude."""
    return np.sign(y) * np.minimum(np.expm1(np.minimum(np.abs(y), LOG_MAX)), MAX_ABS_VALUE)


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
    model_version: np.ndarray   # (N,) the version of the weights each event was scored with
    kind: np.ndarray | None = None  # (N, F) uint8: per feature, the KIND_* that blames it (0 = not blamed)

    @property
    def anomalies(self) -> np.ndarray:
        """Positions (into the accepted events) of the events that raised an anomaly."""
        return np.flatnonzero(self.flag & FLAG_ANOMALY)

    @property
    def anomalous(self) -> np.ndarray:
        """Per accepted event, whether its own score reached the threshold (``FLAG_ANOMALOUS``), whether
        or not it raised an anomaly: every event of an incident that scores above the threshold, where
        ``anomalies`` holds only the incident's alarms."""
        return (self.flag & FLAG_ANOMALOUS) != 0

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
        self.log_columns = np.array([cfg.features.index(f) for f in cfg.log_features], dtype=np.int64)
        bins = int(tf.daily_profile_bins)
        n_inputs = self.n_features + n_time_features(tf.time_of_day, tf.day_of_week, tf.log_gap, bins,
                                                     self.n_features)
        self.model = create(cfg.model.type, self.n_features, n_inputs, cfg.model.params)
        self.kp = from_config(tf, cfg.scoring, cfg.late_tolerance_seconds)
        window = cfg.training.window
        fields = {**common_fields(self.n_features, n_inputs, window, bins), **self.model.state_fields()}
        self.state = SlotState(fields, cfg.max_entities, pool_size=cfg.training.sample_entities)
        self.training = TrainingSchedule(self.model, cfg.training, window, self.kp, seed=self.model.seed,
                                         background=background)
        self.out = BatchOutput.allocate(batch_capacity, self.n_features)
        self.versions = np.zeros(batch_capacity, dtype=np.int64)
        self.watermark = float("-inf")   # newest event time seen, for idle eviction
        self.ttl = float(cfg.idle_ttl_seconds)
        self.future_tolerance = float(cfg.future_tolerance_seconds)
        self.events = 0                  # events processed
        self._next_sweep = SWEEP_EVERY

    def process(self, entities: Sequence[str], x: np.ndarray, ts: np.ndarray,
                reference: np.ndarray | None = None) -> BatchResult:
        """Advance the batch ``(entities[i], x[i], ts[i])`` in order. ``x`` is (N, F), ``ts`` seconds.

        ``reference`` (N,), optional: a clock each event is checked against, in seconds; an event
        dated more than ``future_tolerance_seconds`` after its reference is refused as ``future``
        (a non-finite reference checks nothing). The daemon passes the Kafka record timestamps: they
        are stored with the records, so the outcome depends on the input stream alone.
        """
        x = np.ascontiguousarray(x, dtype=np.float64).reshape(len(entities), self.n_features)
        ts = np.ascontiguousarray(ts, dtype=np.float64).reshape(len(entities))
        finite = np.isfinite(x).all(axis=1) & np.isfinite(ts)
        in_range = (np.abs(x) <= MAX_ABS_VALUE).all(axis=1)   # False for NaN too
        ok = finite & in_range
        if reference is not None:
            future = ts > np.asarray(reference, dtype=np.float64) + self.future_tolerance   # False for NaN
            ok &= ~future
        rejected: list[tuple[int, str]] = []
        index = np.arange(len(entities))
        if not ok.all():
            for i in np.flatnonzero(~ok).tolist():
                reason = (REASON_NON_FINITE if not finite[i] else REASON_OUT_OF_RANGE if not in_range[i]
                          else REASON_FUTURE)
                rejected.append((i, reason))
            index = index[ok]
            entities = [entities[i] for i in index]
            x, ts = x[ok], ts[ok]
        if self.log_columns.size:
            x = x.copy()   # the caller's array, or a view of it
            x[:, self.log_columns] = to_log(x[:, self.log_columns])
        n = len(index)
        if n > len(self.out.err):
            self.out = BatchOutput.allocate(max(n, 2 * len(self.out.err)), self.n_features)
            self.versions = np.zeros(len(self.out.err), dtype=np.int64)
        evicted: list[str] = []
        out, start = self.out, 0
        # The batch runs as stretches whose ends fall at fixed event counts (retraining triggers, idle
        # sweeps) or where the state is full, so every decision below depends on the event sequence
        # alone, never on how it was cut into batches.
        while start < n:
            if self.training.events_until_due() == 0 or self.training.due_by_time(self.watermark):
                self.training.trigger(self.state, self.watermark)
                continue
            if self.events >= self._next_sweep:
                evicted += self.state.evict_idle(self.watermark, self.ttl)
                self._next_sweep = self.events + SWEEP_EVERY
                continue
            stop = min(n, start + self.training.events_until_due(), start + self._next_sweep - self.events)
            stop = self._time_trigger_cut(ts, start, stop)
            slots, new = self.state.lookup(entities[start:stop])
            if slots.size == 0:
                evicted += self.state.evict_lru()
                continue
            stop = start + self._expire(slots, ts[start:start + slots.size])
            if new and new[-1] >= stop - start:  # entities first met beyond the stretch: not yet
                self.state.drop([entities[start + k] for k in new if k >= stop - start])
            slots = slots[: stop - start]
            self.state.touch(slots)
            view = BatchOutput(out.pred[start:stop], out.z[start:stop], out.err[start:stop],
                               out.score[start:stop], out.flag[start:stop], out.kind[start:stop])
            self.model.step(self.state.arrays, slots, x[start:stop], ts[start:stop], self.kp, view)
            self.versions[start:stop] = self.model.version
            self.training.advance(stop - start)
            self.events += stop - start
            self.watermark = max(self.watermark, float(ts[start:stop].max()))
            start = stop
        if self.log_columns.size:
            out.pred[:n, self.log_columns] = from_log(out.pred[:n, self.log_columns])
        late = out.flag[:n] & FLAG_LATE
        if not late.any():
            return BatchResult(index, out.pred[:n], out.z[:n], out.err[:n], out.score[:n], out.flag[:n],
                               rejected, evicted, self.versions[:n], out.kind[:n])
        rejected = sorted(rejected + [(int(index[k]), REASON_LATE) for k in np.flatnonzero(late)])
        keep = late == 0
        return BatchResult(index[keep], out.pred[:n][keep], out.z[:n][keep], out.err[:n][keep],
                           out.score[:n][keep], out.flag[:n][keep], rejected, evicted, self.versions[:n][keep],
                           out.kind[:n][keep])

    def _time_trigger_cut(self, ts: np.ndarray, start: int, stop: int) -> int:
        """End the stretch just after the event at which a time-based trigger becomes due."""
        due = self.training.time_due_at()
        if not np.isfinite(due):
            return stop
        skip = max(self.training.first_time_event() - self.events - 1, 0)
        if skip >= stop - start:
            return stop
        wm = np.maximum(np.maximum.accumulate(ts[start + skip:stop]), self.watermark)
        hits = np.flatnonzero(wm >= due)
        return stop if hits.size == 0 else start + skip + int(hits[0]) + 1

    def _expire(self, slots: np.ndarray, ts: np.ndarray) -> int:
        """Start afresh the entities whose event comes more than ``idle_ttl_seconds`` after their last.

        Returns how many of the events may run now: an expiry that falls after an earlier event of
        the same entity in this stretch ends the stretch just before it.
        """
        if not np.isfinite(self.ttl):
            return slots.size
        order = np.argsort(slots, kind="stable")
        ss, st = slots[order], ts[order]
        first = np.ones(ss.size, dtype=bool)
        first[1:] = ss[1:] != ss[:-1]
        prev = np.where(first, self.state["last_ts"][ss], np.concatenate(([0.0], st[:-1])))
        seen = ~first | (self.state["count"][ss] > 0)
        expired = seen & (st - prev > self.ttl)
        if not expired.any():
            return slots.size
        later = order[expired & ~first]
        limit = int(later.min()) if later.size else slots.size
        reset = order[expired & first]
        reset = reset[reset < limit]
        if reset.size:
            self.state.reset_rows(slots[reset])
        return limit

    def evict_idle(self) -> list[str]:
        """Sweep entities idle for more than ``idle_ttl_seconds`` before the watermark now.

        ``process`` already sweeps every ``SWEEP_EVERY`` events and expires an idle entity at its next
        event; an extra sweep only frees memory sooner. Outputs stay the same, except that a sweep
        between two retraining triggers can keep a just-expired entity's window out of training.
        """
        return self.state.evict_idle(self.watermark, self.ttl)

    def snapshot(self, entities: bool = True) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        """``(arrays, meta)`` capturing this detector: with ``entities``, the whole ``SlotState``
        (``slot.*``, ``index.*``); always ``model.*``, the schedule's arrays, and as meta the state's
        clock, the detector's counters and the schedule's under ``training``. Never waits for a running
        background fit (``TrainingSchedule.snapshot``)."""
        if entities:
            arrays, meta = self.state.snapshot()
        else:
            arrays, meta = {}, self.state.clock()
        arrays.update({f"model.{k}": v for k, v in self.model.snapshot().items()})
        train_arrays, train_meta = self.training.snapshot()
        arrays.update(train_arrays)
        meta.update({"watermark": self.watermark if np.isfinite(self.watermark) else None,
                     "events": self.events, "next_sweep": self._next_sweep, "training": train_meta,
                     "scorer_layout": SCORER_LAYOUT})
        return arrays, meta

    def arrays_version(self) -> str:
        """Changes whenever the arrays of ``snapshot(entities=False)`` may have (model or schedule)."""
        return f"{self.model.version}:{self.training.arrays_version()}"

    def restore(self, arrays: dict[str, np.ndarray], meta: dict[str, Any], entities: bool = True) -> None:
        """Put back what ``snapshot(entities)`` captured. Raises KeyError/ValueError/TypeError/IndexError
        when it does not fit this detector's shapes (the detector is then unusable: close it)."""
        if entities:
            if "slot.sc" in arrays:   # a checkpoint of an earlier build: its scorer rows in this build's layout
                arrays = {**arrays, "slot.sc": self.upgrade_scorer_rows(arrays["slot.sc"], meta.get("scorer_layout"))}
            self.state.restore_snapshot(arrays, meta)
        else:
            self.state.set_clock(meta)
        model_arrays = {k[6:]: v for k, v in arrays.items() if k.startswith("model.")}
        for k, w in self.model.weights.items():
            got = model_arrays.get(f"w.{k}")
            if got is None or got.shape != w.shape:
                raise ValueError(f"model weight {k!r} is {None if got is None else got.shape}, expected {w.shape}")
        self.model.load_snapshot(model_arrays)
        self.training.restore(arrays, meta["training"])
        self.watermark = float("-inf") if meta["watermark"] is None else float(meta["watermark"])
        self.events, self._next_sweep = int(meta["events"]), int(meta["next_sweep"])

    def upgrade_scorer_rows(self, rows: np.ndarray, layout: int | None) -> np.ndarray:
        """Scorer statistics rows (``sc``) written in scorer layout ``layout`` (the ``scorer_layout`` of
        ``snapshot``'s meta; None for an earlier build's, whose width is then one of
        ``legacy_scorer_widths``) in this build's layout (``calibrate.upgrade_rows``); ValueError when
        they do not fit."""
        return upgrade_rows(rows, self.n_features, int(self.cfg.time_features.daily_profile_bins), layout)

    def legacy_scorer_widths(self) -> tuple[int, ...]:
        """Widths of the ``sc`` rows of earlier builds (no recorded layout) that ``upgrade_scorer_rows`` reads."""
        return legacy_widths(self.n_features, int(self.cfg.time_features.daily_profile_bins))

    def scorer_width(self, layout: int) -> int | None:
        """Width of the ``sc`` rows of a recorded scorer ``layout``; None for a layout this build cannot read."""
        if layout not in LAYOUTS:
            return None
        return layout_width(layout, self.n_features, int(self.cfg.time_features.daily_profile_bins))

    def close(self) -> None:
        self.training.close()
