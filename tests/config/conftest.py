"""Helpers for the config tests: a minimal valid document and a way to collect its problems."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

from rnnstream.config import load_config_text
from rnnstream.errors import ConfigError

EXAMPLE = Path(__file__).resolve().parents[2] / "config" / "example.yaml"

MINIMAL: dict[str, Any] = {
    "detectors": [
        {
            "name": "hosts",
            "topics": ["metrics.hosts"],
            "entity": "host",
            "timestamp": {"field": "ts"},
            "features": ["cpu"],
        }
    ]
}


def minimal() -> dict[str, Any]:
    return copy.deepcopy(MINIMAL)


def dump(tree: Any) -> str:
    return yaml.safe_dump(tree, sort_keys=False)


def problems(tree_or_text: Any, env: dict[str, str] | None = None) -> list[tuple[str, str]]:
    """The problems ConfigError lists for a document (fails the test if it loads)."""
    text = tree_or_text if isinstance(tree_or_text, str) else dump(tree_or_text)
    with pytest.raises(ConfigError) as info:
        load_config_text(text, env=env or {})
    return info.value.problems


def problem_at(tree_or_text: Any, path: str, env: dict[str, str] | None = None) -> str:
    """The single message reported at ``path`` (fails if there is not exactly one problem)."""
    found = problems(tree_or_text, env)
    assert len(found) == 1, found
    assert found[0][0] == path, found
    return found[0][1]
