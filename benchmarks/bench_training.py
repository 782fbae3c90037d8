"""What retraining costs: ``Detector.process`` with training off, in the background and inline at the
defaults, and `rnnstream replay` of a NAB file at ``config/nab.yaml``, each in one run, plus the fit.

1. Background (the daemon's mode) at the defaults: 1,000 entities, events 20 ms of event time apart
   (a backlog: the 300-second time trigger comes due every 15,000 events), micro-batches of 4,096.
   Each round runs training off, background and inline, each on a fresh detector over the same
   stream; the figure is the median over rounds of the background round's events per second of wall
   time against the same round's training-off figure. The background fit runs in its own thread and
   competes for the CPU with everything else on the machine: on a loaded two-core machine it takes the
   scoring thread's core part of the time.
2. Inline (replay and evaluation) at the defaults, the same rounds: the fit runs on the scoring thread;
   its cost is the scoring thread's extra CPU time against training off. A round holds only a few
   fits (the training budget spaces them ~820,000 events apart at 1,000 entities), so its own ratio
   depends on how many fall in it; the figure is the steady state instead (``fit_cost``): the extra
   CPU time per fit (median over rounds, each with the same number of fits) against the scoring of
   the events from one fit to the next (between a round's last two fits, of at least 3: every_events,
   every_seconds and the budget's spacing together; after the first fit the budget spaces the next by
   the work of a fit of a near-empty buffer, 4 times closer at the defaults). The denominator is ``Detector.process`` alone (no parsing or output),
   the strictest reading of "the scoring time". The spacing grows with the entities seen, so the
   share shrinks with them.
3. Inline at ``config/nab.yaml``: `rnnstream replay` of NAB's nyc_taxi (10,320 rows, one entity),
   in-process (``rnnstream.replay.replay``: reading and parsing the CSV, scoring, writing the output
   CSV; interpreter start-up and imports are not timed). Each round replays the file twice without
   and twice with training, in the order off, on, on, off (on, off, off, on in every other round:
   ``round_order``), so a load that changes through a round weighs on both, and keeps each side's
   faster replay: on this shared VM a replay's thread CPU time now and then grows 1.5-1.8x without a
   preemption or a collection in it (interference from outside the process only ever adds time). The
   figure is training's cost, the replay's thread CPU time with training minus without, against the
   replay without training (median over rounds of each round's ratio): the issue's "at most 2x". Also printed: the
   same cost against ``Detector.process`` alone on the parsed rows, and the cyclic GC's time inside
   the timed replays.

Every timed run starts from a settled cyclic garbage collector (``settled``: a full ``gc.collect()``
outside the clock). A full collection traverses every object of the process (numba's compiled
modules, the benchmark's own streams): 0.09-0.17 s here, as long as the whole replay without
training. Without the collect, one fell into whichever run crossed the collector's threshold, and the
nab.yaml rounds read 0.78x to 2.34x for the same code. The young collections the runs' own
allocations cause still happen inside the clock, as in any replay.
4. One fit at the default shapes and at nab.yaml's, best of several, and one BPTT forward+backward
   pass of its batch.

Wall times depend on the machine's load; the scoring thread's CPU time (``time.thread_time``) much
less, so the inline costs are given by CPU time.

Prints the machine, the load average before and after, and every figure; asserts nothing.
Run: ``.venv/bin/python benchmarks/bench_training.py [--events 1000000] [--rounds 3]``
"""

from __future__ import annotations

import argparse
import dataclasses
import gc
import os
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from rnnstream.config import load_config
from rnnstream.detector import Detector
from rnnstream.kernels.jit import configure_cache
from report import figure, machine_line

ROOT = Path(__file__).resolve().parent.parent
NYC_TAXI = Path("data") / "realKnownCause" / "nyc_taxi.csv"   # under --nab
DEFAULTS = """
detectors:
  - name: bench
    topics: [t]
    entity: host
    timestamp: {field: ts}
    features: [v]
"""
BATCH = 4096


