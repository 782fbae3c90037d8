"""JSON-lines logging: fields, extras, payload omission, masked secrets, exceptions."""

from __future__ import annotations

import io
import json
import logging

import numpy as np
import pytest

from rnnstream.config import load_config
from rnnstream.config.secret import Secret
from rnnstream.daemon.logs import OMITTED, setup_logging


@pytest.fixture
def capture():
    root = logging.getLogger()
    saved = (list(root.handlers), root.level)

    def install(log_payloads=False, level="INFO"):
        buf = io.StringIO()
        setup_logging(level, log_payloads, stream=buf)
        return buf

    yield install
    root.handlers[:] = saved[0]
    root.setLevel(saved[1])
    logging.captureWarnings(False)


def lines(buf):
    return [json.loads(line) for line in buf.getvalue().splitlines()]


def test_fields_and_extras(capture):
    buf = capture(level="INFO")
    log = logging.getLogger("rnnstream.test")
    log.debug("hidden")
    log.info("checkpoint %s", "written", extra={"path": "/x", "partition": np.int64(3), "dur": np.float32(0.5),
                                                   "tags": ("a", "b"), "raw": b"\xff"})
    (rec,) = lines(buf)
    assert rec["level"] == "INFO" and rec["logger"] == "rnnstream.test" and rec["msg"] == "checkpoint written"
    assert rec["ts"].endswith("Z") and "T" in rec["ts"]
    assert rec["path"] == "/x" and rec["partition"] == 3 and rec["dur"] == 0.5 and rec["tags"] == ["a", "b"]
    assert rec["raw"] == "\ufffd"


def test_payloads_omitted_unless_asked(capture):
    buf = capture()
    logging.getLogger("t").warning("rejected", extra={"payload": '{"password": 1}', "reason": "oversize"})
    (rec,) = lines(buf)
    assert rec["payload"] == OMITTED and rec["reason"] == "oversize"
    buf = capture(log_payloads=True)
    logging.getLogger("t").warning("rejected", extra={"payload": '{"cpu": 1}'})
    assert lines(buf)[0]["payload"] == '{"cpu": 1}'


def test_secrets_stay_masked(capture):
    buf = capture()
    cfg = load_config("""
kafka: {bootstrap_servers: "b:9092", security_protocol: SASL_SSL, sasl_mechanism: PLAIN,
        sasl_username: u, sasl_password: hunter2}
detectors: [{name: d, topics: [t], entity: h, timestamp: {field: ts}, features: [x]}]
""")
    log = logging.getLogger("t")
    log.info("config %r", cfg.kafka, extra={"kafka": cfg.kafka, "pw": Secret("hunter2")})
    text = buf.getvalue()
    assert "hunter2" not in text
    assert json.loads(text)["kafka"]["sasl_username"] == "u"


def test_exception_traceback(capture):
    buf = capture()
    try:
        raise ValueError("boom")
    except ValueError:
        logging.getLogger("t").exception("failed")
    (rec,) = lines(buf)
    assert rec["level"] == "ERROR" and "ValueError: boom" in rec["exc"]


def test_setup_from_logging_config(capture):
    root = logging.getLogger()
    cfg = load_config("""
logging: {level: WARNING, log_payloads: true}
detectors: [{name: d, topics: [t], entity: h, timestamp: {field: ts}, features: [x]}]
""")
    buf = io.StringIO()
    setup_logging(cfg.logging, stream=buf)
    assert root.level == logging.WARNING
    logging.getLogger("t").info("dropped")
    logging.getLogger("t").warning("kept", extra={"payload": "p"})
    assert [(r["msg"], r["payload"]) for r in lines(buf)] == [("kept", "p")]


def _kafka_lines(buf):
    return [r for r in lines(buf) if r["logger"].startswith("kafka")]


def test_kafka_python_is_quiet_one_warning_per_state_change(capture):
    buf = capture()
    conn = logging.getLogger("kafka.net.transport")
    coord = logging.getLogger("kafka.coordinator.base")
    conn.info("<conn>: connected to <socket>")           # start-up chatter: DEBUG, hidden
    for _ in range(80):                                    # an outage: ~80 ERROR lines
        conn.error("<conn>: socket disconnected")
        coord.warning("Heartbeat failed: coordinator unavailable")
    conn.info("<conn>: connected to <socket>")           # back
    for _ in range(5):
        conn.error("<conn>: socket disconnected")          # a second outage
    got = _kafka_lines(buf)
    assert [(r["level"], r["msg"]) for r in got] == [
        ("WARNING", "kafka client problem"), ("WARNING", "kafka client recovered"),
        ("WARNING", "kafka client problem")]
    assert got[0]["detail"] == "<conn>: socket disconnected"
    assert got[1]["kafka_lines_held_back"] == 159


def test_kafka_debug_and_per_logger_levels(capture):
    buf = io.StringIO()
    cfg = load_config("logging: {level: WARNING, loggers: ['kafka=DEBUG', 'rnnstream.replay=INFO']}\n"
                      "detectors: [{name: d, topics: [t], entity: h, timestamp: {field: ts}, features: [x]}]")
    capture()   # saves and restores the root logger
    try:
        setup_logging(cfg.logging, stream=buf)
        logging.getLogger("kafka.conn").info("connected")           # kafka=DEBUG: shown, as DEBUG
        logging.getLogger("rnnstream.replay").info("replay line")   # its own level: shown
        logging.getLogger("rnnstream.other").info("hidden")         # root WARNING: hidden
        got = [(r["logger"], r["level"], r["msg"]) for r in lines(buf)]
        assert got == [("kafka.conn", "DEBUG", "connected"), ("rnnstream.replay", "INFO", "replay line")]
    finally:
        for name in ("kafka", "rnnstream.replay"):
            logging.getLogger(name).setLevel(logging.NOTSET)


def test_rate_limited_log_counts_what_it_skipped(capture):
    from rnnstream.daemon.logs import RateLimitedLog

    buf = capture()
    now = [0.0]
    limited = RateLimitedLog(logging.getLogger("rnnstream.daemon"), burst=3, period=60.0, clock=lambda: now[0])
    logged = [limited.info("anomaly published", entity=f"e{i}") for i in range(10)]
    assert logged == [True] * 3 + [False] * 7
    now[0] = 61.0
    assert limited.info("anomaly published", entity="late")
    got = lines(buf)
    assert [r["entity"] for r in got] == ["e0", "e1", "e2", "late"]
    assert got[-1]["skipped"] == 7 and "skipped" not in got[0]
