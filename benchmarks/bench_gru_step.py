"""Throughput of the GRU batch step kernel (cell + head + shared normaliser/scorer/ring).

Setup: H=32, F=1, all time features on (D=6), micro-batches of 10,000 events over 10,000 entities
(random slots), history ring of 64 events. Untimed batches first, until every entity is past its
scoring warm-up. Prints the median over repeated runs, the model's FLOP count
per step and the ceiling that count implies at an assumed float32 peak of 32 FLOP/cycle/core
(two 256-bit FMA pipes: AVX2/AVX-512 machines such as Zen 4 or Skylake-SP) on one core.

Run: ``.venv/bin/python benchmarks/bench_gru_step.py [--hidden 32] [--repeats 30] [--entities N]
[--no-time-features]``
"""

from __future__ import annotations

import argparse
import subprocess
import time
from types import SimpleNamespace

import numpy as np

from rnnstream.kernels.params import KP_WARMUP, kernel_params
from rnnstream.models.base import BatchOutput, common_fields
from rnnstream.models.gru import GRUModel, flops_per_step
from rnnstream.state.slots import SlotState

PEAK_FLOP_PER_CYCLE = 32


def cpu_model() -> str:
    for line in subprocess.run(["lscpu"], capture_output=True, text=True).stdout.splitlines():
        if line.startswith("Model name:"):
            return line.split(":", 1)[1].strip()
    return "unknown"


def cpu_mhz() -> float:
    with open("/proc/cpuinfo") as fh:
        for line in fh:
            if line.startswith("cpu MHz"):
                return float(line.split(":")[1])
    return float("nan")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--hidden", type=int, default=32)
    ap.add_argument("--entities", type=int, default=10_000)
    ap.add_argument("--batch", type=int, default=10_000)
    ap.add_argument("--window", type=int, default=64)
    ap.add_argument("--repeats", type=int, default=30)
    ap.add_argument("--no-time-features", action="store_true",
                    help="the feature alone as input (D=1): no time-of-day, day-of-week or gap inputs")
    args = ap.parse_args()

    tf = not args.no_time_features
    f, d = 1, (6 if tf else 1)
    model = GRUModel(f, d, SimpleNamespace(hidden=args.hidden, seed=0))
    fields = {**common_fields(f, d, args.window), **model.state_fields()}
    state = SlotState(fields, max_entities=args.entities, initial_capacity=args.entities)
    state.slots_for([f"e{k}" for k in range(args.entities)])
    kp = kernel_params(tf, tf, tf)
    rng = np.random.default_rng(1)
    out = BatchOutput.allocate(args.batch, f)
    t0 = 1.7e9
    # Untimed batches first: compilation, caches, and every entity past its warm-up (a warming entity
    # skips the score's tail probability, so timing it would flatter the kernel).
    untimed = 3 + int(np.ceil(args.entities * (kp[KP_WARMUP] + 5) / args.batch))
    times = []
    for rep in range(args.repeats + untimed):
        slots = rng.integers(0, args.entities, args.batch)
        x = rng.normal(size=(args.batch, f))
        ts = t0 + rep * 60.0 + np.sort(rng.uniform(0, 60.0, args.batch))
        start = time.perf_counter()
        model.step(state.arrays, slots, x, ts, kp, out)
        elapsed = time.perf_counter() - start
        if rep >= untimed:
            times.append(elapsed)
    scored = float(np.mean(state.arrays["count"][:args.entities] > kp[KP_WARMUP]))
    med = float(np.median(times))
    rate = args.batch / med
    flops = flops_per_step(args.hidden, d, f)
    mhz = cpu_mhz()
    peak = PEAK_FLOP_PER_CYCLE * mhz * 1e6
    print(f"cpu: {cpu_model()} @ {mhz:.0f} MHz (cpuinfo)")
    print(f"H={args.hidden} F={f} D={d} batch={args.batch} entities={args.entities} window={args.window} "
          f"(entities past warm-up: {scored:.0%})")
    print(f"median of {args.repeats}: {med * 1e3:.2f} ms/batch, {rate / 1e6:.2f} M entity-steps/s, "
          f"{1e6 / rate:.3f} us/step")
    print(f"model FLOP/step: {flops}; achieved {flops * rate / 1e9:.2f} GFLOP/s")
    print(f"assumed peak: {PEAK_FLOP_PER_CYCLE} FLOP/cycle/core x {mhz:.0f} MHz = {peak / 1e9:.1f} GFLOP/s "
          f"per core -> ceiling {peak / flops / 1e6:.1f} M steps/s ({flops / peak * 1e6:.3f} us/step)")


if __name__ == "__main__":
    main()
