"""Wall time of `rnnstream eval nab` over the NAB corpus (41 files, training included), and its scores.

Usage: python benchmarks/bench_nab.py [--data ../shared/nab] [--config config/nab.yaml] [--runs 3]
Each run is a fresh process (numba cache warm after the first); the median is reported.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default="../shared/nab")
    ap.add_argument("--config", default="config/nab.yaml")
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    times, output = [], ""
    for _ in range(args.runs):
        with tempfile.TemporaryDirectory() as out:
            started = time.perf_counter()
            proc = subprocess.run([sys.executable, "-m", "rnnstream", "eval", "nab", "--data", args.data,
                                   "-c", args.config, "--out", out], capture_output=True, text=True, check=True)
            times.append(time.perf_counter() - started)
            output = proc.stdout
    print(output.strip())
    print(f"eval nab wall time: median {statistics.median(times):.1f}s over {args.runs} runs "
          f"(min {min(times):.1f}s, max {max(times):.1f}s) on {os.cpu_count()} cores")
    from report import figure

    figure(f"`rnnstream eval nab`, {args.config}, training included",
           f"**{statistics.median(times):.1f} s** (median of {args.runs}; {min(times):.1f}-{max(times):.1f} s)", "< 5 min")
    return 0


if __name__ == "__main__":
    sys.exit(main())
