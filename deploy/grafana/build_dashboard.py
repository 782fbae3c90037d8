"""Writes rnnstream-dashboard.json next to this file. Edit here, then run:

    python deploy/grafana/build_dashboard.py

tests/deploy/test_grafana.py fails when the committed JSON differs from what this script produces,
so the two cannot drift. Only the standard library is used.
"""

from __future__ import annotations

import json
from pathlib import Path

DS = {"type": "prometheus", "uid": "${datasource}"}
JOB = 'job=~"$job", namespace=~"$namespace"'
DET = f'{JOB}, detector=~"$detector"'
RI = "$__rate_interval"


def sel(*matchers: str) -> str:
    """A PromQL selector body: the job/namespace variables plus ``matchers``."""
    return ", ".join((JOB, *matchers))


class Layout:
    """Hands out panel ids and grid positions, left to right, 24 columns wide."""

    def __init__(self) -> None:
        self.panels: list[dict] = []
        self.x = 0
        self.y = 0
        self.row_h = 0
        self.next_id = 1

    def row(self, title: str) -> None:
        self._newline()
        self.panels.append({"type": "row", "title": title, "id": self._id(), "collapsed": False,
                            "gridPos": {"x": 0, "y": self.y, "w": 24, "h": 1}, "panels": []})
        self.y += 1

    def add(self, panel: dict, w: int, h: int = 8) -> None:
        if self.x + w > 24:
            self._newline()
        panel.update(id=self._id(), datasource=DS, gridPos={"x": self.x, "y": self.y, "w": w, "h": h})
        for i, t in enumerate(panel["targets"]):
            t.setdefault("refId", chr(ord("A") + i))
            t["datasource"] = DS
        self.panels.append(panel)
        self.x += w
        self.row_h = max(self.row_h, h)

    def _newline(self) -> None:
        self.y += self.row_h
        self.x, self.row_h = 0, 0

    def _id(self) -> int:
        self.next_id += 1
        return self.next_id - 1


def q(expr: str, legend: str, **extra) -> dict:
    return {"expr": expr, "legendFormat": legend, **extra}


def ts(title: str, desc: str, unit: str, *targets: dict, stack: bool = False) -> dict:
    custom = {"drawStyle": "line", "fillOpacity": 10, "showPoints": "never"}
    if stack:
        custom["stacking"] = {"mode": "normal", "group": "A"}
    return {"type": "timeseries", "title": title, "description": desc, "targets": list(targets),
            "fieldConfig": {"defaults": {"unit": unit, "custom": custom}, "overrides": []},
            "options": {"legend": {"displayMode": "table", "placement": "bottom", "calcs": ["mean", "max"]},
                        "tooltip": {"mode": "multi", "sort": "desc"}}}


def stat(title: str, desc: str, unit: str, target: dict, thresholds: list[dict]) -> dict:
    return {"type": "stat", "title": title, "description": desc, "targets": [target],
            "fieldConfig": {"defaults": {"unit": unit, "thresholds": {"mode": "absolute", "steps": thresholds}},
                            "overrides": []},
            "options": {"reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
                        "colorMode": "background", "graphMode": "none", "textMode": "value_and_name"}}


def quantiles(metric: str, by: str, selector: str) -> list[dict]:
    return [q(f"histogram_quantile({p}, sum by ({by}, le) (rate({metric}_bucket{{{selector}}}[{RI}])))",
              f"p{int(p * 100)} {{{{{by}}}}}") for p in (0.5, 0.99)]


GREEN, AMBER, RED = "green", "orange", "red"


def variable(name: str, label: str, query: str) -> dict:
    return {"name": name, "label": label, "type": "query", "datasource": DS, "definition": query,
            "query": {"query": query, "refId": name}, "includeAll": True, "multi": True, "allValue": ".*",
            "current": {"text": "All", "value": "$__all"}, "refresh": 2, "sort": 1, "hide": 0, "regex": "",
            "options": []}


