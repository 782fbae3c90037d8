"""Declaring schema fields, and describing their types and constraints in words.

A schema field is a dataclass field made with :func:`setting`: a default, a ``doc`` string and
optional constraints, all kept in ``field.metadata``. The validator (validate.py) enforces the
constraints and the reference generator (reference.py) prints them; both use :func:`describe`.
"""

from __future__ import annotations

import dataclasses
import functools
import types
import typing
from typing import Any, Literal, Union

from .secret import Secret

REQUIRED = dataclasses.MISSING

#: Constraint keys a field may carry. ``setting`` rejects anything else so a typo cannot silently
#: disable a check.
CONSTRAINTS = {
    "min": "value >= min",
    "max": "value <= max",
    "gt": "value > gt",
    "lt": "value < lt",
    "pattern": "a regular expression every string (or every list item) must fully match",
    "pattern_hint": "words for the pattern, used in messages instead of the regex",
    "min_items": "a list has at least this many items",
    "max_items": "a list has at most this many items",
    "unique": "list items must be distinct",
    "comma_separated": "a list may also be written as one comma-separated string",
    "choices": "a mapping or sequence the string value must be a key of",
    "selects": "name of a sibling field whose value picks this field's class from `choices`",
}


def setting(default: Any = REQUIRED, *, doc: str, factory: Any = None, **constraints: Any) -> Any:
    """A documented schema field. ``default`` omitted (and no ``factory``) makes the key required."""
    unknown = set(constraints) - set(CONSTRAINTS)
    if unknown:
        raise TypeError(f"unknown constraint(s) {sorted(unknown)}; known: {sorted(CONSTRAINTS)}")
    metadata = {"doc": doc, **constraints}
    if factory is not None:
        return dataclasses.field(default_factory=factory, metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


@functools.cache
def hints(cls: type) -> dict[str, Any]:
    """Resolved type annotations of a schema dataclass (``from __future__`` makes them strings)."""
    return typing.get_type_hints(cls)


def is_union(tp: Any) -> bool:
    return typing.get_origin(tp) in (Union, types.UnionType)


def split_optional(tp: Any) -> tuple[Any, bool]:
    """``X | None`` -> ``(X, True)``; anything else -> ``(tp, False)``."""
    if is_union(tp):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) < len(typing.get_args(tp)):
            return (args[0] if len(args) == 1 else Union[tuple(args)]), True
    return tp, False


def list_item(tp: Any) -> Any | None:
    """The item type of ``tuple[X, ...]`` or ``list[X]``, else None."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin is tuple and len(args) == 2 and args[1] is Ellipsis:
        return args[0]
    if origin is list and len(args) == 1:
        return args[0]
    return None


def _num(x: Any) -> str:
    return f"{x:g}" if isinstance(x, float) else str(x)


def range_text(meta: typing.Mapping[str, Any]) -> str:
    """Bounds in words: `` in [1, 256]``, `` in (0, 1]``, `` >= 1``, `` > 0``; empty if unbounded."""
    lo, lo_open = (meta["gt"], True) if "gt" in meta else (meta.get("min"), False)
    hi, hi_open = (meta["lt"], True) if "lt" in meta else (meta.get("max"), False)
    if lo is not None and hi is not None:
        return f" in {'(' if lo_open else '['}{_num(lo)}, {_num(hi)}{')' if hi_open else ']'}"
    if lo is not None:
        return f" {'>' if lo_open else '>='} {_num(lo)}"
    if hi is not None:
        return f" {'<' if hi_open else '<='} {_num(hi)}"
    return ""


def choice_names(meta: typing.Mapping[str, Any], tp: Any) -> list[str] | None:
    """The allowed values of a Literal or ``choices`` field, else None."""
    if "choices" in meta:
        return [str(c) for c in meta["choices"]]
    tp, _ = split_optional(tp)
    if typing.get_origin(tp) is Literal:
        return [str(a) for a in typing.get_args(tp)]
    return None


def describe(tp: Any, meta: typing.Mapping[str, Any]) -> str:
    """What a value must be, in words, e.g. ``an integer in [1, 256]`` or ``one of 's', 'ms'``."""
    inner, optional = split_optional(tp)
    text = _describe(inner, meta)
    return f"{text}, or null" if optional else text


def _describe(tp: Any, meta: typing.Mapping[str, Any]) -> str:
    names = choice_names(meta, tp)
    if names is not None:
        return "one of " + ", ".join(repr(n) for n in names)
    if tp is bool:
        return "true or false"
    if tp is int:
        return "an integer" + range_text(meta)
    if tp is float:
        return "a number" + range_text(meta)
    if tp is str or tp is Secret:
        return "a string" + (f" of {meta['pattern_hint']}" if "pattern_hint" in meta else "")
    item = list_item(tp)
    if item is not None:
        lo, hi = meta.get("min_items"), meta.get("max_items")
        count = f"{lo} to {hi} " if lo and hi else f"at least {lo} " if lo else f"at most {hi} " if hi else ""
        what = "mappings" if dataclasses.is_dataclass(item) else _describe(item, {}).replace("a string", "strings")
        if "pattern_hint" in meta:
            what += f" of {meta['pattern_hint']}"
        text = f"a list of {count}{'distinct ' if meta.get('unique') else ''}{what}"
        return text + (" (or one comma-separated string)" if meta.get("comma_separated") else "")
    if dataclasses.is_dataclass(tp):
        return "a mapping"
    return getattr(tp, "__name__", str(tp))


def type_name(tp: Any, meta: typing.Mapping[str, Any]) -> str:
    """A compact type for the reference table: ``int [1, 256]``, ``s | ms``, ``list[str]``."""
    inner, optional = split_optional(tp)
    names = choice_names(meta, inner)
    if names is not None:
        text = " | ".join(names)
    elif dataclasses.is_dataclass(inner):
        text = "mapping"
    elif (item := list_item(inner)) is not None:
        text = "list[mapping]" if dataclasses.is_dataclass(item) else f"list[{item.__name__}]"
        lo, hi = meta.get("min_items"), meta.get("max_items")
        if lo and hi:
            text += f", {lo}..{hi} items"
        elif lo:
            text += f", >= {lo} item{'s' if lo > 1 else ''}"
    elif inner is Secret:
        text = "str (secret)"
    else:
        text = inner.__name__ + range_text(meta).replace(" in ", " ")
    return f"{text} | null" if optional else text
