"""The LSTM's step kernel against the GRU's, in one run, and each model type's memory per entity.

Setup as ``bench_gru_step.py`` (H=32, F=1, time features on (D=6), micro-batches of 10,000 events
over 10,000 random entities, history ring of 64 events, every entity past its warm-up before timing).
The models' batches alternate (GRU, LSTM, then the stacked variants, each on its own slot arrays and
the same events), so a load change on the shared machine hits them alike; the ratio of the medians
is the figure to read. Times are wall time and the thread's CPU time (``time.thread_time``).

Memory per entity: the bytes of one row of every slot array (the common fields and the model's
``state_fields``) for each model type at the same H, F, D and ring; plus the model's own part.

Run: ``.venv/bin/python benchmarks/bench_lstm_step.py [--hidden 32] [--repeats 30] [--entities N]``
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import time

import numpy as np

from rnnstream.config.model_params import MODEL_PARAMS
from rnnstream.kernels.jit import configure_cache
from rnnstream.kernels.params import KP_WARMUP, kernel_params
from rnnstream.models.base import BatchOutput, common_fields, model_class
from rnnstream.state.slots import SlotState

VARIANTS = [("gru", 1), ("lstm", 1), ("gru", 2), ("lstm", 2)]


def row_bytes(fields) -> int:
    """Bytes of an entity's slot row; the history ring (pooled: ``training.sample_entities`` entities
    keep one) is left out, and the slot's ring address (``pool_row``, int32) counted."""
    pooled = any(f.pooled for f in fields.values())
    return 4 * pooled + sum(int(np.prod(f.shape, dtype=np.int64)) * np.dtype(f.dtype).itemsize
                            for f in fields.values() if not f.pooled)


def make(type_name: str, layers: int, f: int, d: int, args):
    pcls = MODEL_PARAMS[type_name]
    names = {"hidden": args.hidden, "layers": layers, "seed": 0}
    params = dataclasses.replace(pcls(), **{k: v for k, v in names.items() if k in pcls.__dataclass_fields__})
    return model_class(type_name)(f, d, params)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--hidden", type=int, default=32)
    ap.add_argument("--entities", type=int, default=10_000)
    ap.add_argument("--batch", type=int, default=10_000)
    ap.add_argument("--window", type=int, default=64)
    ap.add_argument("--repeats", type=int, default=30)
    args = ap.parse_args()
    configure_cache()
    f, d = 1, 6
    kp = kernel_params(True, True, True)
    common = common_fields(f, d, args.window, 24)

    print(f"memory per entity (H={args.hidden} F={f} D={d}, daily profile 24 bins, the ring of {args.window} "
          f"events kept for a sample of entities only): common fields {row_bytes(common)} B")
    for type_name, layers in [("naive", 1), ("esn", 1)] + VARIANTS + [("gru", 3), ("lstm", 3)]:
        model = make(type_name, layers, f, d, args)
        own = row_bytes(model.state_fields())
        label = type_name + (f" {layers} layers" if layers > 1 else "") + (" (200 units)" if type_name == "esn" else "")
        print(f"  {label:18s} model state {own:6d} B, total {own + row_bytes(common):6d} B")

    runs = []
    for type_name, layers in VARIANTS:
        model = make(type_name, layers, f, d, args)
        state = SlotState({**common_fields(f, d, args.window), **model.state_fields()},
                          max_entities=args.entities, initial_capacity=args.entities, pool_size=args.entities)
        state.slots_for([f"e{k}" for k in range(args.entities)])
        runs.append((f"{type_name.upper()}" + (f"x{layers}" if layers > 1 else ""), model, state, [], []))
    out = BatchOutput.allocate(args.batch, f)
    rng = np.random.default_rng(1)
    untimed = 3 + int(np.ceil(args.entities * (kp[KP_WARMUP] + 5) / args.batch))
    for rep in range(args.repeats + untimed):
        slots = rng.integers(0, args.entities, args.batch)
        x = rng.normal(size=(args.batch, f))
        ts = 1.7e9 + rep * 60.0 + np.sort(rng.uniform(0, 60.0, args.batch))
        for _, model, state, wall, cpu in runs:
            start, start_cpu = time.perf_counter(), time.thread_time()
            model.step(state.arrays, slots, x, ts, kp, out)
            if rep >= untimed:
                wall.append(time.perf_counter() - start)
                cpu.append(time.thread_time() - start_cpu)
    print(f"H={args.hidden} batch={args.batch} entities={args.entities}, median of {args.repeats} alternating "
          f"batches (load average {os.getloadavg()[0]:.1f})")
    base_wall, base_cpu = np.median(runs[0][3]), np.median(runs[0][4])
    for name, model, _, wall, cpu in runs:
        w, c = float(np.median(wall)), float(np.median(cpu))
        print(f"  {name:6s} {w / args.batch * 1e6:.3f} us/step wall, {c / args.batch * 1e6:.3f} us/step CPU "
              f"({args.batch / c / 1e6:.2f} M/s); vs GRU: {w / base_wall:.2f}x wall, {c / base_cpu:.2f}x CPU; "
              f"model FLOP/step {model.flops_per_step()}")


if __name__ == "__main__":
    main()
