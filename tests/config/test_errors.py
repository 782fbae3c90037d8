"""Each class of invalid input yields the right YAML path and an operator-readable message."""

from __future__ import annotations

import pytest

from rnnstream.config import load_config_text
from rnnstream.errors import ConfigError

from .conftest import dump, minimal, problem_at, problems


def with_detector(**changes):
    doc = minimal()
    doc["detectors"][0].update(changes)
    return doc


@pytest.mark.parametrize(
    ("doc", "path", "message"),
    [
        (with_detector(model={"hidden": "abc"}), "detectors[0].model.hidden", "expected an integer in [1, 256], got 'abc'"),
        (with_detector(model={"hidden": 0}), "detectors[0].model.hidden", "expected an integer in [1, 256], got 0"),
        (with_detector(model={"hidden": 2.5}), "detectors[0].model.hidden", "expected an integer in [1, 256], got 2.5"),
        (with_detector(model={"hidden": True}), "detectors[0].model.hidden", "expected an integer in [1, 256], got true"),
        (with_detector(model={"type": "esn", "leak_rate": 0}), "detectors[0].model.leak_rate", "expected a number in (0, 1], got 0.0"),
        (with_detector(model={"type": "esn", "sparsity": 1.0}), "detectors[0].model.sparsity", "expected a number in [0, 1), got 1.0"),
        (with_detector(model={"type": "esn", "spectral_radius": float("nan")}), "detectors[0].model.spectral_radius", "expected a number > 0, got nan"),
        ({**minimal(), "checkpoint": {"keep_generations": 1}}, "checkpoint.keep_generations", "expected an integer >= 2, got 1"),
        ({**minimal(), "logging": {"log_payloads": "yes"}}, "logging.log_payloads", "expected true or false, got 'yes'"),
        ({**minimal(), "state_dir": 5}, "state_dir", "expected a string, got 5"),
        ({**minimal(), "metrics": [1]}, "metrics", "expected a mapping, got list"),
        (with_detector(name="Bad-Name"), "detectors[0].name", "expected a string of lowercase letters, digits and '_', got 'Bad-Name'"),
        (with_detector(timestamp={"field": "ts", "unit": "sec"}), "detectors[0].timestamp.unit", "expected one of 's', 'ms', 'us', 'ns', 'iso', got 'sec'"),
        (with_detector(format="csv"), "detectors[0].format", "expected one of 'json', got 'csv'"),
        (with_detector(features=[]), "detectors[0].features", "got 0 item(s)"),
        (with_detector(features=[f"f{i}" for i in range(17)]), "detectors[0].features", "got 17 item(s)"),
        (with_detector(features=["a", "b", "a"]), "detectors[0].features[2]", "duplicate 'a' (also at index 0)"),
        (with_detector(features=["a..b"]), "detectors[0].features[0]", "dotted field paths"),
        (with_detector(topics=["bad topic"]), "detectors[0].topics[0]", "Kafka topic names"),
        ({**minimal(), "detectors": []}, "detectors", "expected a list of at least 1 mappings, got 0 item(s)"),
    ],
)
def test_field_errors(doc, path, message):
    assert message in problem_at(doc, path)


def test_literal_error_suggests_the_right_spelling():
    msg = problem_at({**minimal(), "logging": {"level": "info"}}, "logging.level")
    assert msg == "expected one of 'DEBUG', 'INFO', 'WARNING', 'ERROR', got 'info'; did you mean 'INFO'?"


def test_unknown_key_with_suggestion():
    doc = minimal()
    doc["detectors"][0]["trainig"] = {}
    assert problem_at(doc, "detectors[0].trainig") == "unknown key; did you mean 'training'?"


def test_unknown_key_lists_known_keys_when_nothing_is_close():
    assert "known keys: interval_seconds, keep_generations" in problem_at({**minimal(), "checkpoint": {"zzz": 1}}, "checkpoint.zzz")


def test_parameter_of_the_other_model_type_is_unknown():
    msg = problem_at(with_detector(model={"type": "gru", "size": 400}), "detectors[0].model.size")
    assert msg.startswith("unknown key for type 'gru'")


