"""rnnstream.metrics: names, labels, cached children, the top-K entity gauge and the README table."""

import re

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from rnnstream import __version__
from rnnstream.metrics import (
    METRIC_SPECS,
    SCORE_BUCKETS,
    UNROUTED,
    Metrics,
    metric_names,
    render_metrics_table,
    series_names,
)

EXPECTED = {
    "rnnstream_events_consumed_total": ("counter", ("topic",)),
    "rnnstream_events_processed_total": ("counter", ("detector",)),
    "rnnstream_events_rejected_total": ("counter", ("detector", "reason")),
    "rnnstream_anomalies_total": ("counter", ("detector",)),
    "rnnstream_score": ("histogram", ("detector",)),
    "rnnstream_event_to_score_latency_seconds": ("histogram", ("detector",)),
    "rnnstream_event_time_lag_seconds": ("gauge", ("detector",)),
    "rnnstream_batch_duration_seconds": ("histogram", ("detector",)),
    "rnnstream_consumer_lag": ("gauge", ("topic", "partition")),
    "rnnstream_entities": ("gauge", ("detector",)),
    "rnnstream_entities_evicted_total": ("counter", ("detector",)),
    "rnnstream_training_runs_total": ("counter", ("detector", "outcome")),
    "rnnstream_training_duration_seconds": ("histogram", ("detector",)),
    "rnnstream_training_loss": ("gauge", ("detector", "topic", "partition")),
    "rnnstream_model_version": ("gauge", ("detector", "topic", "partition")),
    "rnnstream_checkpoint_duration_seconds": ("histogram", ()),
    "rnnstream_checkpoint_last_success_timestamp_seconds": ("gauge", ()),
    "rnnstream_checkpoint_failures_total": ("counter", ()),
    "rnnstream_checkpoint_corrupt_total": ("counter", ()),
    "rnnstream_output_send_failures_total": ("counter", ("detector", "topic")),
    "rnnstream_outputs_pending": ("gauge", ("detector",)),
    "rnnstream_outputs_truncated_total": ("counter", ("detector",)),
    "rnnstream_outputs_dropped_total": ("counter", ("detector",)),
    "rnnstream_broker_connected": ("gauge", ()),
    "rnnstream_ready": ("gauge", ()),
    "rnnstream_build_info": ("gauge", ("version",)),
    "rnnstream_entity_score": ("gauge", ("detector", "entity")),
    "rnnstream_entity_last_anomaly_timestamp_seconds": ("gauge", ("detector", "entity")),
    "rnnstream_restoring_partitions": ("gauge", ()),
    "rnnstream_restore_records_total": ("counter", ("detector",)),
    "rnnstream_restore_bytes_total": ("counter", ("detector",)),
    "rnnstream_restore_duration_seconds": ("histogram", ("detector",)),
    "rnnstream_changelog_records_total": ("counter", ("detector",)),
    "rnnstream_changelog_bytes_total": ("counter", ("detector",)),
    "rnnstream_standby_partitions": ("gauge", ("detector",)),
    "rnnstream_standby_lag_records": ("gauge", ("detector",)),
    "rnnstream_standby_takeovers_total": ("counter", ("detector",)),
    "rnnstream_transactions_total": ("counter", ("result",)),
    "rnnstream_consumer_rejoins_total": ("counter", ()),
}


def _families(reg):
    text = generate_latest(reg).decode()
    return {f.name: f for f in text_string_to_metric_families(text)}


def test_specs_match_the_documented_contract():
    got = {s.name: (s.kind, s.labels) for s in METRIC_SPECS}
    assert got == EXPECTED
    assert len({s.attr for s in METRIC_SPECS}) == len(METRIC_SPECS)
    for s in METRIC_SPECS:
        assert (s.kind == "counter") == s.name.endswith("_total"), s.name
        assert "entity" not in s.labels or s.optional, f"{s.name} must not carry an entity label"


def test_exposition_has_every_name_with_its_type_and_help():
    reg = CollectorRegistry()
    m = Metrics(reg, top_k_entities=3)
    m.for_detector("cpu")
    m.for_topic("events")
    m.lag("events", 0).set(1)
    m.rejected_unrouted("no_route")
    m.set_entity_scores("cpu", {"a": 0.5})
    m.for_detector("cpu").note_anomaly("a", 1_700_000_000.0)
    fams = _families(reg)
    m.for_detector("cpu").start_partition(("events", 0), 0)
    m.for_detector("cpu").record_training(True, 1.0, 0.5, 1, partition=("events", 0))
    for name, (kind, _labels) in EXPECTED.items():
        base = name[: -len("_total")] if kind == "counter" else name
        assert base in fams, f"{name} not exported"
        assert fams[base].type == kind
        assert fams[base].documentation
    assert reg.get_sample_value("rnnstream_build_info", {"version": __version__}) == 1.0
    assert reg.get_sample_value("rnnstream_ready") == 0.0


