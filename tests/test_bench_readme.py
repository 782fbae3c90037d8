"""The README's Performance table is the block benchmarks/readme_table.py generates: well-formed, and
the generator's own output passes the same check (the figures themselves are not compared)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
import readme_table  # noqa: E402

RESULT = {"machine": {"cpu": "AMD EPYC", "cores": "2", "python": "3.11.7", "date": "2026-11-30 06:00 UTC",
                      "load": "1.0/1.0/1.0", "load_after": "2.0/1.5/1.1"},
          "figures": [{"what": "GRU step, a | b", "result": "**2.1 M/s**", "target": ">= 2 M/s", "script": "bench_gru_step.py"},
                      {"what": "latency", "result": "p99 40 ms", "target": "", "script": "bench_latency.py"}],
          "failed": []}


def test_the_readme_performance_block_is_well_formed():
    assert readme_table.problems((ROOT / "README.md").read_text()) == []


def test_a_generated_block_is_well_formed_and_replaces_only_the_block():
    readme = f"intro\n{readme_table.BEGIN}\nold table\n{readme_table.END}\nrest\n"
    out = readme_table.replace_block(readme, readme_table.block(RESULT))
    assert out.startswith("intro\n") and out.endswith(f"{readme_table.END}\nrest\n") and "old table" not in out
    assert readme_table.problems(out) == []
    assert "AMD EPYC, 2 cores" in out and "load average 1.0/1.0/1.0" in out
    assert "| GRU step, a \\| b | **2.1 M/s** | >= 2 M/s | `bench_gru_step.py` |" in out   # a | in a cell is escaped
    assert out == readme_table.replace_block(out, readme_table.block(RESULT))                # idempotent


@pytest.mark.parametrize("breakage, reason", [
    (lambda t: t.replace(readme_table.END, ""), "expected one"),
    (lambda t: t.replace("| what | result | target | script |", "| what | result |"), "no table"),
    (lambda t: t.replace("`bench_latency.py`", "latency"), "not a benchmarks/ script"),
    (lambda t: t.replace("| latency |", "| latency | extra |"), "without 4 cells"),
    (lambda t: t.replace("Last `make bench` run:", "Run:"), "machine line"),
])
def test_a_malformed_block_is_reported(breakage, reason):
    good = readme_table.replace_block(f"{readme_table.BEGIN}\n{readme_table.END}\n", readme_table.block(RESULT))
    found = readme_table.problems(breakage(good))
    assert any(reason in p for p in found), found
