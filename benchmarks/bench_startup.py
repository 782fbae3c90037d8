"""Time from a fresh Python process's start to its first scored event, cold and with numba's cache.

Runs `python -c <score one event>` several times in new processes: the first with an empty cache
directory (compilation), the rest reusing it. Reports the median of the warm runs.
Usage: python benchmarks/bench_startup.py [--runs 5] [--model gru]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time

PROGRAM = """
import time, numpy as np
t0 = time.perf_counter()
from rnnstream.config import load_config
from rnnstream.detector import Detector
from rnnstream.kernels.jit import configure_cache
configure_cache()  # as the command line does at start-up
cfg = load_config('''
detectors:
  - name: d
    topics: [t]
    entity: host
    timestamp: {{field: ts}}
    features: [v]
    model: {{type: {model}}}
''').detectors[0]
det = Detector(cfg, background=False)
res = det.process(["h1"], np.array([[1.0]]), np.array([0.0]))
assert res.index.size == 1
"""


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--model", default="gru")
    args = ap.parse_args()
    code = PROGRAM.format(model=args.model)
    with tempfile.TemporaryDirectory() as cache:
        env = dict(os.environ, NUMBA_CACHE_DIR=cache)
        times = []
        for _ in range(args.runs + 1):
            started = time.perf_counter()
            subprocess.run([sys.executable, "-c", code], env=env, check=True)
            times.append(time.perf_counter() - started)
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores")
    print(f"model {args.model}: cold start (compiling) {times[0]:.2f}s; "
          f"warm start (cached) median {statistics.median(times[1:]):.2f}s over {args.runs} runs "
          f"(min {min(times[1:]):.2f}s, max {max(times[1:]):.2f}s)")
    from report import figure

    figure(f"new process to first scored event, model {args.model}, numba cache warm (cold)",
           f"**{statistics.median(times[1:]):.2f} s** ({times[0]:.1f} s), median of {args.runs}", "< 3 s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
