"""What every benchmark script reports, in one shape: the machine, and figure rows for `make bench`.

A script calls ``figure(what, result, target)`` for each figure it measured: the row is printed as one
line ``BENCH-FIGURE {json}`` that ``run_all.py`` collects into the table it prints and saves
(``out/bench.json``); ``readme_table.py`` turns that file into the README's Performance table.
Figures are text (a median, a ratio, a range): benchmarks measure, they assert nothing.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

PREFIX = "BENCH-FIGURE "


def cpu_model() -> str:
    """The CPU's model name (lscpu), else what the platform module says."""
    try:
        for line in subprocess.run(["lscpu"], capture_output=True, text=True).stdout.splitlines():
            if line.startswith("Model name:"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def load_average() -> str:
    try:
        return "/".join(f"{x:.1f}" for x in os.getloadavg())
    except OSError:
        return "unknown"


def machine() -> dict[str, str]:
    """Where and when: CPU model, cores, load average (1/5/15 min), UTC date, Python."""
    return {"cpu": cpu_model(), "cores": str(os.cpu_count()), "load": load_average(),
            "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
            "python": platform.python_version()}


def machine_line() -> str:
    m = machine()
    return (f"machine: {m['cpu']}, {m['cores']} cores, load average {m['load']}, {m['date']}, "
            f"Python {m['python']}")


def figure(what: str, result: str, target: str = "", script: str | None = None) -> None:
    """Print one figure row for run_all.py (``script`` defaults to the running script's file name)."""
    row = {"what": what, "result": result, "target": target,
           "script": script or Path(sys.argv[0]).name}
    print(PREFIX + json.dumps(row), flush=True)


def parse_figures(text: str) -> list[dict[str, str]]:
    """The figure rows in a script's output."""
    return [json.loads(line[len(PREFIX):]) for line in text.splitlines() if line.startswith(PREFIX)]
