"""Pytest support: the session broker behind the ``kafka`` fixture of tests/conftest.py, and the
bounded waits and producer that the broker tests share.

A broker that cannot be fetched or started fails the tests that need it, with the reason (what to
install, or the broker's log tail); it never skips them. Imports pytest, so only tests use this.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import orjson
import pytest
from kafka import KafkaProducer

from rnnstream.embedded.broker import EmbeddedKafka
from rnnstream.errors import BrokerError


def session_broker() -> Iterator[EmbeddedKafka]:
    """Yield one started broker, stop it (and remove its directory) afterwards."""
    broker = EmbeddedKafka()
    try:
        broker.start()
    except BrokerError as exc:
        pytest.fail(f"the embedded Apache Kafka broker did not start: {exc}", pytrace=False)
    try:
        yield broker
    finally:
        broker.stop()


def wait_until(cond: Callable[[], Any], timeout: float, what: str, every: float = 0.2) -> Any:
    """Poll ``cond`` until it returns something truthy (returned) or ``timeout`` seconds pass (fails)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = cond()
        if got:
            return got
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def produce(bootstrap: str, topic: str, values: list[Any], key: Callable[[Any], bytes | None] | None = None) -> None:
    """Send ``values`` (dicts become JSON, bytes go as they are) keyed by ``host``, and flush."""
    producer = KafkaProducer(bootstrap_servers=bootstrap, linger_ms=5, acks="all")
    try:
        for v in values:
            payload = v if isinstance(v, (bytes, bytearray)) else orjson.dumps(v)
            k = key(v) if key else (v["host"].encode() if isinstance(v, dict) and "host" in v else None)
            producer.send(topic, key=k, value=payload)
        producer.flush(30)
    finally:
        producer.close()
