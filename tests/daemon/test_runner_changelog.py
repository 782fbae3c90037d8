"""State in the changelog topic: a daemon with an empty state_dir resumes every partition from Kafka."""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path

import pytest
from kafka import TopicPartition
from prometheus_client import CollectorRegistry

from rnnstream.config import load_config
from rnnstream.daemon.changelog import Reader, changelog_topic, ensure_topic, restore_consumer
from rnnstream.daemon.checkpoint import CheckpointStore
from rnnstream.daemon.statelog import StateLog
from rnnstream.errors import RnnstreamError
from rnnstream.metrics import Metrics
from rnnstream.ops.state_cmd import export_main, inspect_main

from .runner_helpers import (add_detector_state, assert_same_states, produce, run_to_end, synth_events, unique, unit_states,
                             write_config)

pytestmark = [pytest.mark.kafka, pytest.mark.slow, pytest.mark.timeout(300)]

CHANGELOG = "processing: {changelog: true}"


def changelog_states(cfg_path: Path, topic: str, partitions: int, tmp: Path) -> dict:
    """``unit_states`` of what the changelog alone holds (restored into an empty cache directory)."""
    cfg = load_config(cfg_path)
    det_cfg = cfg.detectors[0]
    empty = tmp / unique("empty")
    store = CheckpointStore(empty)
    reader = Reader(lambda: restore_consumer(cfg))
    log = StateLog(cfg, None, reader, store, Metrics(CollectorRegistry()))
    out: dict = {}
    try:
        for p in range(partitions):
            det, next_offset, _, _ = log.restore(det_cfg, TopicPartition(topic, p))
            assert next_offset is not None, f"no state for {topic}-{p} in the changelog"
            add_detector_state(out, p, det, next_offset)
    finally:
        reader.close()
    assert not empty.exists(), "restoring wrote to the cache directory"
    return out


def test_empty_state_dir_resumes_from_the_changelog(kafka, tmp_path):
    topic = unique("chl")
    kafka.create_topics([(topic, 2), (f"{topic}.anomalies", 1), (f"{topic}.dlq", 1)])
    events = synth_events(n_entities=8, n_steps=500, seed=7)
    first, second = events[:2000], events[2000:]
    produce(kafka.bootstrap, topic, first)
    state_dir = tmp_path / "state"
    cfg_path = write_config(tmp_path, kafka.bootstrap, topic, state_dir=state_dir, interval=0.3, max_poll=150,
                            extra=CHANGELOG)
    run_to_end(cfg_path, kafka.bootstrap, topic, 2)
    shutil.rmtree(state_dir)                              # a new machine: nothing on disk
    produce(kafka.bootstrap, topic, second)
    tr = run_to_end(cfg_path, kafka.bootstrap, topic, 2)
    restored = tr.sample("rnnstream_restore_records_total", {"detector": "hosts"})
    assert restored > 0, "the second run did not read the changelog"

    ref_path = write_config(tmp_path, kafka.bootstrap, topic, state_dir=tmp_path / "ref", interval=5.0,
                            max_poll=500, name="ref.yaml")
    run_to_end(ref_path, kafka.bootstrap, topic, 2)
    want = unit_states(ref_path, topic, 2)
    assert len(want) == 8 + 2 * 2
    assert_same_states(unit_states(cfg_path, topic, 2), want)          # the cache written afterwards
    assert_same_states(changelog_states(cfg_path, topic, 2, tmp_path), want)   # Kafka alone

    # `rnnstream state inspect --from-kafka` sees what inspect sees on disk: partitions, entities, offsets
    def summary(text: str) -> list:
        return sorted((u["topic"], u["partition"], u["entities"], u["next_offset"], u["model_type"],
                       u["model_version"], u["newest_valid"]) for u in json.loads(text))
    inspected, inspected_kafka = io.StringIO(), io.StringIO()
    assert inspect_main(str(cfg_path), as_json=True, out=inspected) == 0
    assert inspect_main(str(cfg_path), as_json=True, out=inspected_kafka, from_kafka=True) == 0
    assert summary(inspected_kafka.getvalue()) == summary(inspected.getvalue())
    assert {u["source"] for u in json.loads(inspected_kafka.getvalue())} == {"changelog"}
    assert sum(u["entities"] for u in json.loads(inspected_kafka.getvalue())) == 8
    wider = tmp_path / "wider.yaml"                       # another model shape: its restore would start fresh
    wider.write_text(cfg_path.read_text().replace("hidden: 8", "hidden: 16"))
    table = io.StringIO()
    assert inspect_main(str(wider), out=table, from_kafka=True) == 1
    assert "model shape changed" in table.getvalue() and "changelog" in table.getvalue()

    # `rnnstream state export --from-kafka` shows the state the file export shows (all but the source)
    from_disk, from_kafka = io.StringIO(), io.StringIO()
    assert export_main(str(cfg_path), "hosts", "host-03", out=from_disk) == 0
    shutil.rmtree(state_dir)
    assert export_main(str(cfg_path), "hosts", "host-03", out=from_kafka, from_kafka=True) == 0
    disk, kafka_state = json.loads(from_disk.getvalue()), json.loads(from_kafka.getvalue())
    assert kafka_state.pop("checkpoint")["changelog"] == changelog_topic(load_config(cfg_path), "hosts")
    disk.pop("checkpoint")
    assert kafka_state == disk and disk["event_count"] > 0


def test_changelog_topic_is_created_compacted_and_a_wrong_one_is_refused(kafka):
    admin = kafka.admin_client()
    name = unique("made")
    assert ensure_topic(admin, name, 3) is True
    assert ensure_topic(admin, name, 3) is False                       # exists with the right settings
    few = unique("few")
    admin.create_topics({few: {"num_partitions": 1, "configs": {"cleanup.policy": "compact"}}}, wait_for_metadata=True)
    with pytest.raises(RnnstreamError, match="has 1 partition"):
        ensure_topic(admin, few, 2)
    deleting = unique("del")
    admin.create_topics({deleting: {"num_partitions": 2}}, wait_for_metadata=True)
    with pytest.raises(RnnstreamError, match="cleanup.policy"):
        ensure_topic(admin, deleting, 2)


def test_changelog_topic_name_follows_the_config(tmp_path):
    cfg = load_config(write_config(tmp_path, "127.0.0.1:9", "in", group="grp",
                                   extra='processing: {changelog: true, changelog_topic: "x.{detector}.{group_id}"}'))
    assert changelog_topic(cfg, "hosts") == "x.hosts.grp"


def test_a_failed_restore_pauses_the_partition_and_is_retried(kafka, tmp_path, monkeypatch):
    topic = unique("retry")
    kafka.create_topics([(topic, 2), (f"{topic}.anomalies", 1), (f"{topic}.dlq", 1)])
    produce(kafka.bootstrap, topic, synth_events(n_entities=4, n_steps=450, seed=2))
    cfg_path = write_config(tmp_path, kafka.bootstrap, topic, interval=0.3, extra=CHANGELOG)
    original, failed = StateLog.restore, []

    def flaky(self, det_cfg, tp, *rest):
        if tp.partition == 1 and not failed:
            failed.append(tp)
            raise RnnstreamError("changelog unreadable (test)")
        return original(self, det_cfg, tp, *rest)

    monkeypatch.setattr(StateLog, "restore", flaky)
    tr = run_to_end(cfg_path, kafka.bootstrap, topic, 2)
    assert failed, "the failing restore was never attempted"
    assert tr.runner.units == {} and tr.runner._unrestored == {}
    states = unit_states(cfg_path, topic, 2)
    assert {p for p, _ in states} == {0, 1}
