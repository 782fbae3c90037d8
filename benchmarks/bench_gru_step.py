"""Throughput of the GRU batch step kernel (cell + head + shared normaliser/scorer/ring).

Setup: H=32, F=1, all time features on (D=6), micro-batches of 10,000 events over 10,000 entities
(random slots), history ring of 64 events. Untimed batches first, until every entity is past its
scoring warm-up. Prints the median over repeated runs and, to put it in proportion, a ceiling from
what this machine and the compiled kernel actually do:

- the clock, measured (a timed chain of dependent integer shifts and adds, one a cycle;
  /proc/cpuinfo's figure in a VM is often the nominal TSC rate, not the running clock);
- the kernel's instruction mix, counted in its compiled code: the packed float multiplies and adds by
  register width (the products are multiply-then-add, no FMA, so an FMA unit does one FLOP a lane);
- ``--fp-pipes`` vector floating-point instructions issued a cycle (default 2: Zen 4's one 512-bit
  multiply and one 512-bit add; Skylake-SP/Ice Lake's two 512-bit FMA ports; Xeons with one
  512-bit unit do 1).

The ceiling counts the model's own FLOPs only (``flops_per_step``: cell, gates, head), not the
shared normaliser and scorer, which take a large part of a step, so it is a bound, not a target.

Times are wall time and the thread's CPU time (``time.thread_time``: without the waits for a core on
a shared machine). Set ``NUMBA_CPU_NAME`` (e.g. ``skylake-avx512``) to see the code and speed LLVM
gives another CPU model (it must run on this one).

Run: ``.venv/bin/python benchmarks/bench_gru_step.py [--hidden 32] [--repeats 30] [--entities N]
[--no-time-features] [--fp-pipes 2]``
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import time
from collections import Counter
from types import SimpleNamespace

import numba
import numpy as np

from rnnstream.kernels.jit import configure_cache
from rnnstream.kernels.params import KP_WARMUP, kernel_params
from rnnstream.models.base import BatchOutput, common_fields
from rnnstream.models.gru import GRUModel, flops_per_step
from rnnstream.models.gru.kernel import gru_step_batch
from rnnstream.state.slots import SlotState

@numba.njit(cache=False)
def _shift_add_chain(x, n):
    """``n`` rounds of ``x += x >> 7``: a shift then an add, each waiting for the last (2 cycles a round
    on any x86-64 or Arm core: both are 1-cycle integer operations); LLVM cannot shorten the chain."""
    for _ in range(n):
        x = x + (x >> 7)
    return x


def measured_mhz(rounds: int = 60, n: int = 1_000_000) -> float:
    """The core clock from the dependent chain: the best of ``rounds`` short runs (a shared machine
    only ever makes a run look slower)."""
    _shift_add_chain(3, 10)
    best = float("inf")
    for _ in range(rounds):
        start = time.perf_counter()
        _shift_add_chain(3, n)
        best = min(best, time.perf_counter() - start)
    return 2 * n / best / 1e6


def cpu_model() -> str:
    for line in subprocess.run(["lscpu"], capture_output=True, text=True).stdout.splitlines():
        if line.startswith("Model name:"):
            return line.split(":", 1)[1].strip()
    return "unknown"


def cpuinfo_mhz() -> float:
    with open("/proc/cpuinfo") as fh:
        for line in fh:
            if line.startswith("cpu MHz"):
                return float(line.split(":")[1])
    return float("nan")


_FP = re.compile(r"^\s*v(mul|add|sub|fmadd\w*|fmsub\w*|fnmadd\w*|div)(ps|ss)\b(.*)$")


def instruction_mix() -> Counter:
    """Static count of float32 arithmetic instructions in the compiled step kernel, keyed by
    ``(operation, width)``: width 512/256/128 for packed, 32 for scalar. The cached kernel cannot be
    disassembled, so this compiles a fresh copy with the same options and signature."""
    options = {k: v for k, v in gru_step_batch.targetoptions.items() if k != "nopython"}
    fresh = numba.njit(**options)(gru_step_batch.py_func)
    sig = gru_step_batch.signatures[0]
    fresh.compile(sig)
    mix: Counter = Counter()
    for line in fresh.inspect_asm(sig).splitlines():
        m = _FP.match(line)
        if not m:
            continue
        op = "fma" if m.group(1).startswith(("fmadd", "fmsub", "fnmadd")) else m.group(1)
        width = 32 if m.group(2) == "ss" else 512 if "zmm" in m.group(3) else 256 if "ymm" in m.group(3) else 128
        mix[op, width] += 1
    return mix


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--hidden", type=int, default=32)
    ap.add_argument("--entities", type=int, default=10_000)
    ap.add_argument("--batch", type=int, default=10_000)
    ap.add_argument("--window", type=int, default=64)
    ap.add_argument("--repeats", type=int, default=30)
    ap.add_argument("--fp-pipes", type=int, default=2,
                    help="vector float instructions (multiply or add) issued per cycle, for the ceiling")
    ap.add_argument("--no-time-features", action="store_true",
                    help="the feature alone as input (D=1): no time-of-day, day-of-week or gap inputs")
    args = ap.parse_args()
    configure_cache()

    tf = not args.no_time_features
    f, d = 1, (6 if tf else 1)
    model = GRUModel(f, d, SimpleNamespace(hidden=args.hidden, seed=0))
    fields = {**common_fields(f, d, args.window), **model.state_fields()}
    state = SlotState(fields, max_entities=args.entities, initial_capacity=args.entities, pool_size=args.entities)
    state.slots_for([f"e{k}" for k in range(args.entities)])
    kp = kernel_params(tf, tf, tf)
    rng = np.random.default_rng(1)
    out = BatchOutput.allocate(args.batch, f)
    t0 = 1.7e9
    # Untimed batches first: compilation, caches, and every entity past its warm-up (a warming entity
    # skips the score's tail probability, so timing it would flatter the kernel).
    untimed = 3 + int(np.ceil(args.entities * (kp[KP_WARMUP] + 5) / args.batch))
    times, cpu = [], []
    for rep in range(args.repeats + untimed):
        slots = rng.integers(0, args.entities, args.batch)
        x = rng.normal(size=(args.batch, f))
        ts = t0 + rep * 60.0 + np.sort(rng.uniform(0, 60.0, args.batch))
        start, start_cpu = time.perf_counter(), time.thread_time()
        model.step(state.arrays, slots, x, ts, kp, out)
        elapsed, elapsed_cpu = time.perf_counter() - start, time.thread_time() - start_cpu
        if rep >= untimed:
            times.append(elapsed)
            cpu.append(elapsed_cpu)
    scored = float(np.mean(state.arrays["count"][:args.entities] > kp[KP_WARMUP]))
    med = float(np.median(times))
    rate = args.batch / med
    flops = flops_per_step(args.hidden, d, f)
    mhz = measured_mhz()
    mix = instruction_mix()
    packed = {w: sum(n for (op, width), n in mix.items() if width == w and op in ("mul", "add", "sub"))
              for w in (512, 256, 128)}
    width = max((w for w in packed if packed[w]), key=lambda w: packed[w], default=32)
    lanes = width // 32
    flop_per_cycle = lanes * args.fp_pipes
    peak = flop_per_cycle * mhz * 1e6
    print(f"cpu: {cpu_model()}; clock measured {mhz:.0f} MHz (dependent shift-add chain), /proc/cpuinfo says "
          f"{cpuinfo_mhz():.0f} MHz")
    print(f"H={args.hidden} F={f} D={d} batch={args.batch} entities={args.entities} window={args.window} "
          f"(entities past warm-up: {scored:.0%})")
    rate_cpu = args.batch / float(np.median(cpu))
    print(f"median of {args.repeats}: {med * 1e3:.2f} ms/batch, {rate / 1e6:.2f} M entity-steps/s, "
          f"{1e6 / rate:.3f} us/step (wall); {rate_cpu / 1e6:.2f} M/s by thread CPU time "
          f"(load average {os.getloadavg()[0]:.1f})")
    print("compiled kernel, float32 arithmetic instructions (static count): "
          + ", ".join(f"{op} {w if w > 32 else 'scalar'}{'-bit' if w > 32 else ''}: {n}"
                      for (op, w), n in sorted(mix.items())))
    print(f"model FLOP/step: {flops} (multiply and add separate: no FMA in the kernel); "
          f"achieved {flops * rate / 1e9:.2f} GFLOP/s")
    print(f"ceiling: {width}-bit vectors ({lanes} lanes) x {args.fp_pipes} vector FP instructions/cycle x "
          f"{mhz:.0f} MHz = {peak / 1e9:.1f} GFLOP/s per core -> {peak / flops / 1e6:.1f} M steps/s "
          f"({flops / peak * 1e6:.3f} us/step); the step reaches {flops * rate / peak:.0%} of it")
    from report import figure

    figure(f"GRU step kernel, H={args.hidden}, D={d}, batches of {args.batch:,} over {args.entities:,} entities",
           f"**{rate / 1e6:.2f} M entity-steps/s** wall, {rate_cpu / 1e6:.2f} M by thread CPU time "
           f"(median of {args.repeats}); {flops * rate / peak:.0%} of the FLOP ceiling", ">= 2 M/s")


if __name__ == "__main__":
    main()
