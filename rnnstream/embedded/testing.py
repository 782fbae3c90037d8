"""Pytest support: the session broker behind the ``kafka`` fixture of tests/conftest.py.

A broker that cannot be fetched or started fails the tests that need it, with the reason (what to
install, or the broker's log tail); it never skips them. Imports pytest, so only tests use this.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

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
