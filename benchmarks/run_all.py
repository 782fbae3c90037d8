"""Run every benchmark script in this folder, one after the other, and print one table of their figures.

    python benchmarks/run_all.py [--only bench_daemon.py ...] [--quick] [--out out/bench.json]

Each script's own report is shown as it runs; the figures it reports (``report.figure``) are collected
into one table printed at the end with the machine, date and load average, and saved to ``--out``
(JSON), from which ``readme_table.py`` regenerates the README's Performance table. Benchmarks measure;
they assert nothing. Quote medians and ratios from one run, with the machine. The Kafka benchmarks
start the embedded broker; they run last. ``--quick`` runs each script smaller (``QUICK``: fewer
events, rounds and runs; about 15 minutes on a busy 2-core machine instead of about an hour); its
figures name their sizes.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

from report import machine, parse_figures

HERE = Path(__file__).resolve().parent
ORDER = ["bench_gru_step.py", "bench_esn_step.py", "bench_training.py", "bench_memory.py", "bench_startup.py",
         "bench_nab.py", "bench_daemon.py", "bench_latency.py", "bench_eos.py"]
QUICK = {"bench_training.py": ["--events", "2000000", "--rounds", "1"], "bench_memory.py": ["--entities", "200000"],
         "bench_startup.py": ["--runs", "3"], "bench_nab.py": ["--runs", "1"],
         "bench_daemon.py": ["--events", "300000", "--rounds", "3"],
         "bench_latency.py": ["--warmup", "10", "--duration", "20"],
         "bench_eos.py": ["--events", "100000", "--rounds", "1"]}


def run(name: str, extra: list[str]) -> tuple[int, list[dict[str, str]]]:
    """Run one script, echoing its output; its exit code and the figures it reported."""
    proc = subprocess.Popen([sys.executable, str(HERE / name), *extra], cwd=HERE.parent, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    lines = []
    for line in proc.stdout:
        lines.append(line)
        print(line, end="", flush=True)
    return proc.wait(), parse_figures("".join(lines))


def table(figures: list[dict[str, str]]) -> str:
    """The figures as a Markdown table (what, result, target, script)."""
    rows = ["| what | result | target | script |", "|---|---|---|---|"]
    for f in figures:
        cells = [f[k].replace("|", "\\|") for k in ("what", "result", "target")] + [f"`{f['script']}`"]
        rows.append("| " + " | ".join(cells) + " |")
    return "\n".join(rows)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--only", nargs="*", help="run only these scripts")
    ap.add_argument("--out", default="out/bench.json", help="where to save the figures (JSON)")
    ap.add_argument("--quick", action="store_true", help="smaller runs (QUICK)")
    args = ap.parse_args()
    before = machine()
    subprocess.run(["lscpu"], check=False)
    figures, failed = [], []
    for name in ORDER:
        if args.only and name not in args.only or not (HERE / name).exists():
            continue
        print(f"\n== {name}", flush=True)
        code, got = run(name, QUICK.get(name, []) if args.quick else [])
        figures += got
        if code != 0:
            failed.append(name)
    after = machine()
    result = {"machine": {**before, "load_after": after["load"], "finished": after["date"]},
              "figures": figures, "failed": failed}
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1) + "\n")
    m = result["machine"]
    print(f"\n== all figures: {m['cpu']}, {m['cores']} cores, Python {m['python']}, {m['date']} to "
          f"{m['finished']}, load average {m['load']} at the start, {m['load_after']} at the end")
    print(table(figures))
    print(f"saved to {out}; `python benchmarks/readme_table.py {out}` puts them in the README")
    if failed:
        print(f"failed: {failed}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
