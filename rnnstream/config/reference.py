"""The configuration reference: every YAML path of the schema with its type, default and doc.

:func:`render_reference` returns a markdown table for the README; a test keeps the README in
sync. :func:`schema_rows` is the same walk as data (the example-coverage test uses it). Paths
write list items as ``[]`` (``detectors[].model.type``); a selected section's parameters appear
once per choice, marked ``(model type `esn`)``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from typing import Any, NamedTuple

from ._tree import key_path
from .fields import hints, list_item, split_optional, type_name
from .schema import Config


class Row(NamedTuple):
    path: str
    type: str
    default: str
    doc: str


def _default_text(f: dataclasses.Field) -> str:
    if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
        return "*required*"
    value = f.default if f.default is not dataclasses.MISSING else f.default_factory()
    if dataclasses.is_dataclass(value):
        return ""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return f'"{value}"'
    if isinstance(value, tuple):
        return "[" + ", ".join(map(str, value)) + "]"
    return repr(value)


def schema_rows(cls: type = Config, prefix: str = "", note: str = "") -> Iterator[Row]:
    """Every field of ``cls`` and its sections, depth first, in declaration order."""
    types = hints(cls)
    for f in dataclasses.fields(cls):
        if "selects" in f.metadata:
            for choice, sub in f.metadata["choices"].items():
                yield from schema_rows(sub, prefix, f"({f.metadata['selects']} `{choice}`) ")
            continue
        path = key_path(prefix, f.name)
        tp = types[f.name]
        yield Row(path, type_name(tp, f.metadata), _default_text(f), note + f.metadata["doc"])
        inner, _ = split_optional(tp)
        item = list_item(inner)
        if dataclasses.is_dataclass(inner):
            yield from schema_rows(inner, path)
        elif item is not None and dataclasses.is_dataclass(item):
            yield from schema_rows(item, path + "[]")


def schema_paths(cls: type = Config) -> set[str]:
    """The set of YAML paths of the schema (``detectors[].model.hidden`` style)."""
    return {row.path for row in schema_rows(cls)}


def _cell(text: Any) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def render_reference() -> str:
    """The markdown reference table (ends with a newline)."""
    lines = ["| Key | Type | Default | Description |", "|---|---|---|---|"]
    for row in schema_rows():
        default = f"`{row.default}`" if row.default and row.default != "*required*" else row.default
        lines.append(f"| `{row.path}` | {_cell(row.type)} | {_cell(default)} | {_cell(row.doc)} |")
    return "\n".join(lines) + "\n"

