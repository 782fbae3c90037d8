"""One HTTP port for Prometheus and the orchestrator: /metrics, /healthz, /readyz.

* ``/metrics``: the registry in the format the scraper asks for, chosen by prometheus_client's own
  ``choose_encoder`` from the Accept header (OpenMetrics or text 0.0.4), gzip-compressed when the
  Accept-Encoding header allows it (Prometheus always sends both).
* ``/healthz``: 200 "ok" while alive: with a ``health()`` callable, 503 and its reason when it says the
  process is stuck (the runner's: poll loop or progress stalled); without one, 200 while HTTP is served.
* ``/readyz``: 200 "ready" after ``set_ready(True)``; otherwise 503 with the reason (readiness: state
  restored, kernels compiled, partitions assigned — the runner decides).

Served by a ``ThreadingHTTPServer`` in a daemon thread; requests never touch the processing loop's
state, only the (thread-safe) registry and the ready flag. Not guaranteed: TLS or authentication.
"""

from __future__ import annotations

import logging
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable

import gzip

from prometheus_client import CollectorRegistry
from prometheus_client.exposition import choose_encoder

log = logging.getLogger(__name__)


class HttpServer:
    """``HttpServer(registry, metrics=None, ready=None)``.

    Readiness comes either from ``set_ready`` (``metrics``, an rnnstream.metrics.Metrics, then mirrors
    it into the ``rnnstream_ready`` gauge) or, when given, from ``ready()`` returning
    ``(is_ready, reason)`` at each /readyz request (the caller then owns the gauge).
    """

    def __init__(self, registry: CollectorRegistry, metrics: Any = None, *,
                 ready: Callable[[], tuple[bool, str]] | None = None,
                 health: Callable[[], tuple[bool, str]] | None = None):
        self.registry = registry
        self.metrics = metrics
        self._probe = ready
        self._health = health
        self._ready = False
        self._reason = "starting"
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    def readiness(self) -> tuple[bool, str]:
        """``(is_ready, reason)`` as /readyz reports it."""
        if self._probe is not None:
            ok, reason = self._probe()
            return bool(ok), reason or ("ready" if ok else "not ready")
        return self._ready, "ready" if self._ready else self._reason

    def liveness(self) -> tuple[bool, str]:
        """``(is_alive, reason)`` as /healthz reports it."""
        if self._health is None:
            return True, ""
        ok, reason = self._health()
        return bool(ok), reason or ("" if ok else "unhealthy")

    @property
    def ready(self) -> bool:
        return self.readiness()[0]

    @property
    def reason(self) -> str:
        return self.readiness()[1]

    def set_ready(self, ready: bool = True, reason: str = "") -> None:
        """Mark ready, or not ready with ``reason`` (shown in the /readyz 503 body)."""
        self._reason = reason or ("not ready" if not ready else "")
        self._ready = bool(ready)
        if self.metrics is not None:
            self.metrics.set_ready(self._ready)

    def start(self, host: str = "0.0.0.0", port: int = 0) -> int:
        """Bind and serve in a daemon thread; returns the bound port (``port=0`` lets the OS pick)."""
        if self._server is not None:
            raise RuntimeError("HttpServer already started")
        owner = self

        class Handler(_Handler):
            server_owner = owner

        self._server = ThreadingHTTPServer((host, port), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="rnnstream-http", daemon=True)
        self._thread.start()
        bound = self._server.server_address[1]
        log.info("http server listening", extra={"host": host, "port": bound})
        return bound

    def stop(self) -> None:
        """Stop serving and close the socket (idempotent)."""
        server, self._server = self._server, None
        if server is None:
            return
        server.shutdown()
        server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)


class _Handler(BaseHTTPRequestHandler):
    server_owner: HttpServer
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:  # noqa: N802 (http.server naming)
        path = self.path.split("?", 1)[0]
        owner = self.server_owner
        if path == "/metrics":
            self._metrics(owner.registry)
        elif path == "/healthz":
            ok, reason = owner.liveness()
            if ok:
                self._reply(200, b"ok\n")
            else:
                self._reply(503, f"unhealthy: {reason}\n".encode())
        elif path == "/readyz":
            ok, reason = owner.readiness()
            if ok:
                self._reply(200, b"ready\n")
            else:
                self._reply(503, f"not ready: {reason}\n".encode())
        else:
            self._reply(404, b"not found: try /metrics, /healthz or /readyz\n")

    def _metrics(self, registry: CollectorRegistry) -> None:
        encoder, content_type = choose_encoder(self.headers.get("Accept", ""))
        body = encoder(registry)
        accepted = [e.split(";")[0].strip() for e in self.headers.get("Accept-Encoding", "").split(",")]
        if "gzip" in accepted:
            self._reply(200, gzip.compress(body, compresslevel=1), content_type, {"Content-Encoding": "gzip"})
        else:
            self._reply(200, body, content_type)

    def do_HEAD(self) -> None:  # noqa: N802
        self.do_GET()

    def _reply(self, status: int, body: bytes, content_type: str = "text/plain; charset=utf-8",
               headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:  # scrapes every few seconds: keep quiet
        log.debug("http %s", format % args)


HealthServer = MetricsServer = HttpServer
"""Aliases: the same class."""
