"""Memory per entity: a detector at the defaults filled with 1 M entities, per model type.

Each model type runs in its own process: the resident set size (RSS, from /proc/self/statm) is read
after the kernels are compiled and a small detector has run (the baseline), then a detector with
``max_entities`` = N gets two events of each of N entities (names ``host-0000000``...), and the RSS is
read again. Reported per entity: the RSS growth, the slot arrays' share (every per-entity field of the
``SlotState``), the history-ring pool's share (``training.sample_entities`` rings, divided by N), the
entity index's arrays (``state.index``), the rest (allocator slack: memory freed by the batches'
temporaries that the allocator keeps, and the process's other growth), and the largest fields (a
pooled field counted as its pool's bytes divided by N).

Run: ``.venv/bin/python benchmarks/bench_memory.py [--entities 1000000] [--types gru,esn,naive]``
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

import numpy as np
from report import figure

DEFAULTS = """
detectors:
  - name: bench
    topics: [t]
    entity: host
    timestamp: {{field: ts}}
    features: [v]
    max_entities: {n}
    model: {{type: {model}}}
"""
BATCH = 65536


def rss_bytes() -> int:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def measure(model: str, n: int) -> dict:
    from rnnstream.config import load_config
    from rnnstream.detector import Detector
    from rnnstream.kernels.jit import configure_cache

    configure_cache()
    warm = Detector(load_config(DEFAULTS.format(n=1000, model=model)).detectors[0], background=False)
    warm.process([f"w{i}" for i in range(300)], np.ones((300, 1)), 1.7e9 + np.arange(300.0))
    warm.close()
    det = Detector(load_config(DEFAULTS.format(n=n, model=model)).detectors[0], background=False)
    det.training.enabled = False   # memory only: no retraining in the way
    base = rss_bytes()
    started = time.perf_counter()
    rng = np.random.default_rng(0)
    for rep in range(2):
        for lo in range(0, n, BATCH):
            hi = min(n, lo + BATCH)
            names = [f"host-{i:07d}" for i in range(lo, hi)]
            t = 1.7e9 + 60.0 * rep + np.arange(lo, hi) * 1e-6
            det.process(names, rng.standard_normal((hi - lo, 1)), t)
    elapsed = time.perf_counter() - started
    grown = rss_bytes() - base
    st = det.state
    assert len(st) == n == st.capacity, (len(st), st.capacity)
    arrays = {k: st[k].nbytes / n for k in st.fields}
    pool = sum(arrays[k] for k in st.pooled)
    return {"model": model, "entities": n, "rss_per_entity": grown / n, "arrays_per_entity": sum(arrays.values()) - pool,
            "pool_per_entity": pool, "rings": st.pool_used(), "index_per_entity": st.index.nbytes() / n,
            "fields": sorted(arrays.items(), key=lambda kv: -kv[1]), "seconds": elapsed,
            "n_inputs": det.model.n_inputs, "window": det.training.window}


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as fh:
            return next(line.split(":", 1)[1].strip() for line in fh if line.startswith("model name"))
    except (OSError, StopIteration):
        return "unknown CPU"


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--entities", type=int, default=1_000_000)
    ap.add_argument("--types", default="gru,esn,naive")
    ap.add_argument("--one", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.one:
        print(json.dumps(measure(args.one, args.entities)))
        return 0
    print(f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f}; defaults, {args.entities} entities, "
          "two events each")
    print(f"{os.uname().machine}, {_cpu_model()}; {os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') >> 30} GiB")
    print(f"{'model':6} {'RSS/entity':>11} {'slots':>7} {'rings':>6} {'index':>6} {'rest':>6}   "
          "largest fields (bytes/entity)")
    for model in args.types.split(","):
        proc = subprocess.run([sys.executable, __file__, "--one", model, "--entities", str(args.entities)],
                              capture_output=True, text=True)
        if proc.returncode != 0:
            print(f"{model}: failed\n{proc.stderr[-2000:]}")
            continue
        r = json.loads(proc.stdout.strip().splitlines()[-1])
        fields = ", ".join(f"{k} {v:.0f}" for k, v in r["fields"][:6])
        rest = r["rss_per_entity"] - r["arrays_per_entity"] - r["pool_per_entity"] - r["index_per_entity"]
        print(f"{model:6} {r['rss_per_entity']:9.0f} B {r['arrays_per_entity']:5.0f} B {r['pool_per_entity']:4.0f} B "
              f"{r['index_per_entity']:4.0f} B {rest:4.0f} B   {fields}   (D={r['n_inputs']}, W={r['window']}, {r['rings']} rings, "
              f"{r['seconds']:.1f} s)")
        figure(f"memory per entity, {model}, defaults, {args.entities:,} entities (RSS growth)",
               f"{r['rss_per_entity']:.0f} B", "<= 600 B" if model == "gru" else "")
    return 0


if __name__ == "__main__":
    sys.exit(main())
