"""Shared pytest fixtures."""

import pytest

from rnnstream.embedded.testing import session_broker
from rnnstream.kernels.jit import configure_cache

configure_cache()  # as the command line does: compiled kernels are reused across test runs


@pytest.fixture(scope="session")
def kafka():
    """One real Apache Kafka broker for the whole session (an ``EmbeddedKafka``; use ``.bootstrap``).

    Fails (never skips) the tests that use it when Java 17+ or Maven is missing; see rnnstream.embedded.
    """
    yield from session_broker()
