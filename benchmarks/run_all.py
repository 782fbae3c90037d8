"""Run every benchmark script in this folder, one after the other, and print their reports.

Benchmarks measure; they assert nothing. Quote medians and ratios from one run, with the machine.
The Kafka daemon benchmark (bench_daemon.py) starts the embedded broker; it runs last.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ORDER = ["bench_gru_step.py", "bench_esn_step.py", "bench_training.py", "bench_memory.py", "bench_startup.py", "bench_nab.py", "bench_daemon.py", "bench_eos.py"]


def main() -> int:
    subprocess.run(["lscpu"], check=False)
    failed = []
    for name in ORDER:
        path = HERE / name
        if not path.exists():
            continue
        print(f"\n== {name}", flush=True)
        if subprocess.run([sys.executable, str(path)], cwd=HERE.parent).returncode != 0:
            failed.append(name)
    if failed:
        print(f"failed: {failed}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