def test_unknown_model_type():
    msg = problem_at(with_detector(model={"type": "transformer", "hidden": 4}), "detectors[0].model.type")
    assert msg == "expected one of 'gru', 'lstm', 'esn', 'naive', got 'transformer'"


def test_missing_required_keys():
    doc = minimal()
    del doc["detectors"][0]["features"], doc["detectors"][0]["timestamp"]
    found = dict(problems(doc))
    assert found["detectors[0].features"].startswith("required key is missing (expected a list of 1 to 16")
    assert found["detectors[0].timestamp"] == "required key is missing (expected a mapping)"
    assert "detectors" in dict(problems("state_dir: /tmp\n"))


def test_null_for_non_optional_field():
    assert problem_at({**minimal(), "state_dir": None}, "state_dir") == "expected a string, got null"


@pytest.mark.parametrize(
    ("entity", "message"),
    [({}, "set exactly one of 'field' or 'from_key: true'"), ({"field": "h", "from_key": True}, "set exactly one")],
)
def test_entity_exactly_one(entity, message):
    assert message in problem_at(with_detector(entity=entity), "detectors[0].entity")


def test_timestamp_exactly_one():
    msg = problem_at(with_detector(timestamp={"field": "ts", "from_record": True}), "detectors[0].timestamp")
    assert msg == "set exactly one of 'field' or 'from_record: true'"


def test_duplicate_detector_names_and_shared_topics():
    doc = minimal()
    second = dict(doc["detectors"][0], topics=["other", "metrics.hosts"])
    doc["detectors"].append(second)
    found = problems(doc)
    assert ("detectors[1].name", "duplicate detector name 'hosts' (also detectors[0])") in found
    assert ("detectors[1].topics[1]", "topic 'metrics.hosts' already belongs to detectors[0] (hosts)") in found
    assert len(found) == 2


def test_output_topic_may_not_be_an_input():
    doc = with_detector(outputs={"anomalies_topic": "metrics.hosts"})
    assert "would feed results back in" in problem_at(doc, "detectors[0].outputs.anomalies_topic")


def test_scoring_and_training_cross_checks():
    found = problems(with_detector(scoring={"short_window": 50, "long_window": 50}, training={"window": 128, "min_events": 100}))
    assert ("detectors[0].scoring.short_window", "must be smaller than long_window (50)") in found
    assert ("detectors[0].training.min_events", "must be >= window (128): one training window needs that many events") in found


def test_log_features_must_be_features():
    found = problems(with_detector(features=["cpu", "requests"], log_features=["requests", "bytes"]))
    assert found == [("detectors[0].log_features[1]", "'bytes' is not one of features ['cpu', 'requests']")]
    doc = with_detector(features=["cpu", "requests"], log_features=["requests"])
    det = load_config_text(dump(doc)).detectors[0]
    assert det.log_features == ("requests",)
    assert det.with_features(("cpu", "latency")).log_features == ()   # an evaluation stream's columns


def test_processing_cross_checks_name_their_path():
    assert "needs changelog: true" in problem_at({**minimal(), "processing": {"standby_replicas": 1}},
                                                 "processing.standby_replicas")
    assert "must be true" in problem_at({**minimal(), "processing": {"guarantee": "exactly_once"}},
                                        "processing.changelog")


def test_sasl_requires_mechanism_user_password():
    doc = {**minimal(), "kafka": {"bootstrap_servers": ["b:9092"], "security_protocol": "SASL_SSL", "sasl_username": "u"}}
    found = problems(doc)
    assert ("kafka.sasl_mechanism", "required when security_protocol is SASL_SSL") in found
    assert ("kafka.sasl_password", "required when security_protocol is SASL_SSL") in found
    assert len(found) == 2


def test_ssl_files_and_sasl_refused_with_plaintext():
    doc = {**minimal(), "kafka": {"bootstrap_servers": "b:9092", "ssl_cafile": "/ca.pem", "sasl_username": "u"}}
    found = problems(doc)
    assert ("kafka.ssl_cafile", "only used with SSL or SASL_SSL, but security_protocol is PLAINTEXT") in found
    assert ("kafka.sasl_username", "only used with SASL_PLAINTEXT or SASL_SSL, but security_protocol is PLAINTEXT") in found