def test_score_buckets_cover_the_tail():
    for b in (0.5, 0.9, 0.95, 0.99, 0.999, 1.0):
        assert b in SCORE_BUCKETS
    assert list(SCORE_BUCKETS) == sorted(set(SCORE_BUCKETS))
    reg = CollectorRegistry()
    d = Metrics(reg).for_detector("cpu")
    d.score.observe(0.995)
    assert reg.get_sample_value("rnnstream_score_bucket", {"detector": "cpu", "le": "0.99"}) == 0.0
    assert reg.get_sample_value("rnnstream_score_bucket", {"detector": "cpu", "le": "0.999"}) == 1.0


def test_detector_children_are_cached_and_count_in_the_right_series():
    reg = CollectorRegistry()
    m = Metrics(reg)
    d = m.for_detector("cpu")
    assert m.for_detector("cpu") is d
    assert d.rejected("bad_json") is d.rejected("bad_json")
    # series exist at zero as soon as the detector is known
    assert reg.get_sample_value("rnnstream_events_processed_total", {"detector": "cpu"}) == 0.0
    assert reg.get_sample_value("rnnstream_training_runs_total", {"detector": "cpu", "outcome": "failed"}) == 0.0
    d.processed.inc(5)
    d.anomalies.inc()
    d.rejected("bad_json").inc(2)
    m.for_detector("mem").processed.inc()
    assert reg.get_sample_value("rnnstream_events_processed_total", {"detector": "cpu"}) == 5.0
    assert reg.get_sample_value("rnnstream_events_processed_total", {"detector": "mem"}) == 1.0
    assert reg.get_sample_value("rnnstream_anomalies_total", {"detector": "cpu"}) == 1.0
    assert reg.get_sample_value(
        "rnnstream_events_rejected_total", {"detector": "cpu", "reason": "bad_json"}) == 2.0


def test_unrouted_rejections_do_not_create_detector_series():
    reg = CollectorRegistry()
    m = Metrics(reg)
    c = m.rejected_unrouted("no_route")
    assert m.rejected_unrouted("no_route") is c
    c.inc()
    assert reg.get_sample_value(
        "rnnstream_events_rejected_total", {"detector": UNROUTED, "reason": "no_route"}) == 1.0
    assert reg.get_sample_value("rnnstream_score_count", {"detector": UNROUTED}) is None
    with pytest.raises(ValueError, match="reserved"):
        m.for_detector(UNROUTED)


def test_training_and_checkpoint_helpers():
    reg = CollectorRegistry()
    m = Metrics(reg)
    d = m.for_detector("cpu")
    d.record_training(True, 2.0, loss=0.25, model_version=3, partition=("events", 0))
    d.record_training(True, 2.0, loss=0.75, model_version=5, partition=("events", 1))
    d.record_training(False, 1.0, loss=9.0, model_version=9, partition=("events", 0))
    assert reg.get_sample_value("rnnstream_training_runs_total", {"detector": "cpu", "outcome": "ok"}) == 2.0
    assert reg.get_sample_value("rnnstream_training_runs_total", {"detector": "cpu", "outcome": "failed"}) == 1.0
    # one series per partition shard: each partition has its own model
    p0, p1 = ({"detector": "cpu", "topic": "events", "partition": str(p)} for p in (0, 1))
    assert reg.get_sample_value("rnnstream_training_loss", p0) == 0.25
    assert reg.get_sample_value("rnnstream_training_loss", p1) == 0.75
    assert reg.get_sample_value("rnnstream_model_version", p0) == 3.0
    assert reg.get_sample_value("rnnstream_model_version", p1) == 5.0
    m.forget_partition("events", 1, "cpu")
    assert reg.get_sample_value("rnnstream_model_version", p1) is None
    assert reg.get_sample_value("rnnstream_model_version", p0) == 3.0
    assert reg.get_sample_value("rnnstream_training_duration_seconds_count", {"detector": "cpu"}) == 3.0
    m.record_checkpoint(True, 0.5, finished_at=1_700_000_000.0)
    m.record_checkpoint(False, 0.1, finished_at=1_700_000_100.0)
    assert reg.get_sample_value("rnnstream_checkpoint_last_success_timestamp_seconds") == 1_700_000_000.0
    assert reg.get_sample_value("rnnstream_checkpoint_failures_total") == 1.0
    assert reg.get_sample_value("rnnstream_checkpoint_duration_seconds_count") == 2.0
    m.set_ready(True)
    assert reg.get_sample_value("rnnstream_ready") == 1.0


def test_lag_children_are_cached_and_forgotten_on_revoke():
    reg = CollectorRegistry()
    m = Metrics(reg)
    g = m.lag("events", 3)
    assert m.lag("events", 3) is g
    g.set(42)
    assert reg.get_sample_value("rnnstream_consumer_lag", {"topic": "events", "partition": "3"}) == 42.0
    m.forget_partition("events", 3)
    assert reg.get_sample_value("rnnstream_consumer_lag", {"topic": "events", "partition": "3"}) is None
    m.forget_partition("events", 3)  # idempotent
    assert m.lag("events", 3) is not g


def test_entity_scores_are_off_by_default():
    reg = CollectorRegistry()
    m = Metrics(reg)
    assert m.entity_score is None
    assert m.set_entity_scores("cpu", {"a": 1.0}) == 0
    assert "rnnstream_entity_score" not in _families(reg)


