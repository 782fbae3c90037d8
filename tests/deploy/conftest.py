"""Shared fixtures of the deploy/ tests: paths, the rule file, and the names PromQL may use."""

import re
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from rnnstream.metrics import series_names

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
RULES = DEPLOY / "prometheus" / "rnnstream.rules.yml"

# Any identifier that starts with the project prefix; label values are quoted and "rnnstream" alone
# (the job name) is not followed by "_" or ":", so neither matches.
_NAME = re.compile(r"(?<![\w\"'])(rnnstream[_:][A-Za-z0-9_:]*)")


@pytest.fixture(scope="session")
def deploy_dir() -> Path:
    return DEPLOY


@pytest.fixture(scope="session")
def rules_doc() -> dict:
    return yaml.safe_load(RULES.read_text())


@pytest.fixture(scope="session")
def recorded_names(rules_doc) -> set[str]:
    return {r["record"] for g in rules_doc["groups"] for r in g["rules"] if "record" in r}


@pytest.fixture(scope="session")
def known_names(recorded_names) -> set[str]:
    """Every rnnstream series a query may reference: metrics.py's samples plus recording rules."""
    return set(series_names()) | recorded_names


@pytest.fixture(scope="session")
def promql_names() -> Callable[[str], set[str]]:
    """Extract the rnnstream-prefixed metric names a PromQL expression references."""
    return lambda expr: set(_NAME.findall(expr))
