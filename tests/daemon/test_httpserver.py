"""HttpServer over real HTTP on 127.0.0.1: /metrics, /healthz, /readyz before and after set_ready."""

from __future__ import annotations

import urllib.error
import urllib.request

import pytest
from prometheus_client import CollectorRegistry

from rnnstream.daemon.httpserver import HealthServer, HttpServer
from rnnstream.metrics import Metrics


def get(port: int, path: str) -> tuple[int, str, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as resp:
            return resp.status, resp.headers["Content-Type"], resp.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, err.headers["Content-Type"], err.read().decode()


@pytest.fixture
def served():
    registry = CollectorRegistry()
    metrics = Metrics(registry)
    server = HttpServer(registry, metrics)
    port = server.start("127.0.0.1", 0)
    yield server, metrics, registry, port
    server.stop()


def test_metrics_endpoint(served):
    server, metrics, registry, port = served
    assert port > 0
    metrics.for_detector("hosts").processed.inc(3)
    status, ctype, body = get(port, "/metrics")
    assert status == 200 and ctype.startswith("text/plain")
    assert 'rnnstream_events_processed_total{detector="hosts"} 3.0' in body
    assert "rnnstream_build_info{" in body
    assert "# TYPE rnnstream_checkpoint_corrupt_total counter" in body


def test_health_and_readiness(served):
    server, metrics, registry, port = served
    assert get(port, "/healthz")[:1] == (200,) and get(port, "/healthz")[2] == "ok\n"
    status, _, body = get(port, "/readyz")
    assert status == 503 and "starting" in body
    assert registry.get_sample_value("rnnstream_ready") == 0
    server.set_ready(True)
    assert get(port, "/readyz")[0] == 200
    assert registry.get_sample_value("rnnstream_ready") == 1
    server.set_ready(False, "partitions revoked")
    status, _, body = get(port, "/readyz")
    assert status == 503 and "partitions revoked" in body
    assert registry.get_sample_value("rnnstream_ready") == 0
    assert get(port, "/nope")[0] == 404


def test_stop_frees_the_port():
    server = HttpServer(CollectorRegistry())
    port = server.start("127.0.0.1", 0)
    assert get(port, "/healthz")[0] == 200
    server.stop()
    server.stop()   # idempotent
    with pytest.raises(urllib.error.URLError):
        urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2)


def test_ready_probe_callable():
    state = {"ok": False, "reason": "restoring state"}
    server = HealthServer(CollectorRegistry(), ready=lambda: (state["ok"], state["reason"]))
    port = server.start("127.0.0.1", 0)
    try:
        status, _, body = get(port, "/readyz")
        assert status == 503 and "restoring state" in body
        state.update(ok=True, reason="")
        assert get(port, "/readyz")[0] == 200
    finally:
        server.stop()


def test_metrics_negotiates_openmetrics_and_gzip(served):
    """/metrics uses prometheus_client's own encoder choice (Accept) and compresses on request."""
    import gzip

    _, metrics, _, port = served
    metrics.for_detector("cpu").processed.inc(3)
    req = urllib.request.Request(f"http://127.0.0.1:{port}/metrics", headers={
        "Accept": "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5",
        "Accept-Encoding": "gzip"})
    with urllib.request.urlopen(req, timeout=5) as resp:
        assert resp.headers["Content-Type"].startswith("application/openmetrics-text")
        assert resp.headers["Content-Encoding"] == "gzip"
        text = gzip.decompress(resp.read()).decode()
    assert 'rnnstream_events_processed_total{detector="cpu"} 3.0' in text
    assert text.rstrip().endswith("# EOF")          # the OpenMetrics terminator
    status, ctype, plain = get(port, "/metrics")     # no Accept: the classic text format, uncompressed
    assert status == 200 and ctype.startswith("text/plain") and "# EOF" not in plain
    assert "_created" not in plain and "process_cpu_seconds_total" in plain
