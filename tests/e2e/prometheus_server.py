"""A real Prometheus server on 127.0.0.1 for end-to-end tests: start, query its HTTP API, stop.

Uses the ``prometheus`` binary on PATH (Debian's ``prometheus`` package; ``.ci/run`` installs it).
A missing binary is a test failure, never a skip. The server gets a temporary storage directory, a free
loopback port and a generated ``prometheus.yml``; ``stop()`` terminates it, then kills it if it has not
exited within a bounded time. Not guaranteed: the port is found free just before Prometheus binds it,
so another process could take it in between (``start`` then fails with Prometheus' log tail).
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import yaml


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PrometheusServer:
    """``PrometheusServer(workdir, rule_files, scrape_jobs)``; ``scrape_jobs`` maps job name to targets."""

    def __init__(self, workdir: Path, rule_files: list[Path], scrape_jobs: dict[str, list[str]],
                 interval: str = "1s", extra_args: tuple[str, ...] = ()):
        binary = shutil.which("prometheus")
        if binary is None:
            raise AssertionError("the 'prometheus' binary is not on PATH (Debian: apt-get install prometheus; "
                                 ".ci/run installs it)")
        self.binary = binary
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.config_path = self.workdir / "prometheus.yml"
        self.log_path = self.workdir / "prometheus.log"
        self.config_path.write_text(yaml.safe_dump({
            "global": {"scrape_interval": interval, "scrape_timeout": interval, "evaluation_interval": interval},
            "rule_files": [str(Path(p).resolve()) for p in rule_files],
            "scrape_configs": [{"job_name": job, "static_configs": [{"targets": targets}]}
                               for job, targets in scrape_jobs.items()],
        }))
        self.extra_args = extra_args
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 30.0) -> PrometheusServer:
        """Launch and wait until /-/ready answers 200; raises with the log tail otherwise."""
        log = self.log_path.open("wb")
        self.proc = subprocess.Popen(
            [self.binary, f"--config.file={self.config_path}", f"--storage.tsdb.path={self.workdir / 'data'}",
             f"--web.listen-address=127.0.0.1:{self.port}", "--log.level=warn", *self.extra_args],
            stdout=log, stderr=subprocess.STDOUT, cwd=self.workdir)
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"prometheus exited with {self.proc.returncode}:\n{self.log_tail()}")
            try:
                with urllib.request.urlopen(f"{self.url}/-/ready", timeout=2) as resp:
                    if resp.status == 200:
                        return self
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.2)
        self.stop()
        raise AssertionError(f"prometheus not ready on {self.url} after {timeout} s:\n{self.log_tail()}")

    def api(self, path: str, **params: str) -> Any:
        """GET ``/api/v1/<path>`` and return its ``data`` (raises unless status is "success")."""
        query = urllib.parse.urlencode(params)
        with urllib.request.urlopen(f"{self.url}/api/v1/{path}" + (f"?{query}" if query else ""), timeout=5) as resp:
            body = json.load(resp)
        if body.get("status") != "success":
            raise AssertionError(f"prometheus /api/v1/{path} answered {body}")
        return body["data"]

    def alerts(self, name: str) -> list[dict]:
        """Active alerts (pending or firing) named ``name``."""
        return [a for a in self.api("alerts")["alerts"] if a["labels"].get("alertname") == name]

    def rule(self, name: str) -> dict:
        """The loaded rule named ``name`` (alert or record) with its health, lastError and lastEvaluation."""
        for group in self.api("rules")["groups"]:
            for rule in group["rules"]:
                if rule["name"] == name:
                    return rule
        raise AssertionError(f"rule {name!r} is not loaded; groups: {self.api('rules')['groups']}")

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def stop(self, timeout: float = 10.0) -> None:
        """Terminate, then kill after ``timeout`` s; idempotent."""
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)

    def __enter__(self) -> PrometheusServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