def build() -> dict:
    # Every query reads the daemon's own series (no recording rule is needed for any panel) and is
    # filtered by the job, namespace and detector variables.
    L = Layout()
    L.row("Overview")
    L.add(stat("Ready", "rnnstream_ready per instance: 1 once state is restored and partitions are assigned.", "none",
               q(f"rnnstream_ready{{{JOB}}}", "{{instance}}"),
               [{"color": RED, "value": None}, {"color": GREEN, "value": 1}]), w=6, h=4)
    L.add(stat("Checkpoint age", "Seconds since the last successful checkpoint (RnnstreamCheckpointStale at 600 s).", "s",
               q(f"time() - rnnstream_checkpoint_last_success_timestamp_seconds{{{JOB}}}", "{{instance}}"),
               [{"color": GREEN, "value": None}, {"color": AMBER, "value": 300}, {"color": RED, "value": 600}]), w=6, h=4)
    L.add(stat("Anomalies (range)", "Anomalies flagged in the dashboard's time range.", "none",
               q(f"sum(increase(rnnstream_anomalies_total{{{DET}}}[$__range]))", "anomalies", instant=True),
               [{"color": GREEN, "value": None}, {"color": AMBER, "value": 1}]), w=6, h=4)
    L.add(stat("Version", "rnnstream_build_info: the running version on each instance.", "none",
               q(f"count by (version) (rnnstream_build_info{{{JOB}}})", "{{version}}"),
               [{"color": "blue", "value": None}]), w=6, h=4)

    L.row("Throughput")
    L.add(ts("Events/s", "Consumed per topic, processed per detector, rejected (dead-lettered) in total.", "ops",
             q(f"sum by (topic) (rate(rnnstream_events_consumed_total{{{JOB}}}[{RI}]))", "consumed {{topic}}"),
             q(f"sum by (detector) (rate(rnnstream_events_processed_total{{{DET}}}[{RI}]))", "processed {{detector}}"),
             q(f"sum(rate(rnnstream_events_rejected_total{{{JOB}}}[{RI}]))", "rejected")), w=12)
    rejected = sel('detector=~"$detector|_unrouted"')
    L.add(ts("Rejected events/s by reason", "detector=\"_unrouted\" means no detector's stream matched.", "ops",
             q(f"sum by (detector, reason) (rate(rnnstream_events_rejected_total{{{rejected}}}[{RI}]))",
               "{{detector}} {{reason}}"), stack=True), w=12)
    L.add(ts("Consumer lag", "Records behind the high watermark per partition (RnnstreamConsumerLagGrowing). "
             "The exporter-based alternative (kafka_consumergroup_lag) is in the README.", "short",
             q(f"sum by (topic, partition) (rnnstream_consumer_lag{{{JOB}}})", "{{topic}}/{{partition}}")), w=12)
    L.add(ts("Rejected share", "Rejected / consumed (RnnstreamDeadLetterRateHigh at 5%).", "percentunit",
             q(f"sum by (job) (rate(rnnstream_events_rejected_total{{{JOB}}}[{RI}]))"
               f" / sum by (job) (rate(rnnstream_events_consumed_total{{{JOB}}}[{RI}]))", "{{job}}")), w=12)

    L.row("Latency")
    L.add(ts("Event-to-score latency", "From the Kafka record timestamp to the score, p50 and p99.", "s",
             *quantiles("rnnstream_event_to_score_latency_seconds", "detector", DET)), w=8)
    L.add(ts("Event-time lag", "Now minus the newest event time scored: how far behind the data is "
             "(includes delays before Kafka; large during a backfill).", "s",
             q(f"max by (detector) (rnnstream_event_time_lag_seconds{{{DET}}})", "{{detector}}")), w=8)
    L.add(ts("Batch duration", "Time to score one batch in a detector, p50 and p99.", "s",
             *quantiles("rnnstream_batch_duration_seconds", "detector", DET)), w=8)

    L.row("Anomalies")
    L.add(ts("Anomaly rate", "Anomalies/s per detector, against its 1-day baseline (RnnstreamAnomalyRateHigh at 5x).", "ops",
             q(f"sum by (detector) (rate(rnnstream_anomalies_total{{{DET}}}[5m]))", "{{detector}}"),
             q(f"sum by (detector) (rate(rnnstream_anomalies_total{{{DET}}}[1d]))", "{{detector}} 1d baseline")), w=12)
    L.add({"type": "heatmap", "title": "Score distribution",
           "description": "Events per rnnstream_score bucket; mass near 1 is what gets flagged.",
           "targets": [q(f"sum by (le) (increase(rnnstream_score_bucket{{{DET}}}[{RI}]))", "{{le}}", format="heatmap")],
           "fieldConfig": {"defaults": {}, "overrides": []},
           "options": {"calculate": False, "yAxis": {"unit": "none"}, "cellGap": 1,
                       "color": {"mode": "scheme", "scheme": "Oranges", "scale": "exponential", "exponent": 0.5},
                       "rowsFrame": {"layout": "auto"}, "tooltip": {"show": True, "yHistogram": True}}}, w=12)
    L.add({"type": "table", "title": "Top entities by score",
           "description": "The highest latest scores per entity (rnnstream_entity_score; needs "
                          "metrics.top_k_entities > 0) and the entities with an anomaly in the last hour.",
           "targets": [q(f"topk(20, max by (detector, entity) (rnnstream_entity_score{{{DET}}}))", "", instant=True,
                         format="table"),
                       q(f"max by (detector, entity) (rnnstream_entity_last_anomaly_timestamp_seconds{{{DET}}}"
                         f" > time() - 3600) * 1000", "", instant=True, format="table")],
           "fieldConfig": {"defaults": {}, "overrides": [
               {"matcher": {"id": "byName", "options": "Value #A"}, "properties": [{"id": "displayName", "value": "score"},
                                                                                {"id": "unit", "value": "none"}]},
               {"matcher": {"id": "byName", "options": "Value #B"}, "properties": [
                   {"id": "displayName", "value": "last anomaly"}, {"id": "unit", "value": "dateTimeAsIso"}]}]},
           "transformations": [{"id": "merge", "options": {}},
                               {"id": "organize", "options": {"excludeByName": {"Time": True}}},
                               {"id": "sortBy", "options": {"sort": [{"field": "Value #A", "desc": True}]}}],
           "options": {"showHeader": True}}, w=24)

    L.row("Entities")
    L.add(ts("Entities tracked", "Entities whose hidden state each detector holds.", "short",
             q(f"sum by (detector) (rnnstream_entities{{{DET}}})", "{{detector}}")), w=12)
    L.add(ts("Entities evicted/s", "Idle or over-capacity entities dropped.", "ops",
             q(f"sum by (detector) (rate(rnnstream_entities_evicted_total{{{DET}}}[{RI}]))", "{{detector}}")), w=12)

    L.row("Training")
    L.add(ts("Training runs", "Finished retraining runs per detector and outcome.", "short",
             q(f"sum by (detector, outcome) (increase(rnnstream_training_runs_total{{{DET}}}[$__interval]))",
               "{{detector}} {{outcome}}", interval="5m"), stack=True), w=12)
    L.add(ts("Training duration", "Seconds per retraining run (mean over the window).", "s",
             q(f"sum by (detector) (rate(rnnstream_training_duration_seconds_sum{{{DET}}}[1h]))"
               f" / sum by (detector) (rate(rnnstream_training_duration_seconds_count{{{DET}}}[1h]))", "{{detector}}")),
          w=12)
    L.add(ts("Training loss", "Final loss of each partition's last successful run (one model per partition).", "short",
             q(f"max by (detector, topic, partition) (rnnstream_training_loss{{{DET}}})", "{{detector}} {{topic}}/{{partition}}")),
          w=12)
    L.add(ts("Model version", "Weights version in use per partition; a step means a retrain was swapped in.", "short",
             q(f"max by (detector, topic, partition) (rnnstream_model_version{{{DET}}})", "{{detector}} {{topic}}/{{partition}}")),
          w=12)

    L.row("Checkpoints and process")
    L.add(ts("Checkpoint age", "Seconds since the last successful checkpoint per instance.", "s",
             q(f"time() - rnnstream_checkpoint_last_success_timestamp_seconds{{{JOB}}}", "{{instance}}")), w=8)
    L.add(ts("Checkpoint duration", "p50 and p99 time to write a checkpoint.", "s",
             *quantiles("rnnstream_checkpoint_duration_seconds", "instance", JOB)), w=8)
    L.add(ts("Checkpoint failures", "Failed writes and corrupt checkpoints found at restore.", "short",
             q(f"sum by (instance) (increase(rnnstream_checkpoint_failures_total{{{JOB}}}[$__interval]))", "failed {{instance}}",
               interval="1m"),
             q(f"sum by (instance) (increase(rnnstream_checkpoint_corrupt_total{{{JOB}}}[$__interval]))", "corrupt {{instance}}",
               interval="1m")), w=8)
    L.add(ts("Memory", "Resident memory per instance (process_resident_memory_bytes).", "bytes",
             q(f"process_resident_memory_bytes{{{JOB}}} * on (job, instance) group_left rnnstream_build_info{{{JOB}}}",
               "{{instance}}")), w=12)
    L.add(ts("CPU", "CPU cores used per instance (process_cpu_seconds_total).", "short",
             q(f"rate(process_cpu_seconds_total{{{JOB}}}[{RI}]) * on (job, instance) group_left rnnstream_build_info{{{JOB}}}",
               "{{instance}}")), w=12)

    return {
        "title": "rnnstream",
        "uid": "rnnstream-overview",
        "description": "rnnstream: consumption, scoring latency, anomalies, entities, training, checkpoints and the process.",
        "tags": ["rnnstream", "anomaly-detection", "kafka"],
        "schemaVersion": 39,
        "version": 1,
        "editable": True,
        "graphTooltip": 1,
        "refresh": "30s",
        "time": {"from": "now-6h", "to": "now"},
        "timezone": "",
        "annotations": {"list": [{
            "name": "Anomaly alerts", "enable": True, "iconColor": "red", "datasource": DS,
            "expr": f'ALERTS{{alertname="RnnstreamAnomalyRateHigh", alertstate="firing", {DET}}}',
            "step": "1m", "titleFormat": "Anomaly rate high: {{detector}}", "useValueForTime": False}]},
        "templating": {"list": [
            {"name": "datasource", "label": "Data source", "type": "datasource", "query": "prometheus",
             "current": {}, "hide": 0, "refresh": 1, "regex": "", "options": []},
            variable("job", "Job", "label_values(rnnstream_build_info, job)"),
            variable("namespace", "Namespace", 'label_values(rnnstream_build_info{job=~"$job"}, namespace)'),
            variable("detector", "Detector", f"label_values(rnnstream_events_processed_total{{{JOB}}}, detector)"),
        ]},
        "panels": L.panels,
    }


def render() -> str:
    return json.dumps(build(), indent=2) + "\n"


if __name__ == "__main__":
    out = Path(__file__).with_name("rnnstream-dashboard.json")
    out.write_text(render())
    print(f"wrote {out}")