@dataclasses.dataclass(frozen=True)
class Overhead:
    """Training's cost from rounds that each ran the same work without (``off``) and with (``on``)
    training: the medians of both, and the median of the rounds' ratios ``(on - off) / off``."""

    off: float
    on: float
    ratio: float

    @property
    def cost(self) -> float:
        """The median round's training cost, in the unit of ``off``: ``ratio * off``."""
        return self.ratio * self.off


def overhead(off: list[float], on: list[float]) -> Overhead:
    """Medians of paired rounds (round i ran ``off[i]`` and ``on[i]`` back to back); the ratio is taken
    per round, so a load that changes between rounds cancels out of it."""
    if len(off) != len(on) or not off:
        raise ValueError(f"need paired rounds, got {len(off)} without and {len(on)} with training")
    if min(off) <= 0:
        raise ValueError("a round without training took no time")
    return Overhead(statistics.median(off), statistics.median(on),
                    statistics.median((b - a) / a for a, b in zip(off, on)))


@dataclasses.dataclass(frozen=True)
class FitCost:
    """Inline training's cost per fit and per scored event, from paired rounds that each ran the same
    stream without (``off``) and with (``on``) training, ``fits`` fits a round: independent of how many
    fits happen to fall in a round of ``events`` events."""

    per_fit: float       # the median round's extra thread CPU time per fit, seconds
    per_event: float     # scoring's thread CPU time per event without training (median round), seconds
    interval: int        # events from one fit to the next in the steady state (the schedule's spacing)

    @property
    def share(self) -> float:
        """Training's steady-state cost as a share of the scoring time: one fit every ``interval``
        events against those events' scoring."""
        return self.per_fit / (self.interval * self.per_event)


def fit_cost(off: list[float], on: list[float], fits: list[int], events: int, interval: int) -> FitCost:
    """Per-fit and per-event costs from paired rounds (round i ran ``off[i]`` then ``on[i]`` with
    ``fits[i]`` fits); refuses rounds with different fit counts or without a fit (their extra time
    would not be a fit's)."""
    overhead(off, on)   # the same checks of the pairing
    if len(fits) != len(off) or len(set(fits)) != 1 or fits[0] < 1:
        raise ValueError(f"every round must run the same number (>= 1) of fits, got {fits}")
    if events < 1 or interval < 1:
        raise ValueError(f"need events >= 1 and interval >= 1, got {events} and {interval}")
    return FitCost(statistics.median((b - a) / n for a, b, n in zip(off, on, fits)),
                   statistics.median(off) / events, interval)


def _cfg(text: str, training: bool):
    cfg = load_config(text).detectors[0]
    return dataclasses.replace(cfg, training=dataclasses.replace(cfg.training, enabled=training))


