"""${VAR} substitution and the handling of secrets."""

from __future__ import annotations

import copy
import logging
import pickle

import pytest
from kafka import KafkaConsumer, KafkaProducer

from rnnstream.config import Secret, load_config_text
from rnnstream.errors import ConfigError

from .conftest import dump, minimal, problem_at, problems

PASSWORD = "s3cr3t-Pa55w0rd"

SASL = """
kafka:
  bootstrap_servers: ${BROKERS}
  security_protocol: SASL_SSL
  sasl_mechanism: SCRAM-SHA-512
  sasl_username: ${KAFKA_USER:-rnnstream}
  sasl_password: ${KAFKA_PASSWORD}
  ssl_cafile: /etc/ca.pem
  ssl_keyfile: ${KEY_FILE:-/etc/client.key}
  ssl_password: ${KEY_PASSWORD}
"""


def sasl_doc() -> str:
    return SASL + dump(minimal())


ENV = {"BROKERS": "b1:9093,b2:9093", "KAFKA_PASSWORD": PASSWORD, "KEY_PASSWORD": PASSWORD + "-key"}


def test_substitution_with_defaults_and_lists():
    config = load_config_text(sasl_doc(), env=ENV)
    kafka = config.kafka
    assert kafka.bootstrap_servers == ("b1:9093", "b2:9093")
    assert kafka.sasl_username == "rnnstream"  # default used: KAFKA_USER unset
    assert kafka.sasl_password.reveal() == PASSWORD
    assert kafka.ssl_keyfile.reveal() == "/etc/client.key"


def test_empty_variable_takes_the_default_only_with_colon_dash():
    text = "state_dir: ${DIR:-/srv/x}\n" + dump(minimal())
    assert load_config_text(text, env={"DIR": ""}).state_dir == "/srv/x"
    assert load_config_text("state_dir: a${DIR}b\n" + dump(minimal()), env={"DIR": ""}).state_dir == "ab"


def test_substituted_text_converts_to_numbers_and_booleans_but_literal_text_does_not():
    text = "metrics: {port: '${PORT}'}\nlogging: {log_payloads: '${LP:-false}'}\n" + dump(minimal())
    config = load_config_text(text, env={"PORT": "9200"})
    assert config.metrics.port == 9200 and config.logging.log_payloads is False
    assert problem_at("metrics: {port: '9200'}\n" + dump(minimal()), "metrics.port") == "expected an integer in [0, 65535], got '9200'"
    assert problem_at("metrics: {port: '${PORT}'}\n" + dump(minimal()), "metrics.port", env={"PORT": "x1"}) == (
        "expected an integer in [0, 65535], got 'x1'"
    )


def test_missing_variable_names_path_and_variable_and_all_are_listed():
    found = problems(sasl_doc(), env={"BROKERS": "b:9092"})
    assert found == [
        ("kafka.sasl_password", "environment variable KAFKA_PASSWORD is not set (write ${KAFKA_PASSWORD:-default} to give a default)"),
        ("kafka.ssl_password", "environment variable KEY_PASSWORD is not set (write ${KEY_PASSWORD:-default} to give a default)"),
    ]


def test_missing_variable_inside_a_list_item():
    doc = minimal()
    doc["detectors"][0]["topics"] = ["a", "${TOPIC}"]
    assert "TOPIC is not set" in problem_at(doc, "detectors[0].topics[1]")


def test_escape_and_malformed_references():
    text = "state_dir: /x/$${HOME}/$$y\n" + dump(minimal())
    assert load_config_text(text, env={"HOME": "/root"}).state_dir == "/x/${HOME}/$$y"
    assert "malformed variable reference" in problem_at("state_dir: /x/${1BAD}\n" + dump(minimal()), "state_dir")
    assert "malformed" in problem_at("state_dir: /x/${OPEN\n" + dump(minimal()), "state_dir")


def test_uses_os_environ_by_default(monkeypatch):
    monkeypatch.setenv("RNNSTREAM_TEST_DIR", "/from/env")
    assert load_config_text("state_dir: ${RNNSTREAM_TEST_DIR}\n" + dump(minimal())).state_dir == "/from/env"


def test_secrets_never_shown_in_repr_str_format_or_logs(caplog):
    config = load_config_text(sasl_doc(), env=ENV)
    for rendering in (repr(config), str(config), repr(config.kafka), f"{config.kafka.sasl_password}",
                      "%s" % config.kafka.ssl_password, str(config.kafka.ssl_keyfile)):
        assert PASSWORD not in rendering and "/etc/client.key" not in rendering
    assert "Secret('********')" in repr(config.kafka)
    with caplog.at_level(logging.INFO):
        logging.getLogger("t").info("config %s %r", config, config.kafka.sasl_password)
    assert PASSWORD not in caplog.text


def test_secrets_never_shown_in_errors():
    # a valid secret next to other problems, and an invalid (non-string) secret value
    text = sasl_doc().replace("${KEY_PASSWORD}", "123456789") + "metrics: {port: x}\n"
    with pytest.raises(ConfigError) as info:
        load_config_text(text, env=ENV)
    assert ("kafka.ssl_password", "expected a string, or null, got a hidden integer") in info.value.problems
    assert PASSWORD not in str(info.value) and "123456789" not in str(info.value)
    assert PASSWORD not in repr(info.value.problems)


def test_literal_secret_is_wrapped_too():
    text = SASL.replace("${KAFKA_PASSWORD}", "literal-pw") + dump(minimal())
    secret = load_config_text(text, env=ENV).kafka.sasl_password
    assert isinstance(secret, Secret) and secret.reveal() == "literal-pw" and "literal-pw" not in repr(secret)


def test_secret_semantics():
    s = Secret("pw")
    assert s == Secret("pw") and s != Secret("other") and hash(s) == hash(Secret("pw"))
    assert copy.deepcopy(s) is s
    with pytest.raises(AttributeError):
        s._value = "x"
    with pytest.raises(TypeError):
        pickle.dumps(s)


def test_client_kwargs_reveal_secrets_and_match_kafka_python_names():
    kafka = load_config_text(sasl_doc(), env=ENV).kafka
    common = kafka.client_kwargs()
    assert common["sasl_plain_password"] == PASSWORD and common["ssl_password"] == PASSWORD + "-key"
    assert common["bootstrap_servers"] == ["b1:9093", "b2:9093"]
    assert common["sasl_mechanism"] == "SCRAM-SHA-512" and common["sasl_plain_username"] == "rnnstream"
    assert "ssl_certfile" not in common  # unset options keep kafka-python's defaults
    assert set(common) <= set(KafkaProducer.DEFAULT_CONFIG) and set(common) <= set(KafkaConsumer.DEFAULT_CONFIG)
    consumer = kafka.consumer_kwargs()
    assert set(consumer) <= set(KafkaConsumer.DEFAULT_CONFIG)
    assert (consumer["group_id"], consumer["max_poll_records"], consumer["session_timeout_ms"]) == ("rnnstream", 5000, 30000)


def test_plaintext_client_kwargs_are_minimal():
    doc = {**minimal(), "kafka": {"bootstrap_servers": ["localhost:9092"], "client_id": "c"}}
    kafka = load_config_text(dump(doc), env={}).kafka
    assert kafka.client_kwargs() == {"bootstrap_servers": ["localhost:9092"], "client_id": "c", "security_protocol": "PLAINTEXT",
                                     "reconnect_backoff_max_ms": 1000}
