"""SIGHUP semantics (``Runner.request_reload``) against a real broker.

The config file is rewritten with one detector removed and one added, one left unchanged. After the
reload: the added detector consumes its topic; the removed one's partitions were checkpointed (state
and group offset at the end of what it consumed) and released (no unit, later records not consumed);
the unchanged detector kept its per-entity state, so event counts continue instead of restarting.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from kafka import TopicPartition
from kafka.admin import KafkaAdminClient

from rnnstream.config import load_config
from rnnstream.daemon.checkpoint import CheckpointStore

from .runner_helpers import ThreadedRunner, end_offsets, produce, unique, wait_until

pytestmark = [pytest.mark.kafka, pytest.mark.timeout(180)]

HEAD = """\
kafka:
  bootstrap_servers: {bootstrap}
  group_id: {group}
  auto_offset_reset: earliest   # events are produced before the group joins
  poll_timeout_ms: 100
  session_timeout_ms: 6000
state_dir: {state_dir}
checkpoint: {{interval_seconds: 1000, keep_generations: 2}}
metrics: {{host: 127.0.0.1, port: 0}}
detectors:
"""

DETECTOR = """\
  - name: {name}
    topics: [{topic}]
    entity: host
    timestamp: {{field: ts, unit: s}}
    features: [cpu]
    model: {{type: gru, hidden: 8}}
    training: {{background: true, every_events: 300, every_seconds: 1000000000, min_events: 200,
               window: 16, batch_windows: 8, steps: 5}}
    scoring: {{warmup_events: 20, long_window: 100}}
    outputs: {{anomalies_topic: {topic}.anomalies}}
"""


def write(path: Path, head: dict, detectors: dict[str, str]) -> None:
    path.write_text(HEAD.format(**head) + "".join(DETECTOR.format(name=n, topic=t) for n, t in detectors.items()))


def events(hosts: list[str], first_step: int, steps: int) -> list[dict]:
    return [{"host": h, "ts": 1_700_000_000 + 60 * i, "cpu": 40 + 10 * math.sin(i / 7 + k)}
            for i in range(first_step, first_step + steps) for k, h in enumerate(hosts)]


def test_reload_adds_removes_and_keeps_detectors(kafka, tmp_path):
    keep_t, gone_t, added_t = unique("keep"), unique("gone"), unique("added")
    kafka.create_topics([(keep_t, 2), (gone_t, 1), (added_t, 1)] + [(f"{t}.anomalies", 1) for t in (keep_t, gone_t, added_t)])
    head = {"bootstrap": kafka.bootstrap, "group": unique("g"), "state_dir": tmp_path / "state"}
    cfg_path = tmp_path / "rnnstream.yaml"
    write(cfg_path, head, {"keep": keep_t, "gone": gone_t})
    old_gone_cfg = load_config(cfg_path).detector("gone")
    keep_hosts, gone_hosts, added_hosts = [f"k{i}" for i in range(4)], ["g0", "g1"], ["a0", "a1", "a2"]

    tr = ThreadedRunner(cfg_path)
    runner = tr.runner

    def processed(det: str) -> float:
        return tr.sample("rnnstream_events_processed_total", {"detector": det})

    def consumed(topic: str) -> float:
        return tr.sample("rnnstream_events_consumed_total", {"topic": topic})

    def units_by_topic() -> dict[str, list] | None:
        try:
            units = list(runner.units.values())
        except RuntimeError:      # the loop thread changed the dict while we copied it
            return None
        out: dict[str, list] = {}
        for u in units:
            out.setdefault(u.tp.topic, []).append(u)
        return out

    def keep_counts() -> dict[str, int]:
        counts = {}
        for unit in units_by_topic()[keep_t]:
            state = unit.detector.state
            for entity, slot in state.index.items():
                counts[entity] = int(state["count"][slot])
        return counts

    try:
        phase1 = events(keep_hosts, 0, 150)
        produce(kafka.bootstrap, keep_t, phase1)
        produce(kafka.bootstrap, gone_t, events(gone_hosts, 0, 60))
        wait_until(lambda: processed("keep") == len(phase1) and processed("gone") == 120, 60, "phase 1 to be scored")
        before = keep_counts()
        assert before == {h: 150 for h in keep_hosts}
        keep_units_before = {u.tp: u for u in units_by_topic()[keep_t]}

        write(cfg_path, head, {"keep": keep_t, "added": added_t})
        runner.request_reload()
        wait_until(lambda: (u := units_by_topic()) is not None and set(u) == {keep_t, added_t}, 60,
                   "the reload to release the removed topic and assign the added one")
        assert [d.name for d in runner.config.detectors] == ["keep", "added"]

        # The removed detector: its partition was checkpointed at its end and the offset committed.
        gone_end = end_offsets(kafka.bootstrap, gone_t, 1)[0]
        loaded = CheckpointStore(head["state_dir"]).load("gone", TopicPartition(gone_t, 0), old_gone_cfg)
        assert loaded is not None, "the removed detector's partition was not checkpointed"
        det, next_offset = loaded
        try:
            assert next_offset == gone_end
            assert {e: int(det.state["count"][s]) for e, s in det.state.index.items()} == {h: 60 for h in gone_hosts}
        finally:
            det.close()
        assert committed_by_topic(kafka.bootstrap, head["group"])[(gone_t, 0)] == gone_end

        # After the reload: more records on the removed topic stay unconsumed, the added topic is scored,
        # the unchanged detector continues from its state.
        gone_consumed = consumed(gone_t)
        produce(kafka.bootstrap, gone_t, events(gone_hosts, 60, 10))
        added = events(added_hosts, 0, 50)
        produce(kafka.bootstrap, added_t, added)
        phase2 = events(keep_hosts, 150, 40)
        produce(kafka.bootstrap, keep_t, phase2)
        wait_until(lambda: processed("added") == len(added) and processed("keep") == len(phase1) + len(phase2), 60,
                   "the added and the unchanged detector to score their new records")
        assert consumed(added_t) == len(added)
        assert keep_counts() == {h: before[h] + 40 for h in keep_hosts}
        units = units_by_topic()
        assert gone_t not in units and len(units[added_t]) == 1
        assert {u.tp: u for u in units[keep_t]} == keep_units_before   # the very same units (and detectors)
        assert consumed(gone_t) == gone_consumed
        assert processed("gone") == 120
    finally:
        code = tr.stop()
    assert code == 0
    assert consumed(gone_t) == gone_consumed      # not even at shutdown


def committed_by_topic(bootstrap: str, group: str) -> dict[tuple[str, int], int]:
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        offsets = admin.list_group_offsets(group).get(group, {})
        return {(tp.topic, tp.partition): om.offset for tp, om in offsets.items()}
    finally:
        admin.close()
