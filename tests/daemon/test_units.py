"""Unit.handle: latency is measured from the Kafka record timestamp, event-time lag separately, and
each published anomaly is logged."""

from __future__ import annotations

import logging
import time

import orjson
from kafka.consumer.fetcher import ConsumerRecord
from prometheus_client import CollectorRegistry

from rnnstream.config import load_config
from rnnstream.daemon.decode import decode_batch
from rnnstream.daemon.logs import RateLimitedLog
from rnnstream.daemon.units import Unit
from rnnstream.detector import Detector
from rnnstream.metrics import Metrics

CFG = """
detectors:
  - name: d
    topics: [t]
    entity: host
    timestamp: {field: ts}
    features: [cpu]
    model: {type: naive}
    training: {enabled: false}
    scoring: {warmup_events: 5, short_window: 2, long_window: 20, threshold: 0.5, suppress_events: 0}
"""


class _Outputs:
    def __init__(self):
        self.anomalies = []

    def anomaly(self, record, entity, *rest):
        self.anomalies.append((entity, record.offset))

    def dead_letter(self, *args):
        pass


def _records(n, event_t0, record_ms):
    out = []
    for i in range(n):
        value = orjson.dumps({"host": "h", "ts": event_t0 + 60 * i, "cpu": 500.0 if i == n - 1 else float(i % 3)})
        out.append(ConsumerRecord("t", 0, 0, i, record_ms, 0, None, value, [], None, -1, len(value), -1))
    return out


def test_latency_from_record_timestamp_and_event_time_lag_apart(caplog):
    cfg = load_config(CFG).detectors[0]
    reg = CollectorRegistry()
    dm = Metrics(reg).for_detector("d")
    unit = Unit("d", ("t", 0), cfg, Detector(cfg, background=False), dm,
                anomaly_log=RateLimitedLog(logging.getLogger("rnnstream.daemon")))   # not the shared quota
    # A backfill: events of 2020, published to Kafka 0.2 s ago.
    now = time.time()
    outputs = _Outputs()
    with caplog.at_level(logging.INFO, logger="rnnstream.daemon"):
        counts = unit.handle(_records(100, 1_577_836_800, int((now - 0.2) * 1000)), outputs, decode_batch)
    unit.close()
    assert counts.processed == 100
    bucket = lambda le: reg.get_sample_value("rnnstream_event_to_score_latency_seconds_bucket",  # noqa: E731
                                             {"detector": "d", "le": le})
    assert bucket("0.1") == 0 and bucket("5.0") == 100     # about 0.2 s, not years in +Inf
    lag = reg.get_sample_value("rnnstream_event_time_lag_seconds", {"detector": "d"})
    assert lag > 5 * 365 * 86400                           # the event-time lag shows the years
    assert outputs.anomalies and outputs.anomalies[-1] == ("h", 99)
    logged = [r for r in caplog.records if r.getMessage() == "anomaly published"]
    assert logged and logged[-1].entity == "h" and logged[-1].offset == 99


def test_outputs_queued_earlier_are_sent_before_the_batch_is_scored():
    """Unit.handle wakes the producer's sender before the scoring kernel runs (its Python then runs
    while the kernel holds no GIL), not after: the batch's entities do not exist yet at the wake-up."""
    cfg = load_config(CFG).detectors[0]
    unit = Unit("d", ("t", 0), cfg, Detector(cfg, background=False), Metrics(CollectorRegistry()).for_detector("d"),
                anomaly_log=RateLimitedLog(logging.getLogger("rnnstream.daemon")))
    woke = []

    class Waking(_Outputs):
        def wake(self):
            woke.append(len(unit.detector.state))

    try:
        unit.handle(_records(10, 1_700_000_000, int(time.time() * 1000)), Waking(), decode_batch)
        unit.handle(_records(10, 1_800_000_000, int(time.time() * 1000)), Waking(), decode_batch)
    finally:
        unit.close()
    assert woke == [0, 1]     # before each batch: no entity yet, then the one entity "h"
