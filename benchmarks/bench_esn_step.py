"""Throughput of the ESN step kernel: median entity-steps per second over micro-batches.

Each micro-batch is 10,000 events of entities drawn uniformly from 10,000 (so most slots are touched
once per batch, in random order: the cache-unfriendly case). F=1 feature, D=6 inputs (time of day,
day of week, log gap). Untimed batches first: compilation, and every entity past its scoring warm-up
(a warming entity skips the score's tail probability, which would flatter the kernel).

Two clocks per batch: wall time, and the calling thread's CPU time (``time.thread_time``), which leaves
out the time the thread waited for a core; on a shared machine the second is the kernel's own speed.

    python benchmarks/bench_esn_step.py [--sizes 200 64] [--batches 15]
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from types import SimpleNamespace

import numpy as np

from rnnstream.kernels.jit import configure_cache
from rnnstream.kernels.params import KP_WARMUP, kernel_params
from rnnstream.models.base import BatchOutput, common_fields
from rnnstream.models.esn import ESN
from rnnstream.state.slots import SlotState

N_ENTITIES = 10_000
BATCH = 10_000
F, D, WINDOW = 1, 6, 64


def bench(size: int, batches: int, seed: int = 0) -> tuple[float, float]:
    """Median entity-steps/s of ``ESN.step`` at reservoir ``size``: by wall time, by thread CPU time."""
    params = SimpleNamespace(size=size, spectral_radius=0.9, leak_rate=0.3, input_scaling=1.0,
                             sparsity=0.9, ridge=1e-3, forgetting=0.999, seed=0)
    model = ESN(F, D, params)
    fields = {**common_fields(F, D, WINDOW), **model.state_fields()}
    state = SlotState(fields, N_ENTITIES, initial_capacity=N_ENTITIES, pool_size=N_ENTITIES)
    slots, _ = state.slots_for([f"e{k}" for k in range(N_ENTITIES)])
    rng = np.random.default_rng(seed)
    kp = kernel_params()
    out = BatchOutput.allocate(BATCH, F)
    t0 = 1.7e9
    untimed = 1 + int(np.ceil(N_ENTITIES * (kp[KP_WARMUP] + 5) / BATCH))
    times, cpu = [], []
    for b in range(batches + untimed):
        idx = slots[rng.integers(0, N_ENTITIES, BATCH)]
        x = rng.standard_normal((BATCH, F))
        ts = t0 + 60.0 * b + np.sort(rng.random(BATCH)) * 59.0
        start, start_cpu = time.perf_counter(), time.thread_time()
        model.step(state.arrays, idx, x, ts, kp, out)
        elapsed, elapsed_cpu = time.perf_counter() - start, time.thread_time() - start_cpu
        if b >= untimed:
            times.append(elapsed)
            cpu.append(elapsed_cpu)
    return BATCH / float(np.median(times)), BATCH / float(np.median(cpu))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[200, 64])
    ap.add_argument("--batches", type=int, default=15)
    args = ap.parse_args()
    configure_cache()
    print(f"machine: {platform.machine()}, {time.strftime('%Y-%m-%d %H:%M')}, load average "
          f"{' '.join(f'{v:.1f}' for v in os.getloadavg())}")
    for size in args.sizes:
        rate, rate_cpu = bench(size, args.batches)
        print(f"esn step R={size:<4d} F={F} D={D} sparsity 0.9: {rate:,.0f} entity-steps/s wall "
              f"({1e6 / rate:.2f} us/event), {rate_cpu:,.0f} by thread CPU time ({1e6 / rate_cpu:.2f} us); "
              f"medians of {args.batches} batches of {BATCH}")
        from report import figure

        figure(f"ESN step, R={size}, sparsity 0.9, batches of {BATCH:,}",
               f"**{rate_cpu / 1e6:.2f} M entity-steps/s** by thread CPU time, {rate / 1e6:.2f} M wall "
               f"(medians of {args.batches})", ">= 1 M/s" if size == 200 else "")


if __name__ == "__main__":
    main()
