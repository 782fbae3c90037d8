"""deploy/grafana: the dashboard is valid JSON, uses the datasource variable everywhere, queries only
metrics that exist, and every query is PromQL that promtool accepts."""

import json
import re
import shutil
import subprocess
import sys

import pytest
import yaml

DS = {"type": "prometheus", "uid": "${datasource}"}
# Grafana's own variables, replaced by plausible values so promtool can parse the expressions.
GRAFANA_VARS = {"$__rate_interval": "1m", "$__interval": "1m", "$__range": "1h", "$detector": ".*", "$job": ".*",
                "$namespace": ".*"}


@pytest.fixture(scope="module")
def dash(deploy_dir):
    return json.loads((deploy_dir / "grafana" / "rnnstream-dashboard.json").read_text())


def _panels(dash):
    for p in dash["panels"]:
        yield p
        yield from p.get("panels", [])


def _exprs(dash):
    for p in _panels(dash):
        for t in p.get("targets", []):
            yield p["title"], t["expr"]
    for a in dash["annotations"]["list"]:
        if "expr" in a:
            yield a["name"], a["expr"]


def test_committed_json_matches_the_generator(deploy_dir):
    sys.path.insert(0, str(deploy_dir / "grafana"))
    try:
        import build_dashboard
    finally:
        sys.path.pop(0)
    committed = (deploy_dir / "grafana" / "rnnstream-dashboard.json").read_text()
    assert committed == build_dashboard.render(), "run: python deploy/grafana/build_dashboard.py"


def test_dashboard_shape(dash):
    assert 36 <= dash["schemaVersion"] <= 41
    variables = {v["name"]: v for v in dash["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    for name in ("job", "namespace", "detector"):
        assert variables[name]["type"] == "query" and variables[name]["datasource"] == DS, name
    ids = [p["id"] for p in _panels(dash)]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    cells = set()
    for p in _panels(dash):
        g = p["gridPos"]
        assert g["x"] >= 0 and g["x"] + g["w"] <= 24, p["title"]
        mine = {(g["x"] + dx, g["y"] + dy) for dx in range(g["w"]) for dy in range(g["h"])}
        assert not (mine & cells), f"panel {p['title']!r} overlaps another"
        cells |= mine


def test_datasource_is_the_variable_everywhere(dash):
    raw = json.dumps(dash)
    assert "DS_PROMETHEUS" not in raw and "__inputs" not in dash
    for p in _panels(dash):
        if p["type"] == "row":
            continue
        assert p["datasource"] == DS, p["title"]
        for t in p["targets"]:     # every panel follows the job and namespace variables
            assert 'job=~"$job"' in t["expr"] and 'namespace=~"$namespace"' in t["expr"], p["title"]
        assert p["targets"], p["title"]
        for t in p["targets"]:
            assert t["datasource"] == DS, p["title"]
    for a in dash["annotations"]["list"]:
        if "expr" in a:
            assert a["datasource"] == DS


def test_required_panels_exist(dash):
    titles = " | ".join(p["title"].lower() for p in _panels(dash))
    for word in ("events/s", "consumer lag", "event-to-score latency", "event-time lag", "batch duration",
                 "anomaly rate", "top entities", "memory", "cpu",
                 "score distribution", "entities tracked", "evicted", "training runs", "training duration",
                 "training loss", "model version", "checkpoint age", "checkpoint duration", "checkpoint failures"):
        assert word in titles, word
    heatmap = next(p for p in _panels(dash) if p["type"] == "heatmap")
    assert "rnnstream_score_bucket" in heatmap["targets"][0]["expr"]
    assert heatmap["targets"][0]["format"] == "heatmap"
    latency = next(p for p in _panels(dash) if p["title"] == "Event-to-score latency")
    assert {"0.5", "0.99"} <= set(re.findall(r"histogram_quantile\(([\d.]+)", json.dumps(latency)))


def test_queries_reference_only_defined_metrics(dash, known_names, promql_names, rules_doc):
    alerts = {r["alert"] for g in rules_doc["groups"] for r in g["rules"] if "alert" in r}
    for title, expr in _exprs(dash):
        if expr.startswith("ALERTS{"):  # Prometheus' own series of our alerts
            assert set(re.findall(r'alertname="(\w+)"', expr)) <= alerts, title
            continue
        names = promql_names(expr)
        assert names, f"{title}: no rnnstream metric in {expr!r}"
        assert names <= known_names, f"{title}: unknown {names - known_names}"


def test_queries_are_valid_promql(dash, tmp_path):
    exe = shutil.which("promtool")
    if exe is None:
        pytest.fail("promtool not found: `apt-get update && apt-get install -y prometheus` (.ci/run does this)")
    rules = []
    for i, (_title, expr) in enumerate(_exprs(dash)):
        for var, val in GRAFANA_VARS.items():
            expr = expr.replace(var, val)
        assert "$" not in expr, f"unhandled Grafana variable in {expr!r}"
        rules.append({"record": f"dashboard:q{i}", "expr": expr})
    f = tmp_path / "dash.rules.yml"
    f.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    r = subprocess.run([exe, "check", "rules", str(f)], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr


def test_no_panel_needs_the_recording_rules(dash, recorded_names, promql_names):
    """A Prometheus without rnnstream.rules.yml still fills every panel."""
    for title, expr in _exprs(dash):
        assert not (promql_names(expr) & recorded_names), f"{title} reads a recording rule: {expr}"


def test_model_gauges_are_shown_per_partition(dash):
    for title in ("Training loss", "Model version"):
        panel = next(p for p in _panels(dash) if p["title"] == title)
        assert "by (detector, topic, partition)" in panel["targets"][0]["expr"], title
