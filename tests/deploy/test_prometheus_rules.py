"""deploy/prometheus: promtool accepts the rules and their unit tests pass; names match metrics.py."""

import shutil
import subprocess

import pytest

from rnnstream.metrics import metric_names

PROMTOOL_MISSING = "promtool not found: `apt-get update && apt-get install -y prometheus` (.ci/run does this)"


def _promtool(*args: str, cwd) -> subprocess.CompletedProcess:
    exe = shutil.which("promtool")
    if exe is None:
        pytest.fail(PROMTOOL_MISSING)
    return subprocess.run([exe, *args], cwd=cwd, capture_output=True, text=True, timeout=300)


def test_promtool_check_rules(deploy_dir):
    r = _promtool("check", "rules", "rnnstream.rules.yml", cwd=deploy_dir / "prometheus")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "SUCCESS" in r.stdout


def test_promtool_unit_tests_pass(deploy_dir):
    r = _promtool("test", "rules", "rnnstream.rules.test.yml", cwd=deploy_dir / "prometheus")
    assert r.returncode == 0, r.stdout + r.stderr


def test_rules_use_only_defined_metrics(rules_doc, known_names, promql_names):
    used = set()
    for group in rules_doc["groups"]:
        for rule in group["rules"]:
            names = promql_names(rule["expr"])
            if rule.get("alert") != "RnnstreamDown":  # that one uses Prometheus' own `up`
                assert names, f"{rule.get('alert') or rule.get('record')}: references no rnnstream metric?"
            assert names <= known_names, f"{rule.get('alert') or rule.get('record')}: unknown {names - known_names}"
            used |= names
    # not every metric needs an alert, but the core ones must be watched
    for essential in ("rnnstream_ready", "rnnstream_anomalies_total", "rnnstream_consumer_lag",
                      "rnnstream_checkpoint_failures_total", "rnnstream_checkpoint_last_success_timestamp_seconds"):
        assert essential in metric_names() and essential in used


EXPECTED_ALERTS = {
    "RnnstreamDown", "RnnstreamAnomalyRateHigh", "RnnstreamAnomalyDetected", "RnnstreamConsumerLagGrowing",
    "RnnstreamCheckpointFailing", "RnnstreamCheckpointStale", "RnnstreamTrainingFailing",
    "RnnstreamDeadLetterRateHigh", "RnnstreamNotReady", "RnnstreamOutputsUndeliverable", "RnnstreamKafkaUnreachable",
}


def test_every_alert_is_documented_and_unit_tested(rules_doc, deploy_dir):
    import yaml

    alerts = [r for g in rules_doc["groups"] for r in g["rules"] if "alert" in r]
    names = {a["alert"] for a in alerts}
    assert EXPECTED_ALERTS <= names
    for a in alerts:
        ann = a["annotations"]
        assert ann["summary"] and ann["description"], a["alert"]
        assert ann["runbook_url"] == f"README.md#runbook-{a['alert'].lower()}", a["alert"]
        assert a["labels"]["severity"] in {"critical", "warning", "info"}
    assert next(a for a in alerts if a["alert"] == "RnnstreamAnomalyDetected")["labels"]["severity"] == "info"
    tests = yaml.safe_load((deploy_dir / "prometheus" / "rnnstream.rules.test.yml").read_text())["tests"]
    fired = {t["alertname"] for case in tests for t in case.get("alert_rule_test", []) if t["exp_alerts"]}
    quiet = {t["alertname"] for case in tests for t in case.get("alert_rule_test", []) if not t["exp_alerts"]}
    assert names <= fired, f"alerts never shown firing: {names - fired}"
    assert names <= quiet, f"alerts never shown quiet: {names - quiet}"
