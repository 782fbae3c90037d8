"""The daemon as a process: SIGKILL mid-stream + restart equals an uninterrupted run; SIGTERM is clean."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from kafka import TopicPartition

from rnnstream.config import load_config
from rnnstream.daemon.checkpoint import CheckpointStore

from .runner_helpers import (LAUNCH, assert_same_states, committed, end_offsets, produce, run_to_end, synth_events,
                             unique, unit_states, wait_until, write_config)

pytestmark = [pytest.mark.kafka, pytest.mark.timeout(300)]
ROOT = Path(__file__).resolve().parents[2]


def _start(cfg_path: Path, log_path: Path) -> subprocess.Popen:
    out = open(log_path, "ab")
    return subprocess.Popen([sys.executable, "-c", LAUNCH, str(cfg_path)], cwd=ROOT, stdout=out,
                            stderr=subprocess.STDOUT)


def _checkpoints(state_dir: Path, topic: str, partitions: int) -> bool:
    return all(any((state_dir / "hosts" / f"{topic}-{p}").glob("ckpt-*.rns")) for p in range(partitions))


def _stop(proc: subprocess.Popen, timeout: float = 10.0) -> tuple[int, float]:
    started = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    code = proc.wait(timeout)
    return code, time.monotonic() - started


def test_kill_9_and_restart_equals_uninterrupted_run(kafka, tmp_path):
    topic = unique("kill")
    kafka.create_topics([(topic, 2), (f"{topic}.anomalies", 1), (f"{topic}.dlq", 1)])
    events = synth_events(n_entities=8, n_steps=700, seed=11)
    first, second = events[:2400], events[2400:]
    produce(kafka.bootstrap, topic, first)

    state_dir = tmp_path / "state"
    cfg_path = write_config(tmp_path, kafka.bootstrap, topic, state_dir=state_dir, interval=0.3, max_poll=100)
    group = load_config(cfg_path).kafka.group_id
    log_path = tmp_path / "daemon.log"
    proc = _start(cfg_path, log_path)
    try:
        wait_until(lambda: _checkpoints(state_dir, topic, 2), 60, "first checkpoints")
        feeder = threading.Thread(target=lambda: [produce(kafka.bootstrap, topic, second[i:i + 200])
                                                  or time.sleep(0.1) for i in range(0, len(second), 200)])
        feeder.start()
        time.sleep(1.0)
        proc.kill()                                   # SIGKILL: no checkpoint, no commit, no flush
        proc.wait(10)
        feeder.join(60)
        ends = end_offsets(kafka.bootstrap, topic, 2)
        assert sum(ends.values()) == len(events)
        before = committed(kafka.bootstrap, group)
        assert before != ends, "the daemon had already finished: the kill was not mid-stream"

        proc = _start(cfg_path, log_path)
        wait_until(lambda: committed(kafka.bootstrap, group) == ends, 120, "the restarted daemon to finish")
        code, _ = _stop(proc)
        assert code == 0, log_path.read_text()[-3000:]
    finally:
        if proc.poll() is None:
            proc.kill()

    ref_path = write_config(tmp_path, kafka.bootstrap, topic, state_dir=tmp_path / "ref", interval=5.0,
                            max_poll=500, name="ref.yaml")
    run_to_end(ref_path, kafka.bootstrap, topic, 2)
    got, want = unit_states(cfg_path, topic, 2), unit_states(ref_path, topic, 2)
    assert len(want) == 8 + 2 * 2
    assert_same_states(got, want)


def test_sigterm_exits_cleanly_with_checkpoint_at_committed_offsets(kafka, tmp_path):
    topic = unique("term")
    kafka.create_topics([(topic, 2), (f"{topic}.anomalies", 1), (f"{topic}.dlq", 1)])
    produce(kafka.bootstrap, topic, synth_events(n_entities=6, n_steps=600, seed=5))
    state_dir = tmp_path / "state"
    # No periodic checkpoint during the test: the one found afterwards is the shutdown checkpoint.
    cfg_path = write_config(tmp_path, kafka.bootstrap, topic, state_dir=state_dir, interval=3600, max_poll=50)
    cfg = load_config(cfg_path)
    proc = _start(cfg_path, tmp_path / "daemon.log")
    try:
        time.sleep(6.0)   # imports, kernels from the numba cache, group join, some batches
        assert proc.poll() is None, (tmp_path / "daemon.log").read_text()[-3000:]
        code, took = _stop(proc)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert code == 0, (tmp_path / "daemon.log").read_text()[-3000:]
    assert took < 10.0
    offsets = committed(kafka.bootstrap, cfg.kafka.group_id)
    store = CheckpointStore(state_dir)
    det_cfg = cfg.detectors[0]
    assert offsets, "nothing committed at shutdown"
    for p, offset in offsets.items():
        loaded = store.load("hosts", TopicPartition(topic, p), det_cfg)
        assert loaded is not None
        det, next_offset = loaded
        det.close()
        assert next_offset == offset > 0
        assert det.training.events == next_offset   # every consumed event was scored exactly once
