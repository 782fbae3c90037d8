"""50 starts and stops of the daemon on one group (3 partitions, restored checkpoints, no new data):
every start gets its partitions, every stop is clean. One start in about nine used to hang forever in
a rebalance ("Elected group leader -- performing partition assignments using range", then nothing)."""

from __future__ import annotations

import time

import pytest

import math

from chaos.helpers import check_state, committed
from daemon.runner_helpers import ThreadedRunner, end_offsets, produce, synth_events, unique, wait_until, write_config

pytestmark = [pytest.mark.kafka, pytest.mark.chaos, pytest.mark.slow, pytest.mark.timeout(420)]
STARTS = 50


def test_fifty_starts_on_one_group_never_hang(kafka, tmp_path):
    topic = unique("chaos-starts")
    kafka.create_topics([(topic, 3), (f"{topic}.anomalies", 1), (f"{topic}.dlq", 1)])
    produce(kafka.bootstrap, topic, synth_events(n_entities=6, n_steps=420))
    cfg_path = write_config(tmp_path, kafka.bootstrap, topic, state_dir=tmp_path / "state", interval=0.3)
    ends = end_offsets(kafka.bootstrap, topic, 3)
    first = ThreadedRunner(cfg_path)
    group = first.config.kafka.group_id
    wait_until(lambda: committed(kafka.bootstrap, group) == ends, 60, "the first run to checkpoint everything")
    assert first.stop() == 0

    took = []
    tr = None
    for i in range(STARTS):
        started = time.monotonic()
        tr = ThreadedRunner(cfg_path)
        try:
            wait_until(lambda: len(tr.runner.units) == 3 and not tr.runner._ready_reason, 20,
                       f"start {i + 1}: all 3 partitions assigned (log: rebalance hang?)")
            assert all(u.restored for u in tr.runner.units.values())
        finally:
            assert tr.stop(timeout=15) == 0
        took.append(time.monotonic() - started)
    assert committed(kafka.bootstrap, group) == ends
    bad = [(m.name, s.labels, s.value) for m in tr.runner.registry.collect() for s in m.samples
           if not math.isfinite(s.value)]
    assert not bad, bad
    assert check_state(cfg_path, topic, 3) == 6
    print(f"{STARTS} starts: median {sorted(took)[STARTS // 2]:.2f} s, max {max(took):.2f} s")