def _exported_entities(reg, detector):
    fams = _families(reg)
    if "rnnstream_entity_score" not in fams:
        return {}
    return {s.labels["entity"]: s.value for s in fams["rnnstream_entity_score"].samples
            if s.labels["detector"] == detector}


def test_entity_scores_keep_at_most_k_and_drop_old_children():
    reg = CollectorRegistry()
    m = Metrics(reg, top_k_entities=2)
    assert m.set_entity_scores("cpu", {"a": 0.1, "b": 0.9, "c": 0.5}) == 2
    assert _exported_entities(reg, "cpu") == {"b": 0.9, "c": 0.5}
    m.set_entity_scores("mem", [("x", 0.3)])
    m.set_entity_scores("cpu", [("a", 0.99), ("d", 0.2), ("e", 0.01)])
    assert _exported_entities(reg, "cpu") == {"a": 0.99, "d": 0.2}
    assert _exported_entities(reg, "mem") == {"x": 0.3}  # other detectors untouched
    m.set_entity_scores("cpu", {})
    assert _exported_entities(reg, "cpu") == {}
    with pytest.raises(ValueError):
        Metrics(CollectorRegistry(), top_k_entities=-1)


def test_fresh_registries_are_independent_and_duplicates_refused():
    r1, r2 = CollectorRegistry(), CollectorRegistry()
    Metrics(r1).for_detector("a").processed.inc()
    Metrics(r2)
    assert r2.get_sample_value("rnnstream_events_processed_total", {"detector": "a"}) is None
    with pytest.raises(ValueError):
        Metrics(r1)


def test_render_metrics_table_lists_every_metric_once():
    table = render_metrics_table()
    lines = table.strip().splitlines()
    assert lines[0].startswith("| Metric | Type | Labels | Meaning |")
    rows = lines[2:]
    assert len(rows) == len(METRIC_SPECS)
    names = [re.match(r"\| `([a-z_]+)` \|", r).group(1) for r in rows]
    assert names == [s.name for s in METRIC_SPECS]
    for r in rows:  # an escaped pipe must not break the 4-column layout
        assert len(re.split(r"(?<!\\)\|", r)) == 6, r


def test_series_names_include_histogram_suffixes():
    s = series_names()
    assert "rnnstream_score_bucket" in s and "rnnstream_score_count" in s
    assert "rnnstream_score" not in s
    assert "rnnstream_ready" in s
    assert metric_names() >= {"rnnstream_score", "rnnstream_entity_score"}
    assert "rnnstream_entity_score" not in metric_names(include_optional=False)


def test_bulk_histogram_matches_prometheus_client_histogram():
    """observe_many on the collector exports what prometheus_client's own Histogram would."""
    import numpy as np
    from prometheus_client import Histogram

    values = np.array([0.0, 0.05, 0.1, 0.1000001, 0.5, 0.7, 0.999, 1.0, 1.5, 0.3])
    reg, ref = CollectorRegistry(), CollectorRegistry()
    d = Metrics(reg).for_detector("cpu")
    d.score.observe_many(values[:6])
    d.score.observe_many(values[6:0:-1][:0])   # empty: no-op
    for v in values[6:]:
        d.score.observe(v)
    h = Histogram("rnnstream_score", "x", ["detector"], buckets=SCORE_BUCKETS, registry=ref).labels("cpu")
    for v in values:
        h.observe(v)
    for le in [*(str(b) for b in SCORE_BUCKETS), "+Inf"]:
        labels = {"detector": "cpu", "le": le}
        assert reg.get_sample_value("rnnstream_score_bucket", labels) == ref.get_sample_value(
            "rnnstream_score_bucket", labels), le
    assert reg.get_sample_value("rnnstream_score_count", {"detector": "cpu"}) == len(values)
    assert reg.get_sample_value("rnnstream_score_sum", {"detector": "cpu"}) == pytest.approx(values.sum())


def test_no_created_series_and_process_metrics_present():
    reg = CollectorRegistry()
    m = Metrics(reg)
    m.for_detector("cpu").processed.inc()
    text = generate_latest(reg).decode()
    assert "_created" not in text
    assert "process_resident_memory_bytes" in text and "process_open_fds" in text


def test_last_anomaly_per_entity_keeps_the_k_most_recent():
    reg = CollectorRegistry()
    m = Metrics(reg, top_k_entities=2)
    d = m.for_detector("cpu")
    for entity, when in (("a", 10.0), ("b", 20.0), ("a", 30.0), ("c", 40.0)):
        d.note_anomaly(entity, when)
    got = {e: reg.get_sample_value("rnnstream_entity_last_anomaly_timestamp_seconds", {"detector": "cpu", "entity": e})
           for e in "abc"}
    assert got == {"a": 30.0, "b": None, "c": 40.0}        # b was the oldest when c came
    off = Metrics(CollectorRegistry())
    off.for_detector("cpu").note_anomaly("a", 1.0)          # top_k 0: nothing exported, no error
    assert off.entity_last_anomaly is None
