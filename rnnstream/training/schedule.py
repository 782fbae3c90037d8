"""When a detector retrains, on what, and when the new weights take effect.

Retraining k is triggered once ``every_events`` events have been processed since retraining k-1 (after
the first ``min_events``), or, when ``every_seconds`` is set, once the event time (the newest event
time seen) has advanced that much since retraining k-1 and at least ``window`` new events have come
(a retraining needs a fresh window of history; without this, 5-minute data with the 300-second
default would retrain at every event). On a live stream event time follows the clock, so this is
"every N seconds"; on a replay or a backlog it follows the data (a backlog may trigger far more often
than every N seconds of wall time, never more often than once per ``window`` events). With
``training.budget`` > 0 both triggers also wait the events :func:`spacing` derives from the last fit's
work, counted in window-steps (never wall time), so that training costs at most ``budget``
window-steps per event of an average entity whatever ``every_events``, ``every_seconds`` and the
backlog say. At a trigger
the scoring thread, between two events:

1. puts the previous retraining's result in force (background mode: if that fit is still running,
   the trigger is *skipped* instead, see below);
2. cuts fresh windows from the rings of entities seen since the last trigger (of those that keep a
   ring, ``training.sample_entities``), adds them to the buffer,
   and draws the training batch, with a generator seeded by ``(seed, k)``;
3. starts the fit: in a background thread (background mode), or at once, putting the result in force
   before the next event (inline mode, used by replay and evaluation).

Inline mode guarantees that the weights every event is scored with, and so every output, are a
function of the input stream alone: batching and restarts do not matter.

Background mode (with ``skip_when_busy``, the default) never makes the scoring thread wait for a fit.
A fit's result is put in force at the first trigger after it finished; a trigger that finds the
previous fit still running is skipped: counted (``stats.runs_skipped``, ``on_skip``), nothing is
cut or started, and the next trigger is
scheduled as if it had run. Skipped triggers are coalesced: the next trigger that does run cuts windows
from every entity seen since the last one that ran. Guaranteed in background mode: as long as no
trigger is skipped (every fit finishes before the next trigger comes due, the normal case when fits
are short against ``every_events``), outputs are the same function of the input stream as described
above, whatever the batching, thread timing or restarts. Not guaranteed: once a trigger has been
skipped, which events are scored with which weights depends on how fast the fit ran; each output still
reports the model version it was scored with, and a swap is atomic: it happens at a trigger,
between two events, never while a kernel runs. Without ``skip_when_busy`` a trigger waits for the previous
fit instead, so outputs are always a function of the input stream, at the cost of stalling scoring
whenever fits do not keep up.

A failed or non-finite fit is dropped and the old weights stay. ``snapshot``/``restore`` carry the
schedule's counters, its window buffer and a fit still to be put in force, so a restored schedule
triggers and swaps weights at the same events as the original.
"""

from __future__ import annotations

import logging
import math
import os
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from ..models.base import FitResult, Model
from ..state.slots import SlotState
from .windows import WindowBuffer, harvest_windows, with_ring

log = logging.getLogger(__name__)


TRAINER_NICE = 10
"""How much lower the background fit's thread runs than the scoring thread (Linux nice levels): on a
busy machine the CPU goes to scoring first, and a slower fit only means more triggers skipped."""


def _lower_priority() -> None:
    """Lower the calling thread's scheduling priority by ``TRAINER_NICE`` (where the OS allows one
    thread's priority to be set: Linux; elsewhere nothing changes)."""
    try:
        tid = threading.get_native_id()
        os.setpriority(os.PRIO_PROCESS, tid, min(os.getpriority(os.PRIO_PROCESS, tid) + TRAINER_NICE, 19))
    except (AttributeError, OSError):
        pass


def spacing(training: Any, n_windows: int, window: int, n_entities: int) -> int:
    """Events the training budget puts between a retraining and the next (0 = no limit).

    A fit of ``n_windows`` windows costs ``steps * n_windows * window`` window-steps (one window event
    through one forward and backward pass). With ``training.budget`` B > 0, the next retraining waits
    until the ``n_entities`` entities seen since the previous trigger (at least 1) have had, on
    average, ``cost / B`` events each: training work stays at most B window-steps per event of an
    average entity. The model is shared by all entities, so its training need grows with the history
    of an entity, not with their number: the work per event shrinks as entities are added."""
    budget = float(training.budget)
    if budget <= 0 or n_windows <= 0:
        return 0
    cost = int(training.steps) * int(n_windows) * int(window)
    return int(math.ceil(cost * max(int(n_entities), 1) / budget))


@dataclass
class TrainingStats:
    runs_ok: int = 0
    runs_failed: int = 0
    runs_skipped: int = 0       # background triggers skipped because the previous fit still ran
    last_loss: float = float("nan")
    last_duration: float = 0.0


