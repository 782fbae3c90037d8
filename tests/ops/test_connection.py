"""check-connection against the embedded broker: OK, missing input topic, unreachable broker."""

from __future__ import annotations

import io
import socket
import time

from rnnstream.config import load_config_file
from rnnstream.ops.connection import check_connection, check_connection_main

from .helpers import write_config


def test_reachable_lists_partitions_and_leaders(kafka, tmp_path):
    inputs = kafka.new_topic("ops-in", 3)
    anomalies = kafka.new_topic("ops-anom", 1)
    cfg_path = write_config(tmp_path / "c.yaml", bootstrap=kafka.bootstrap, topics=(inputs,), anomalies=anomalies)
    out = io.StringIO()
    assert check_connection_main(str(cfg_path), timeout_s=10, out=out) == 0
    text = out.getvalue()
    assert text.rstrip().endswith("OK")
    assert f"127.0.0.1:{kafka.port}" in text
    assert f"{inputs}: 3 partition(s)" in text
    report = check_connection(load_config_file(cfg_path), 10)
    by_topic = {c.topic: c for c in report.topics}
    assert sorted(by_topic[inputs].partitions) == [0, 1, 2]
    assert set(by_topic[inputs].partitions.values()) == {f"127.0.0.1:{kafka.port}"}
    assert by_topic[anomalies].role == "anomalies" and by_topic[anomalies].exists


def test_missing_input_topic_fails_and_names_it(kafka, tmp_path):
    present = kafka.new_topic("ops-in", 1)
    missing = f"ops-missing-{time.time_ns()}"
    out_missing = f"ops-out-missing-{time.time_ns()}"
    cfg_path = write_config(tmp_path / "c.yaml", bootstrap=kafka.bootstrap, topics=(present, missing),
                            anomalies=out_missing)
    out = io.StringIO()
    assert check_connection_main(str(cfg_path), timeout_s=10, out=out) == 1
    text = out.getvalue()
    assert f"problem: detector hosts: input topic {missing!r}: does not exist" in text
    # a missing output topic is only a warning
    assert f"warning: detector hosts: anomalies topic {out_missing!r}: does not exist" in text
    assert text.rstrip().endswith("FAILED")
    # the check must not have created the topic
    assert missing not in kafka.admin_client().list_topics()


def test_unreachable_broker_is_bounded_and_named(tmp_path):
    with socket.socket() as s:   # a loopback port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cfg_path = write_config(tmp_path / "c.yaml", bootstrap=f"127.0.0.1:{port}")
    out = io.StringIO()
    started = time.monotonic()
    assert check_connection_main(str(cfg_path), timeout_s=5, out=out) == 1
    assert time.monotonic() - started < 1.0      # a refused port fails at once, not after the timeout
    text = out.getvalue()
    assert text == (f"problem: could not bootstrap from 127.0.0.1:{port}: 127.0.0.1:{port} refuses connections "
                    "(Connection refused)\nFAILED\n")


def test_no_kafka_section(tmp_path):
    cfg_path = write_config(tmp_path / "c.yaml", with_kafka=False)
    out = io.StringIO()
    assert check_connection_main(str(cfg_path), out=out) == 1
    assert "no 'kafka' section" in out.getvalue()


def test_wrong_security_protocol_says_port_answers(kafka, tmp_path):
    """SASL against the PLAINTEXT broker: bounded failure that says TCP works, the protocol does not."""
    topic = kafka.new_topic("ops-in", 1)
    path = tmp_path / "c.yaml"
    path.write_text(f"""
kafka: {{bootstrap_servers: [{kafka.bootstrap}], security_protocol: SASL_PLAINTEXT, sasl_mechanism: PLAIN,
        sasl_username: u, sasl_password: secret-pw}}
detectors:
  - {{name: d, topics: [{topic}], entity: host, timestamp: {{field: ts}}, features: [cpu]}}
""")
    out = io.StringIO()
    started = time.monotonic()
    assert check_connection_main(str(path), timeout_s=2, out=out) == 1
    assert time.monotonic() - started < 10
    text = out.getvalue()
    assert f"could not bootstrap from {kafka.bootstrap} with SASL_PLAINTEXT" in text
    assert f"{kafka.bootstrap}: accepts TCP connections" in text
    assert "secret-pw" not in text
