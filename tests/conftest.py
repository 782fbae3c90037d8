"""Shared pytest fixtures."""

from pathlib import Path

import pytest

from rnnstream.embedded.testing import session_broker


@pytest.fixture(scope="session")
def kafka():
    """One real Apache Kafka broker for the whole session (an ``EmbeddedKafka``; use ``.bootstrap``).

    Fails (never skips) the tests that use it when Java 17+ or Maven is missing; see rnnstream.embedded.
    """
    yield from session_broker()


NAB_ROOT = Path(__file__).resolve().parents[1].parent / "shared" / "nab"


@pytest.fixture(scope="session")
def nab_root() -> Path:
    """The shared NAB subset, ``<repo>/../shared/nab``. Missing data fails, it never skips."""
    if not (NAB_ROOT / "data").is_dir() or not (NAB_ROOT / "labels" / "combined_windows.json").is_file():
        pytest.fail(f"NAB data not found at {NAB_ROOT} (expected data/ and labels/combined_windows.json); "
                    "the shared/ directory must sit beside the repository checkout", pytrace=False)
    return NAB_ROOT
