"""Regenerate the README's Performance table from the figures `make bench` saved.

    python benchmarks/readme_table.py [out/bench.json] [--readme README.md] [--check]

Replaces what lies between ``<!-- BEGIN bench-table -->`` and ``<!-- END bench-table -->`` with a line
naming the machine, date and load, and the table of figures (``run_all.table``). ``--check`` only
checks that the README's block is well-formed (exit 1 with the reason when not).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

from run_all import table

BEGIN = "<!-- BEGIN bench-table -->"
END = "<!-- END bench-table -->"
HEADER = "| what | result | target | script |"


def block(result: dict) -> str:
    m = result["machine"]
    lines = [f"Last `make bench` run: {m['cpu']}, {m['cores']} cores, Python {m['python']}, {m['date']}, "
             f"load average {m['load']} at the start and {m['load_after']} at the end (1/5/15 min).", "",
             table(result["figures"])]
    if result.get("failed"):
        lines += ["", f"Scripts that failed in that run (no figures): {', '.join(result['failed'])}."]
    return "\n".join(lines)


def replace_block(readme: str, content: str) -> str:
    start, end = readme.index(BEGIN), readme.index(END)
    return readme[:start] + BEGIN + "\n" + content + "\n" + readme[end:]


def problems(readme: str) -> list[str]:
    """What is wrong with the README's generated block ([] when it is well-formed)."""
    if readme.count(BEGIN) != 1 or readme.count(END) != 1:
        return [f"expected one {BEGIN} and one {END}"]
    start, end = readme.index(BEGIN), readme.index(END)
    if end < start:
        return [f"{END} comes before {BEGIN}"]
    body = readme[start + len(BEGIN):end].strip().splitlines()
    out = []
    if not body or not body[0].startswith("Last `make bench` run: "):
        out.append("the block does not start with the machine line")
    rows = [line for line in body if line.startswith("|")]
    if len(rows) < 3 or rows[0] != HEADER or not re.fullmatch(r"\|(---\|){4}", rows[1]):
        out.append(f"no table with the header {HEADER!r}, its rule and at least one row")
    for row in rows[2:]:
        cells = re.split(r"(?<!\\)\|", row)[1:-1]
        if len(cells) != 4:
            out.append(f"a row without 4 cells: {row[:80]}")
        elif not re.fullmatch(r" `bench_\w+\.py` ", cells[3]):
            out.append(f"a row whose script is not a benchmarks/ script: {row[:80]}")
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("figures", nargs="?", default="out/bench.json")
    ap.add_argument("--readme", default=str(Path(__file__).resolve().parents[1] / "README.md"))
    ap.add_argument("--check", action="store_true")
    args = ap.parse_args()
    path = Path(args.readme)
    text = path.read_text()
    if not args.check:
        text = replace_block(text, block(json.loads(Path(args.figures).read_text())))
    found = problems(text)
    if found:
        print(f"{path}: " + "; ".join(found), file=sys.stderr)
        return 1
    if not args.check:
        path.write_text(text)
        print(f"regenerated the Performance table of {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
