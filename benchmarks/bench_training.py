"""What retraining costs the scoring thread: ``Detector.process`` with training off, in the background,
and inline, in one run, plus the fit itself.

1. Background (the daemon's mode) at the defaults: 1,000 entities, events 20 ms of event time apart
   (a backlog: the 300-second time trigger comes due every 15,000 events), micro-batches of 4,096.
   Rounds alternate training off / background, each on a fresh detector over the same stream; the
   figure is events per second of wall time summed over the rounds, and the ratio of the two. The
   background fit runs in its own thread and competes for the CPU with everything else on the
   machine: on a loaded two-core machine it takes the scoring thread's core part of the time.
2. Inline (replay and evaluation) at the defaults, the same stream: the fit runs on the scoring thread;
   the overhead is the extra time against training off.
3. Inline at ``config/nab.yaml`` on NAB's nyc_taxi (10,320 rows, one entity): detector time with and
   without training (the rows are parsed before the clock starts), so this is what `rnnstream replay`
   of that file adds for training.
4. One fit at the default shapes and at nab.yaml's, best of several, and one BPTT forward+backward
   pass of its batch.

Wall times depend on the machine's load; the scoring thread's CPU time (``time.thread_time``) much
less, so the inline overheads are also given by CPU time.

Prints the machine, the load average before and after, and every figure; asserts nothing.
Run: ``.venv/bin/python benchmarks/bench_training.py [--events 1000000] [--rounds 3]``
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import platform
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np

from rnnstream.config import load_config
from rnnstream.detector import Detector
from rnnstream.kernels.jit import configure_cache
from report import figure

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


def timed(cfg, stream, background: bool) -> tuple[float, float, Detector]:
    """Wall time and the calling (scoring) thread's CPU time of ``process`` over the stream."""
    ents, x, ts = stream
    det = Detector(cfg, background=background)
    started, cpu = time.perf_counter(), time.thread_time()
    for lo in range(0, len(ents), BATCH):
        det.process(ents[lo:lo + BATCH], x[lo:lo + BATCH], ts[lo:lo + BATCH])
    elapsed, cpu = time.perf_counter() - started, time.thread_time() - cpu
    det.close()   # waits for a running background fit: not in the timed part
    return elapsed, cpu, det


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


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--events", type=int, default=1_000_000)
    ap.add_argument("--entities", type=int, default=1000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--nab", default=str(ROOT.parent / "shared" / "nab"),
                    help="the NAB data directory (default: ../shared/nab beside the project)")
    args = ap.parse_args()
    configure_cache()
    load_before = os.getloadavg()
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
          f"python {platform.python_version()}, load average {load_before[0]:.2f} before")

    stream = synthetic(args.events, args.entities)
    off_cfg, on_cfg = _cfg(DEFAULTS, False), _cfg(DEFAULTS, True)
    timed(on_cfg, synthetic(20_000, 100, 1), False)   # compile every kernel before the clock starts
    totals = {"off": 0.0, "background": 0.0, "inline": 0.0}
    cpu = dict.fromkeys(totals, 0.0)
    fits = {"background": [0, 0], "inline": [0, 0]}   # fits run, triggers skipped
    for _ in range(args.rounds):
        for name, cfg, background in (("off", off_cfg, False), ("background", on_cfg, True),
                                      ("inline", on_cfg, False)):
            elapsed, used, det = timed(cfg, stream, background)
            totals[name] += elapsed
            cpu[name] += used
            if name in fits:
                fits[name][0] += det.training.k
                fits[name][1] += det.training.stats.runs_skipped
    n = args.events * args.rounds
    rate = {k: n / v for k, v in totals.items()}
    print(f"\nDetector.process, defaults, {args.entities} entities, {args.events} events x {args.rounds} rounds:")
    print(f"  training off          {rate['off'] / 1e3:8.0f} k events/s")
    print(f"  background training   {rate['background'] / 1e3:8.0f} k events/s   ratio {rate['background'] / rate['off']:.2f}"
          f"   ({fits['background'][0]} fits, {fits['background'][1]} triggers skipped)")
    print(f"  inline training       {rate['inline'] / 1e3:8.0f} k events/s   ratio {rate['inline'] / rate['off']:.2f}"
          f"   ({fits['inline'][0]} fits; overhead {totals['inline'] / totals['off'] - 1:+.0%} of scoring time)")
    print(f"  scoring thread CPU time: off {cpu['off']:.2f} s, background {cpu['background']:.2f} s, inline "
          f"{cpu['inline']:.2f} s: inline training adds {cpu['inline'] / cpu['off'] - 1:+.0%} (load-independent)")
    figure(f"Detector.process with background training against training off, defaults, {args.entities:,} entities",
           f"{rate['background'] / 1e3:.0f} k against {rate['off'] / 1e3:.0f} k events/s: ratio "
           f"{rate['background'] / rate['off']:.2f}", ">= 0.8")
    figure("inline training's cost, defaults, scoring thread CPU time",
           f"{cpu['inline'] / cpu['off'] - 1:+.0%} of scoring", "<= +20%")

    taxi = Path(args.nab) / NYC_TAXI
    if taxi.exists():
        nab_text = (ROOT / "config" / "nab.yaml").read_text()
        rows = nab_rows(taxi)
        t_off = t_on = c_off = c_on = 0.0
        for _ in range(args.rounds):
            elapsed, used, _ = timed(_cfg(nab_text, False), rows, False)
            t_off, c_off = t_off + elapsed, c_off + used
            elapsed, used, det = timed(_cfg(nab_text, True), rows, False)
            t_on, c_on = t_on + elapsed, c_on + used
        r = args.rounds
        print(f"\nconfig/nab.yaml inline, nyc_taxi ({len(rows[0])} rows, {det.training.k} fits), per run, Detector only:")
        print(f"  wall: training off {t_off / r:.3f} s, on {t_on / r:.3f} s; thread CPU: off {c_off / r:.3f} s, "
              f"on {c_on / r:.3f} s ({(c_on - c_off) / det.training.k / r * 1e3:.1f} ms CPU a fit)")
        figure("inline training's cost, config/nab.yaml on nyc_taxi, thread CPU time",
               f"{c_on / c_off:.1f}x the scoring alone", "<= 2x")
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
    print(f"\nload average {os.getloadavg()[0]:.2f} after")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
