"""The shutdown budget's last resort: SIGTERM ends the process in time even when a library call
ignores its deadline (here the consumer's close blocks for a minute), and nothing is lost."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from rnnstream.config import load_config

from .runner_helpers import LAUNCH, committed, end_offsets, produce, synth_events, unique, wait_until, write_config

pytestmark = [pytest.mark.kafka, pytest.mark.timeout(180)]
ROOT = Path(__file__).resolve().parents[2]
STUCK_CLOSE = ("import time, kafka; "
               "kafka.KafkaConsumer.close = lambda self, *a, **k: time.sleep(60); "   # ignores every deadline
               + LAUNCH)


def test_sigterm_exits_within_the_budget_when_a_close_hangs(kafka, tmp_path):
    topic = unique("stuck-close")
    kafka.create_topics([(topic, 1), (f"{topic}.anomalies", 1), (f"{topic}.dlq", 1)])
    produce(kafka.bootstrap, topic, synth_events(n_entities=3, n_steps=420))
    cfg_path = write_config(tmp_path, kafka.bootstrap, topic, interval=3600)
    cfg_path.write_text(cfg_path.read_text().replace("level: WARNING", "level: INFO"))
    cfg = load_config(cfg_path)
    log = open(tmp_path / "daemon.log", "wb")
    proc = subprocess.Popen([sys.executable, "-c", STUCK_CLOSE, str(cfg_path)], cwd=ROOT, stdout=log,
                            stderr=subprocess.STDOUT)
    try:
        ends = end_offsets(kafka.bootstrap, topic, 1)
        wait_until(lambda: b'"partitions assigned"' in (tmp_path / "daemon.log").read_bytes() or proc.poll() is not None,
                   60, "the assignment")
        time.sleep(3)
        assert proc.poll() is None, (tmp_path / "daemon.log").read_text()[-3000:]
        started = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(15)
        took = time.monotonic() - started
    finally:
        if proc.poll() is None:
            proc.kill()
        log.close()
    text = (tmp_path / "daemon.log").read_text()
    assert took < 10, took
    assert code == 3 and "shutdown budget exceeded" in text, text[-3000:]
    # The final checkpoint and commit happened before the stuck close (how far the daemon got in its
    # few seconds depends on the machine's load; what it did not process is replayed after a restart).
    done = committed(kafka.bootstrap, cfg.kafka.group_id)
    assert set(done) == set(ends) and all(0 < done[p] <= ends[p] for p in ends), (done, ends)
