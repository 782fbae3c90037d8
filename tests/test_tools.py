"""tools/ensure-test-tools (run by `make test` and .ci/run): never skips, names the exact command."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "tools" / "ensure-test-tools"


def _bin(tmp_path: Path, uid: int, have: tuple[str, ...] = ()) -> Path:
    """A PATH with bash, a fake `id -u` and only the tools in ``have``."""
    d = tmp_path / "bin"
    d.mkdir()
    (d / "bash").symlink_to(shutil.which("bash"))
    (d / "id").write_text(f"#!{shutil.which('bash')}\necho {uid}\n")
    (d / "id").chmod(0o755)
    for tool in have:
        (d / tool).write_text(f"#!{shutil.which('bash')}\nexit 0\n")
        (d / tool).chmod(0o755)
    return d


def _run(path: Path) -> subprocess.CompletedProcess:
    return subprocess.run([str(path / "bash"), str(SCRIPT)], env={**os.environ, "PATH": str(path)},
                          capture_output=True, text=True, timeout=60)


def test_nothing_missing_is_silent_success(tmp_path):
    r = _run(_bin(tmp_path, 1000, ("promtool", "prometheus", "systemd-analyze", "java")))
    assert r.returncode == 0 and r.stdout == r.stderr == ""


def test_missing_tools_without_root_fail_with_the_exact_command(tmp_path):
    r = _run(_bin(tmp_path, 1000, ("java",)))
    assert r.returncode == 1
    assert "sudo sh -c 'apt-get update && apt-get install -y --no-install-recommends prometheus systemd'" in r.stderr


def test_make_test_and_ci_run_use_it():
    make = (ROOT / "Makefile").read_text()
    assert re.search(r"^test: .*\btools\b", make, re.M) and "tools/ensure-test-tools" in make
    ci = (ROOT / ".ci" / "run").read_text()
    assert ci.rstrip().endswith("make test")          # the README's test command
    readme = (ROOT / "README.md").read_text()
    assert "make test    # the whole suite" in readme and "tools/ensure-test-tools" in readme
