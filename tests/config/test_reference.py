"""The generated reference and the example file cover every schema field."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import yaml

from rnnstream.config import MODEL_PARAMS, Config, render_reference, schema_paths
from rnnstream.config.fields import hints, list_item, setting, split_optional

from .conftest import EXAMPLE


def _all_fields(cls: type, seen: set | None = None) -> set[tuple[type, str]]:
    """Every (dataclass, field name) reachable from ``cls``, walked independently of reference.py."""
    seen = set() if seen is None else seen
    out = set()
    for f in dataclasses.fields(cls):
        out.add((cls, f.name))
        tp, _ = split_optional(hints(cls)[f.name])
        nested = [list_item(tp) or tp]
        if "choices" in f.metadata and "selects" in f.metadata:
            nested = list(f.metadata["choices"].values())
        for sub in nested:
            if dataclasses.is_dataclass(sub) and sub not in seen:
                seen.add(sub)
                out |= _all_fields(sub, seen)
    return out


def test_every_field_has_a_doc():
    for cls, name in _all_fields(Config):
        field = {f.name: f for f in dataclasses.fields(cls)}[name]
        assert field.metadata.get("doc"), f"{cls.__name__}.{name} has no doc"


def test_reference_has_one_row_per_field_with_type_default_and_doc():
    table = render_reference()
    rows = [line for line in table.splitlines()[2:]]
    expected = len(_all_fields(Config)) - 1  # ModelConfig.params is expanded into its parameters
    assert len(rows) == expected
    for row in rows:
        cells = row[2:-2].split(" | ")
        assert len(cells) == 4 and cells[0].startswith("`") and cells[1] and cells[3], row
    assert "| `detectors[].model.hidden` | int [1, 256] | `16` | (type `gru`) Hidden units. |" in table
    assert "| `kafka.bootstrap_servers` | list[str], >= 1 item | *required* |" in table
    assert "| `logging.level` | DEBUG \\| INFO \\| WARNING \\| ERROR | `\"INFO\"` |" in table
    assert "`detectors[].model.size` | int [8, 4096]" in table


def test_reference_covers_a_newly_registered_model_type(monkeypatch):
    @dataclass(frozen=True, kw_only=True)
    class TinyParams:
        width: int = setting(3, doc="Tiny width.", min=1)

    monkeypatch.setitem(MODEL_PARAMS, "tiny", TinyParams)
    assert "| `detectors[].model.width` | int >= 1 | `3` | (type `tiny`) Tiny width. |" in render_reference()
    assert "detectors[].model.width" in schema_paths()


def _example_paths(node, prefix=""):
    paths = set()
    if isinstance(node, dict):
        for key, value in node.items():
            path = f"{prefix}.{key}" if prefix else key
            paths.add(path)
            paths |= _example_paths(value, path)
    elif isinstance(node, list):
        for item in node:
            paths |= _example_paths(item, prefix + "[]")
    return paths


def test_example_mentions_every_schema_path():
    tree = yaml.safe_load(EXAMPLE.read_text())
    written = {p for p in _example_paths(tree) if not p.endswith("[]")}
    missing = schema_paths() - written
    assert not missing, f"config/example.yaml lacks: {sorted(missing)}"
    assert not written - schema_paths(), "example.yaml has keys the schema does not know"