class TrainingSchedule:
    """Owns a detector's retraining. Call ``events_until_due`` and ``trigger`` from the scoring thread."""

    def __init__(self, model: Model, training: Any, window: int, kp: np.ndarray, seed: int = 0,
                 background: bool | None = None,
                 on_result: Callable[[FitResult | None, float], None] | None = None,
                 on_skip: Callable[[], None] | None = None):
        self.model = model
        self.cfg = training
        self.enabled = bool(training.enabled)
        self.background = bool(training.background if background is None else background)
        self.skip_when_busy = bool(training.skip_when_busy)
        self.seed = seed
        self.on_result = on_result
        self.on_skip = on_skip
        self.window = int(window)
        self.kp = kp   # the kernel parameters: which inputs the rings' windows carry
        self.buffer = WindowBuffer(training.buffer_windows, window, model.n_inputs)
        self.stats = TrainingStats()
        self.events = 0             # events processed by the detector
        self.next_at = max(int(training.min_events), 1)
        self.gap = 0                # events the training budget makes the next trigger wait (see spacing)
        self.k = 0                  # retrainings triggered
        self.seen_seq = 0           # SlotState clock at the last trigger
        self.last_time = float("-inf")  # event time of the last trigger
        self._events_at_trigger = 0
        self._pending: Future | None = None
        self._pending_batch: np.ndarray | None = None   # what the background fit trains on
        self._started = 0.0
        self._pool = (ThreadPoolExecutor(1, thread_name_prefix="rnnstream-train", initializer=_lower_priority)
                      if self.background else None)

    def events_until_due(self) -> int:
        """How many more events may be processed before the next trigger (a large number if none)."""
        if not self.enabled:
            return 1 << 62
        return max(self.next_at - self.events, 0)

    def time_due_at(self) -> float:
        """Event time from which a time-based trigger is due (infinity when time triggers are off)."""
        every_seconds = float(self.cfg.every_seconds or 0)
        if not self.enabled or every_seconds <= 0:
            return float("inf")
        return self.last_time + every_seconds

    def first_time_event(self) -> int:
        """The event count from which a time-based trigger may fire: after min_events, and after at
        least ``window`` events since the last trigger."""
        return max(int(self.cfg.min_events), self._events_at_trigger + max(self.window, self.gap, 1))

    def due_by_time(self, watermark: float) -> bool:
        return self.events >= self.first_time_event() and watermark >= self.time_due_at()

    def advance(self, n: int) -> None:
        self.events += n

    def trigger(self, state: SlotState, now: float) -> None:
        """Run steps 1-3 of the module docstring at event time ``now`` (the detector's watermark).

        Call when ``events_until_due()`` is 0 or ``due_by_time(now)``.
        """
        if (self.skip_when_busy and self._pending is not None and self._pool is not None
                and not self._pending.done()):
            self._skip(now)
            return
        self.collect(wait=True)
        self.k += 1
        rng = np.random.default_rng([self.seed, self.k])
        seen = state.seen_since(self.seen_seq)
        fresh = with_ring(state.arrays, seen)
        self.seen_seq = state.seq
        if fresh.size > self.cfg.batch_windows:
            fresh = fresh[np.sort(rng.choice(fresh.size, size=self.cfg.batch_windows, replace=False))]
        newest = harvest_windows(state.arrays, fresh, self.kp, self.model.n_features, self.model.n_inputs,
                                 bool(self.cfg.exclude_anomalies))
        self.buffer.add(newest, rng)
        batch = self.buffer.sample(self.cfg.batch_windows, rng, newest)
        self.gap = spacing(self.cfg, len(batch), self.window, seen.size)
        self.next_at = self.events + max(int(self.cfg.every_events), self.gap)
        self.last_time = now
        self._events_at_trigger = self.events
        if len(batch) == 0:
            return
        weights, opt_state = self.model.weights, self.model.opt_state
        self._started = time.perf_counter()
        if self._pool is None:
            self._finish(self._fit(weights, opt_state, batch))
        else:
            self._pending = self._pool.submit(self._fit, weights, opt_state, batch)
            self._pending_batch = batch

    def _skip(self, now: float) -> None:
        """A background trigger while the previous fit runs: schedule the next one, start nothing."""
        self.next_at = self.events + int(self.cfg.every_events)
        self.last_time = now
        self._events_at_trigger = self.events
        self.stats.runs_skipped += 1
        log.debug("retraining skipped: the previous fit is still running",
                  extra={"model": self.model.type_name, "skipped": self.stats.runs_skipped})
        if self.on_skip is not None:
            self.on_skip()

    def _fit(self, weights, opt_state, batch) -> FitResult | None:
        try:
            return self.model.fit(weights, opt_state, batch, self.cfg)
        except Exception:  # a failed fit must never stop scoring
            log.exception("training failed", extra={"model": self.model.type_name})
            return None

    def collect(self, wait: bool) -> None:
        """Put a finished background fit in force (waiting for it if ``wait``)."""
        if self._pending is None or (not wait and not self._pending.done()):
            return
        result, self._pending = self._pending.result(), None
        self._finish(result)

    def _finish(self, result: FitResult | None) -> None:
        duration = time.perf_counter() - self._started
        ok = result is not None and np.isfinite(result.loss_after) and all(
            np.all(np.isfinite(w)) for w in result.weights.values())
        if ok:
            self.model.swap(result)
            self.stats.runs_ok += 1
            self.stats.last_loss = float(result.loss_after)
        else:
            if result is not None:
                log.warning("training produced non-finite weights or loss; keeping the old weights")
            self.stats.runs_failed += 1
        self.stats.last_duration = duration
        if self.on_result is not None:
            self.on_result(result if ok else None, duration)

    def snapshot(self) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        """``(arrays, meta)``: ``buffer.*`` and, when a fit is still to be put in force, ``pending.*``
        arrays; the counters as JSON-able meta. Never waits: of a background fit still running it keeps
        the windows it trains on (``pending.batch``), and ``restore`` runs that fit again (a pure
        function of them and of the weights in force, which only a trigger changes), so the restored
        schedule puts the same result in force at the same trigger."""
        arrays = {f"buffer.{k}": v for k, v in self.buffer.snapshot().items()}
        pending = self._pending_state()
        if pending == "running":
            arrays["pending.batch"] = self._pending_batch
        elif pending == "ok":
            result = self._pending.result()
            arrays.update({f"pending.w.{k}": v for k, v in result.weights.items()})
            arrays.update({f"pending.opt.{k}": v for k, v in result.opt_state.items()})
            arrays["pending.loss"] = np.array([result.loss_before, result.loss_after])
        meta = {"events": self.events, "next_at": self.next_at, "k": self.k, "seen_seq": self.seen_seq,
                "events_at_trigger": self._events_at_trigger, "gap": self.gap, "pending": pending,
                "last_time": self.last_time if np.isfinite(self.last_time) else None,
                "runs_ok": self.stats.runs_ok, "runs_failed": self.stats.runs_failed,
                "runs_skipped": self.stats.runs_skipped,
                "last_loss": self.stats.last_loss if np.isfinite(self.stats.last_loss) else None}
        return arrays, meta

    def arrays_version(self) -> str:
        """Changes whenever ``snapshot()``'s arrays may have (a trigger, a fit put in force or failed),
        so a writer can tell that arrays it already wrote are still current."""
        return f"{self.k}:{self._pending_state()}:{self.stats.runs_ok}:{self.stats.runs_failed}"

    def _pending_state(self) -> str:
        """The fit still to be put in force: "none", "running" (its windows are what a snapshot
        keeps), "failed" or "ok" (its result is)."""
        if self._pending is None:
            return "none"
        if not self._pending.done():
            return "running"
        return "failed" if self._pending.result() is None else "ok"

    def restore(self, arrays: dict[str, np.ndarray], meta: dict[str, Any]) -> None:
        """Put back what ``snapshot`` captured (KeyError/ValueError when something is missing). Call
        after the model's weights are restored: a fit that was running is started again from them."""
        self.buffer.load_snapshot({k[7:]: v for k, v in arrays.items() if k.startswith("buffer.")})
        t = meta
        self.events, self.next_at, self.k = int(t["events"]), int(t["next_at"]), int(t["k"])
        self.seen_seq, self._events_at_trigger = int(t["seen_seq"]), int(t["events_at_trigger"])
        self.gap = int(t.get("gap", 0))   # snapshots from before the training budget have none
        self.last_time = float("-inf") if t["last_time"] is None else float(t["last_time"])
        self.stats.runs_ok, self.stats.runs_failed = int(t["runs_ok"]), int(t["runs_failed"])
        self.stats.runs_skipped = int(t.get("runs_skipped", 0))
        self.stats.last_loss = float("nan") if t["last_loss"] is None else float(t["last_loss"])
        self._pending = None
        if t["pending"] == "running":
            batch = np.array(arrays["pending.batch"])
            weights, opt_state = self.model.weights, self.model.opt_state
            self._started = time.perf_counter()
            if self._pool is not None:
                self._pending = self._pool.submit(self._fit, weights, opt_state, batch)
                self._pending_batch = batch
            else:
                done = Future()
                done.set_result(self._fit(weights, opt_state, batch))
                self._pending = done
        elif t["pending"] != "none":
            result = None
            if t["pending"] == "ok":
                before, after = (float(v) for v in arrays["pending.loss"])
                result = FitResult({k[10:]: np.array(v) for k, v in arrays.items() if k.startswith("pending.w.")},
                                   {k[12:]: np.array(v) for k, v in arrays.items() if k.startswith("pending.opt.")},
                                   before, after)
            done: Future = Future()
            done.set_result(result)
            self._pending = done

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None