def test_all_problems_are_listed_at_once():
    doc = minimal()
    doc["metrics"] = {"port": -1, "bogus": 1}
    doc["logging"] = {"level": "LOUD"}
    doc["detectors"][0].update(model={"type": "esn", "size": 4, "ridge": 0}, features=[], name="X")
    doc["detectors"].append({"name": "second", "topics": "t2", "entity": {}, "timestamp": {"from_record": True}, "features": ["v"]})
    with pytest.raises(ConfigError) as info:
        load_config_text(dump(doc), env={})
    paths = [p for p, _ in info.value.problems]
    assert sorted(paths) == sorted([
        "metrics.bogus", "metrics.port", "logging.level", "detectors[0].name", "detectors[0].features",
        "detectors[0].model.size", "detectors[0].model.ridge", "detectors[1].entity",
    ])
    text = str(info.value)
    assert text.startswith("<string>: 8 problem(s)")
    assert all(f"  {p}: " in text for p in paths)


def test_yaml_syntax_error_has_line_and_column():
    (path, msg), = problems("detectors:\n  - name: a\n    topics: [x\n")
    assert path == "(yaml)"
    assert msg.startswith("line 4, column 1:"), msg


def test_duplicate_yaml_key_is_reported_with_its_line():
    (path, msg), = problems("state_dir: /a\nstate_dir: /b\ndetectors: []\n")
    assert path == "(yaml)" and msg.startswith("line 2, column 1:") and "duplicate key 'state_dir'" in msg


def test_empty_document_and_non_mapping_root():
    assert "empty" in problem_at("# nothing\n\n", "(root)")
    assert problem_at("- a\n- b\n", "(root)") == "expected a mapping, got list"


def test_error_names_the_source_file(tmp_path):
    path = tmp_path / "broken.yaml"
    path.write_text("state_dir: [\n")
    with pytest.raises(ConfigError) as info:
        from rnnstream.config import load_config
        load_config(path, env={})
    assert info.value.source == str(path) and str(info.value).startswith(f"{path}: 1 problem(s)")


def test_entity_shorthand_error_mentions_the_shorthand():
    msg = problem_at(with_detector(entity=5), "detectors[0].entity")
    assert msg == "expected a mapping or a field name (shorthand for {field: <name>}), got 5"


def test_model_config_direct_construction_rejects_mismatched_params():
    from rnnstream.config import ESNParams, GRUParams, ModelConfig

    assert ModelConfig(type="esn", params=ESNParams()).params.size == 200
    with pytest.raises(TypeError, match="needs params of ESNParams"):
        ModelConfig(type="esn", params=GRUParams())


@pytest.mark.parametrize(
    ("doc", "path", "message"),
    [
        (with_detector(outputs={"scores_topic": "s", "scores_format": "batches"}), "detectors[0].outputs.scores_format",
         "expected one of 'record', 'batch', got 'batches'"),
        ({**minimal(), "kafka": {"bootstrap_servers": ["k:9092"], "linger_ms": -1}}, "kafka.linger_ms", "got -1"),
        ({**minimal(), "kafka": {"bootstrap_servers": ["k:9092"], "producer_batch_bytes": 10}}, "kafka.producer_batch_bytes", "got 10"),
        ({**minimal(), "kafka": {"bootstrap_servers": ["k:9092"], "compression_type": "brotli"}}, "kafka.compression_type",
         "expected one of 'none', 'gzip', 'snappy', 'lz4', 'zstd', got 'brotli'"),
    ],
)
def test_output_batching_errors(doc, path, message):
    assert message in problem_at(doc, path)


def test_a_compression_codec_without_its_package_is_refused_by_name(monkeypatch):
    from kafka import codec

    monkeypatch.setattr(codec, "has_zstd", lambda: False)
    doc = {**minimal(), "kafka": {"bootstrap_servers": ["k:9092"], "compression_type": "zstd"}}
    assert problem_at(doc, "kafka.compression_type") == "'zstd' needs the Python package zstandard, which is not installed"
    monkeypatch.setattr(codec, "has_zstd", lambda: True)
    assert load_config_text(dump(doc)).kafka.producer_kwargs()["compression_type"] == "zstd"