def synthetic(n: int, n_entities: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    ents = [f"host-{i:05d}" for i in range(n_entities)]
    idx = rng.integers(0, n_entities, n)
    ts = 1.7e9 + 0.02 * np.arange(n)
    x = (np.sin(ts / 3600.0) + 0.3 * rng.standard_normal(n) + idx / n_entities).reshape(n, 1)
    return [ents[i] for i in idx], x, ts


def record_fits(det: Detector, at: list[int]) -> None:
    """Append to ``at`` the detector's event count at each trigger that ran a fit (inline mode)."""
    schedule = det.training
    trigger = schedule.trigger

    def recording(*args, **kwargs):
        before = schedule.stats.runs_ok
        trigger(*args, **kwargs)
        if schedule.stats.runs_ok > before:
            at.append(schedule.events)
    schedule.trigger = recording


class GCClock:
    """Thread CPU time the cyclic garbage collector spent in this thread while ``running``."""

    def __init__(self):
        self.seconds = 0.0
        self.collections = 0
        self.running = False
        self._start = 0.0
        gc.callbacks.append(self._callback)

    def _callback(self, phase: str, info: dict) -> None:
        if not self.running:
            return
        if phase == "start":
            self._start = time.thread_time()
        else:
            self.seconds += time.thread_time() - self._start
            self.collections += 1


GC_CLOCK = GCClock()


def settled() -> None:
    """Collect every generation, so that each timed run starts from the same collector state and no
    full collection of the whole process's objects (set by what ran before, not by the run) falls in it."""
    gc.collect()


def timed(cfg, stream, background: bool, fits_at: list[int] | None = None) -> tuple[float, float, Detector]:
    """Wall time and the calling (scoring) thread's CPU time of ``process`` over the stream; with
    ``fits_at``, the event counts of the fits (``record_fits``)."""
    ents, x, ts = stream
    det = Detector(cfg, background=background)
    if fits_at is not None:
        record_fits(det, fits_at)
    settled()
    started, cpu = time.perf_counter(), time.thread_time()
    for lo in range(0, len(ents), BATCH):
        det.process(ents[lo:lo + BATCH], x[lo:lo + BATCH], ts[lo:lo + BATCH])
    elapsed, cpu = time.perf_counter() - started, time.thread_time() - cpu
    det.close()   # waits for a running background fit: not in the timed part
    return elapsed, cpu, det


def round_order(r: int) -> tuple[bool, bool, bool, bool]:
    """Whether each of round ``r``'s four replays trains: without, with, with, without (ABBA), the
    reverse in every other round, so that a load that rises or falls through a round weighs on both
    halves alike."""
    return (True, False, False, True) if r % 2 else (False, True, True, False)


def timed_replay(cfg, path: Path, out: Path) -> float:
    """Thread CPU time of `rnnstream replay` of ``path`` in this process (inline training: one thread)."""
    from rnnstream.replay import replay

    settled()
    GC_CLOCK.running = True
    cpu = time.thread_time()
    replay(cfg, path, out, show_progress=False)
    cpu = time.thread_time() - cpu
    GC_CLOCK.running = False
    return cpu


def nab_rows(path: Path):
    import csv
    from datetime import datetime, timezone

    with path.open() as fh:
        rows = list(csv.DictReader(fh))
    ts = np.array([datetime.fromisoformat(r["timestamp"]).replace(tzinfo=timezone.utc).timestamp() for r in rows])
    x = np.array([[float(r["value"])] for r in rows])
    return ["nyc_taxi"] * len(rows), x, ts


def fit_times(training, hidden: int, n_inputs: int, repeats: int = 5) -> tuple[float, float]:
    from rnnstream.models.gru.bptt import GRAD_ORDER, loss_and_grad
    from rnnstream.models.gru.params import init_weights
    from rnnstream.models.gru.train import fit

    w = init_weights(hidden, n_inputs, 1, 0)
    windows = np.random.default_rng(1).standard_normal((training.batch_windows, training.window, n_inputs))
    windows = windows.astype(np.float32)
    params = {k: np.array(w[k], dtype=np.float64) for k in GRAD_ORDER}
    best_fit = best_pass = float("inf")
    for _ in range(repeats + 1):
        s = time.thread_time()
        fit(w, {}, windows, training)
        best_fit = min(best_fit, time.thread_time() - s)
        s = time.thread_time()
        loss_and_grad(params, windows)
        best_pass = min(best_pass, time.thread_time() - s)
    return best_fit, best_pass


def defaults_rounds(args) -> FitCost:
    stream = synthetic(args.events, args.entities)
    off_cfg, on_cfg = _cfg(DEFAULTS, False), _cfg(DEFAULTS, True)
    timed(on_cfg, synthetic(20_000, 100, 1), False)   # compile every kernel before the clock starts
    timed(off_cfg, stream, False)   # and touch the slot arrays' memory once: the first round would pay for it
    wall = {"off": [], "background": [], "inline": []}
    cpu = {k: [] for k in wall}
    fits = {"background": [0, 0], "inline": [0, 0]}   # fits run, triggers skipped
    inline_fits, interval = [], 0
    for _ in range(args.rounds):
        for name, cfg, background in (("off", off_cfg, False), ("background", on_cfg, True),
                                      ("inline", on_cfg, False)):
            fits_at: list[int] = []
            elapsed, used, det = timed(cfg, stream, background, fits_at if name == "inline" else None)
            wall[name].append(elapsed)
            cpu[name].append(used)
            if name in fits:
                fits[name][0] += det.training.stats.runs_ok
                fits[name][1] += det.training.stats.runs_skipped
            if name == "inline":
                inline_fits.append(det.training.stats.runs_ok)
                if len(fits_at) < 3:   # after the first fit the spacing is that of a fit of a near-empty buffer
                    raise SystemExit(f"{len(fits_at)} fits in a round of {args.events} events (3 needed for a "
                                     "steady spacing): raise --events")
                interval = fits_at[-1] - fits_at[-2]   # the schedule's steady spacing (every_events,
                # every_seconds and the budget together), the same in every round (deterministic)
    rate = {k: args.events / statistics.median(v) for k, v in wall.items()}
    # Events per second: background against off is the inverse of the wall-time ratio.
    bg_rounds = [a / b for a, b in zip(wall["off"], wall["background"])]
    bg_ratio = statistics.median(bg_rounds)
    inline = overhead(cpu["off"], cpu["inline"])
    steady = fit_cost(cpu["off"], cpu["inline"], inline_fits, args.events, interval)
    r = args.rounds
    print(f"\nDetector.process, defaults, {args.entities} entities, {args.events} events, {r} rounds (medians):")
    print(f"  training off          {rate['off'] / 1e3:8.0f} k events/s")
    print(f"  background training   {rate['background'] / 1e3:8.0f} k events/s   ratio {bg_ratio:.2f}"
          f"   ({fits['background'][0] / r:.0f} fits, {fits['background'][1] / r:.0f} triggers skipped a round; "
          f"rounds: {', '.join(f'{x:.2f}' for x in bg_rounds)})")
    print(f"  inline training       {rate['inline'] / 1e3:8.0f} k events/s   ({fits['inline'][0] / r:.0f} fits a round)")
    print(f"  scoring thread CPU time: off {inline.off:.2f} s, background {statistics.median(cpu['background']):.2f} s, "
          f"inline {inline.on:.2f} s: inline training costs {inline.ratio:+.0%} of the scoring time of these rounds")
    print(f"  per fit: {steady.per_fit * 1e3:.1f} ms of CPU; scoring {steady.per_event * 1e9:.0f} ns an event; "
          f"steady state one fit every {steady.interval:,} events (between the rounds' last two fits, "
          f"{args.entities} entities): training costs {steady.share:+.0%} of the scoring time")
    figure(f"Detector.process with background training against training off, defaults, {args.entities:,} entities",
           f"{rate['background'] / 1e3:.0f} k against {rate['off'] / 1e3:.0f} k events/s: ratio "
           f"{bg_ratio:.2f} (median of {r} rounds)", ">= 0.8")
    figure("inline training's cost, defaults, scoring thread CPU time against Detector.process without training, "
           f"steady state ({args.entities:,} entities: one fit every {steady.interval:,} events)",
           f"{steady.share:+.0%} of the scoring time ({steady.per_fit * 1e3:.0f} ms a fit, "
           f"{steady.per_event * 1e9:.0f} ns an event scored; median of {r} rounds of {inline_fits[0]} fits; "
           f"{inline.ratio:+.0%} over the rounds themselves)", "<= +20%")
    return steady


def nab_rounds(args, taxi: Path) -> None:
    nab_text = (ROOT / "config" / "nab.yaml").read_text()
    off_cfg, on_cfg = _cfg(nab_text, False), _cfg(nab_text, True)
    rows = nab_rows(taxi)
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "scores.csv"
        timed_replay(on_cfg, taxi, out)   # compile and load every kernel first
        replay_off, replay_on, det_off, det_on = [], [], [], []
        for r in range(args.nab_rounds):
            spent = {False: [], True: []}
            for training in round_order(r):
                spent[training].append(timed_replay(on_cfg if training else off_cfg, taxi, out))
            replay_off.append(min(spent[False]))   # interference only ever adds time
            replay_on.append(min(spent[True]))
            det_off.append(timed(off_cfg, rows, False)[1])
            _, used, det = timed(on_cfg, rows, False)
            det_on.append(used)
    rep, alone = overhead(replay_off, replay_on), overhead(det_off, det_on)
    ratios = [(b - a) / a for a, b in zip(replay_off, replay_on)]
    stats = det.training.stats
    n = args.nab_rounds
    print(f"\nconfig/nab.yaml inline, nyc_taxi ({len(rows[0])} rows; {det.training.k} triggers, {stats.runs_ok} fits, "
          f"{det.training.k - stats.runs_ok - stats.runs_failed} trained nothing), thread CPU time, medians of {n} rounds:")
    print(f"  replay: training off {rep.off:.3f} s, on {rep.on:.3f} s: training costs {rep.cost:.3f} s, "
          f"{rep.ratio:.2f}x the replay without it (rounds: {', '.join(f'{x:.2f}' for x in ratios)}; "
          f"without training {min(replay_off):.3f}-{max(replay_off):.3f} s)")
    print(f"  Detector.process alone: off {alone.off:.3f} s, on {alone.on:.3f} s: training {alone.ratio:.1f}x "
          f"the scoring kernel alone")
    print(f"  cyclic GC inside the {4 * n} timed replays: {GC_CLOCK.seconds * 1e3:.0f} ms in "
          f"{GC_CLOCK.collections} collections (each run starts from a full collection outside the clock)")
    figure("inline training's cost, config/nab.yaml, `replay` of nyc_taxi, thread CPU time against the same replay "
           "without training",
           f"{rep.cost:.2f} s against {rep.off:.2f} s: **{rep.ratio:.2f}x** (median of {n} ABBA rounds, "
           f"{min(ratios):.2f}-{max(ratios):.2f})", "<= 2x")


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--events", type=int, default=2_000_000)
    ap.add_argument("--entities", type=int, default=1000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--nab-rounds", type=int, default=9, help="rounds of the nyc_taxi replay (default 9)")
    ap.add_argument("--nab", default=str(ROOT.parent / "shared" / "nab"),
                    help="the NAB data directory (default: ../shared/nab beside the project)")
    args = ap.parse_args()
    configure_cache()
    print(machine_line())

    steady = defaults_rounds(args)
    taxi = Path(args.nab) / NYC_TAXI
    if taxi.exists():
        nab_rounds(args, taxi)
    else:
        print(f"\n(no {taxi}: the nab.yaml figure is left out)")

    print("\none fit (best of 5, thread CPU time):")
    for label, text in (("defaults", DEFAULTS), ("nab.yaml", (ROOT / "config" / "nab.yaml").read_text())):
        cfg = load_config(text).detectors[0]
        det = Detector(cfg, background=False)
        n_inputs, hidden = det.model.n_inputs, det.model.hidden
        det.close()
        tr = cfg.training
        fit_s, pass_s = fit_times(tr, hidden, n_inputs)
        print(f"  {label}: H={hidden} D={n_inputs} {tr.batch_windows} windows x {tr.window} steps, "
              f"{tr.steps} Adam steps: {fit_s * 1e3:.1f} ms ({pass_s * 1e3:.2f} ms per forward+backward pass)")
        if label == "defaults":   # a round's first fits may train on fewer windows: the full-size fit's share
            print(f"    one such fit every {steady.interval:,} events: "
                  f"{dataclasses.replace(steady, per_fit=fit_s).share:+.0%} of the scoring time")
    print(f"\nload average {os.getloadavg()[0]:.2f} after")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
