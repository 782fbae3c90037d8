"""Loading valid documents: the example, defaults, shorthands, immutability, validate_main."""

from __future__ import annotations

import dataclasses

import pytest

from rnnstream.config import (
    Config,
    ESNParams,
    GRUParams,
    load_config,
    load_config_file,
    load_config_text,
    validate_main,
)

from .conftest import EXAMPLE, dump, minimal


def test_example_loads_with_both_model_types():
    config = load_config(EXAMPLE, env={})
    assert isinstance(config, Config)
    assert [d.name for d in config.detectors] == ["host_metrics", "sensors"]
    gru, esn = config.detectors
    assert gru.model.type == "gru" and gru.model.params == GRUParams(hidden=16, seed=0)
    assert esn.model.type == "esn" and isinstance(esn.model.params, ESNParams)
    assert esn.model.params.ridge == pytest.approx(1e-3)
    assert esn.topics == ("sensors.temperature", "sensors.pressure")  # comma-separated form
    assert esn.entity.from_key and esn.entity.field is None
    assert config.kafka is not None and config.kafka.bootstrap_servers == ("localhost:9092",)
    assert config.topic_map()["sensors.pressure"] is esn
    assert config.detector("host_metrics") is gru


def test_minimal_document_gets_every_default():
    config = load_config_text(dump(minimal()), env={})
    det = config.detectors[0]
    assert config.kafka is None
    assert config.state_dir == "/var/lib/rnnstream"
    assert config.checkpoint.keep_generations == 2 and config.checkpoint.interval_seconds == 30.0
    assert (config.metrics.host, config.metrics.port, config.metrics.top_k_entities) == ("0.0.0.0", 9108, 0)
    assert config.logging.level == "INFO" and config.logging.log_payloads is False
    assert det.entity.field == "host"  # `entity: host` shorthand
    assert det.timestamp.unit == "s" and not det.timestamp.from_record
    assert det.model.type == "gru" and det.model.params == GRUParams()
    assert det.training.window == 64 and det.scoring.threshold == 0.5
    assert det.outputs.topics() == ()
    assert (det.max_entities, det.max_message_bytes) == (100000, 1048576)


def test_esn_type_alone_selects_esn_defaults():
    doc = minimal()
    doc["detectors"][0]["model"] = {"type": "esn"}
    params = load_config_text(dump(doc), env={}).detectors[0].model.params
    assert params == ESNParams()


def test_types_are_coerced_to_immutable_and_exact():
    doc = minimal()
    doc["detectors"][0]["idle_ttl_seconds"] = 60  # int accepted for a float field
    doc["kafka"] = {"bootstrap_servers": "a:9092, b:9092"}
    config = load_config_text(dump(doc), env={})
    assert type(config.detectors[0].idle_ttl_seconds) is float
    assert config.kafka.bootstrap_servers == ("a:9092", "b:9092")
    assert isinstance(config.detectors, tuple) and isinstance(config.detectors[0].features, tuple)


def test_exponent_floats_without_dot_are_numbers():
    text = dump(minimal()) + "checkpoint:\n  interval_seconds: 1e1\n"
    assert load_config_text(text, env={}).checkpoint.interval_seconds == 10.0


@pytest.mark.parametrize(
    "target",
    [
        lambda c: setattr(c, "state_dir", "/tmp"),
        lambda c: setattr(c.detectors[0], "name", "x"),
        lambda c: setattr(c.detectors[0].model.params, "hidden", 8),
        lambda c: setattr(c.checkpoint, "keep_generations", 5),
    ],
)
def test_config_is_frozen(target):
    config = load_config(EXAMPLE, env={})
    with pytest.raises(dataclasses.FrozenInstanceError):
        target(config)


def test_config_is_hashable_and_equal_when_loaded_twice():
    a, b = load_config(EXAMPLE, env={}), load_config(EXAMPLE, env={})
    assert a == b and hash(a) == hash(b)


def test_load_config_accepts_path_string_and_text(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text(dump(minimal()))
    assert load_config(str(path), env={}) == load_config(dump(minimal()), env={}) == load_config_file(path, env={})


def test_validate_main_ok(capsys):
    assert validate_main(str(EXAMPLE)) == 0
    out = capsys.readouterr()
    assert out.out.strip() == "OK: 2 detector(s)" and out.err == ""


def test_validate_main_reports_problems_to_stderr(tmp_path, capsys):
    doc = minimal()
    doc["detectors"][0]["model"] = {"hidden": "abc"}
    doc["metrics"] = {"port": 70000}
    path = tmp_path / "bad.yaml"
    path.write_text(dump(doc))
    assert validate_main(path) == 1
    out = capsys.readouterr()
    assert out.out == ""
    assert str(path) in out.err and "2 problem(s)" in out.err
    assert "detectors[0].model.hidden: expected an integer in [1, 256], got 'abc'" in out.err
    assert "metrics.port: expected an integer in [0, 65535], got 70000" in out.err


def test_validate_main_missing_file(tmp_path, capsys):
    assert validate_main(tmp_path / "nope.yaml") == 1
    assert "cannot read the configuration" in capsys.readouterr().err
