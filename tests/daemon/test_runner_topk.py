"""The opt-in per-entity score export: at most top_k_entities series per detector, the hottest ones."""

from __future__ import annotations

import pytest

from .runner_helpers import ThreadedRunner, committed, end_offsets, produce, unique, wait_until, write_config

pytestmark = [pytest.mark.kafka, pytest.mark.timeout(180)]


def test_top_k_entity_scores_are_capped_and_follow_the_anomaly(kafka, tmp_path):
    topic = unique("topk")
    kafka.create_topics([(topic, 2), (f"{topic}.anomalies", 1), (f"{topic}.dlq", 1)])
    # 12 flat-ish hosts; host-07 jumps far outside its range at the end
    events = [{"host": f"host-{h:02d}", "ts": 1_700_000_000 + 60 * i, "cpu": 50.0 + (i % 7) * 0.1}
              for i in range(200) for h in range(12)]
    events += [{"host": "host-07", "ts": 1_700_000_000 + 60 * 200, "cpu": 5000.0}]
    produce(kafka.bootstrap, topic, events)
    cfg_path = write_config(tmp_path, kafka.bootstrap, topic)
    cfg_path.write_text(cfg_path.read_text().replace("metrics:\n", "metrics:\n  top_k_entities: 3\n"))
    tr = ThreadedRunner(cfg_path)
    assert tr.config.metrics.top_k_entities == 3
    ends = end_offsets(kafka.bootstrap, topic, 2)
    wait_until(lambda: committed(kafka.bootstrap, tr.config.kafka.group_id) == ends, 120, "all offsets committed")
    assert tr.stop() == 0
    exported = {s.labels["entity"]: s.value
                for metric in tr.runner.registry.collect() if metric.name == "rnnstream_entity_score"
                for s in metric.samples}
    assert 0 < len(exported) <= 3
    assert exported.get("host-07") == max(exported.values()) and exported["host-07"] > 0.9
