"""A generic validator: a parsed YAML tree + a schema dataclass -> a frozen instance, or problems.

Supported field types: ``int``, ``float``, ``bool``, ``str``, :class:`Secret`, ``Literal[...]``,
``X | None``, nested schema dataclasses, ``tuple[X, ...]`` / ``list[X]`` of any of these, plus a
"selected" field (``selects=`` metadata) whose class is chosen from a registry by a sibling field
and whose keys sit inline beside it (``model: {type: esn, size: 400}``).

Guarantees: every problem found is reported, each as ``(yaml_path, message)`` with paths like
``detectors[0].model.hidden``; checking does not stop at the first one. A section's
``_cross_check`` also runs when some of its fields failed, on those that converted (checks needing a
failed field are skipped), so cross-field problems appear in the same pass as type errors. ``bool`` never passes for ``int``; ints
pass for ``float``. Values of :class:`Secret` fields never appear in messages. Strings produced by
``${VAR}`` substitution (:class:`EnvStr`) are also accepted for int/float/bool fields; ordinary
YAML strings are not.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import re
import typing
from collections.abc import Mapping
from types import SimpleNamespace
from typing import Any

from ._tree import UNRESOLVED, EnvStr, item_path, key_path
from .fields import choice_names, describe, hints, list_item, split_optional
from .secret import Secret

Problem = tuple[str, str]


class _Invalid:
    """A value that failed conversion; ``partial`` keeps what did convert (a namespace of a section's
    good fields, or a list's items) so cross-field checks can still run on it."""

    __slots__ = ("partial",)

    def __init__(self, partial: Any = None):
        self.partial = partial


_INVALID: Any = _Invalid()


def _bad(value: Any) -> bool:
    return isinstance(value, _Invalid)
_TRUE = {"true", "yes", "on", "1"}
_FALSE = {"false", "no", "off", "0"}


def convert(cls: type, raw: Any, path: str = "") -> tuple[Any, list[Problem]]:
    """Convert ``raw`` (a parsed YAML mapping) into ``cls``. Returns ``(instance or None, problems)``.

    The instance is None whenever a field failed; it may be non-None with problems when only
    cross-field checks failed.
    """
    v = _Validator()
    result = v.build(cls, raw, path)
    return (None if _bad(result) else result), v.problems


def show(raw: Any, secret: bool = False) -> str:
    """A short rendering of an offending value for messages (hidden for secrets)."""
    if raw is None:
        return "null"
    if secret:
        return f"a hidden {_kind(raw)}"
    if isinstance(raw, bool):
        return "true" if raw else "false"
    if isinstance(raw, (Mapping, list)):
        return _kind(raw)
    text = repr(str(raw) if isinstance(raw, str) else raw)
    return text if len(text) <= 60 else text[:57] + "...'"


def _kind(raw: Any) -> str:
    if isinstance(raw, bool):
        return "boolean"
    if isinstance(raw, Mapping):
        return "mapping"
    if isinstance(raw, list):
        return "list"
    return {int: "integer", float: "number", str: "string"}.get(type(raw), type(raw).__name__)


def _suggest(word: str, options: typing.Iterable[str]) -> str:
    options = list(options)
    lowered = {o.lower(): o for o in options}
    close = difflib.get_close_matches(word.lower(), list(lowered), n=1, cutoff=0.6)
    return f"; did you mean {lowered[close[0]]!r}?" if close else ""


class _Validator:
    def __init__(self) -> None:
        self.problems: list[Problem] = []

    def fail(self, path: str, message: str) -> Any:
        self.problems.append((path or "(root)", message))
        return _INVALID

    def build(self, cls: type, raw: Any, path: str, context: str = "") -> Any:
        if not isinstance(raw, Mapping):
            shorthand = getattr(cls, "_from_shorthand", None)
            converted = shorthand(raw) if shorthand is not None and raw is not None else None
            if converted is None:
                also = f" or {cls._shorthand_doc}" if shorthand is not None else ""
                return self.fail(path, f"expected a mapping{also}, got {show(raw)}")
            raw = converted
        types = hints(cls)
        fields = dataclasses.fields(cls)
        selected = [f for f in fields if "selects" in f.metadata]
        plain = [f for f in fields if "selects" not in f.metadata]
        names = {f.name for f in plain}
        ok = True
        leftover: dict[str, Any] = {}
        for key, value in raw.items():
            if not isinstance(key, str):
                self.fail(path, f"keys must be strings, got {show(key)}")
                ok = False
            elif key not in names:
                leftover[key] = value
        if not selected:
            for key in leftover:
                known = ", ".join(sorted(names))
                self.fail(key_path(path, key), f"unknown key{context}{_suggest(key, names) or f' (known keys: {known})'}")
            ok = ok and not leftover

        kwargs: dict[str, Any] = {}
        partial: dict[str, Any] = {}
        for f in plain:
            p = key_path(path, f.name)
            if f.name in raw:
                value = self.value(types[f.name], f.metadata, raw[f.name], p)
            elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                value = self.fail(p, f"required key is missing (expected {describe(types[f.name], f.metadata)})")
            else:
                continue
            if _bad(value):
                ok = False
                if value.partial is not None:
                    partial[f.name] = value.partial
            else:
                kwargs[f.name] = value

        for f in selected:
            selector = f.metadata["selects"]
            if selector in kwargs:
                choice = kwargs[selector]
            elif selector in raw:  # the selector itself was invalid: its problem is already reported
                ok = False
                continue
            else:
                choice = next(g.default for g in plain if g.name == selector)
            value = self.build(f.metadata["choices"][choice], leftover, path, f" for {selector} {choice!r}")
            if _bad(value):
                ok = False
            else:
                kwargs[f.name] = value

        if not ok:
            return self._partial_cross_check(cls, plain, kwargs, partial, raw, path)
        instance = cls(**kwargs)
        check = getattr(instance, "_cross_check", None)
        if check is not None:
            for rel, message in check():
                self.fail(key_path(path, rel) if rel else path, message)
        return instance

    def _partial_cross_check(self, cls: type, plain: list, kwargs: dict, partial: dict, raw: Mapping,
                             path: str) -> _Invalid:
        """Run ``cls._cross_check`` on the fields that did convert, so cross-field problems (a
        duplicate name, a topic in two detectors) show in the same pass as type errors. A check that
        needs a field that failed is skipped (its AttributeError is the signal)."""
        ns = SimpleNamespace()
        for f in plain:
            if f.name in kwargs:
                setattr(ns, f.name, kwargs[f.name])
            elif f.name in partial:
                setattr(ns, f.name, partial[f.name])
            elif f.name in raw:     # given but failed: absent, so checks that need it are skipped
                continue
            elif f.default is not dataclasses.MISSING:
                setattr(ns, f.name, f.default)
            elif f.default_factory is not dataclasses.MISSING:
                setattr(ns, f.name, f.default_factory())
        check = getattr(cls, "_cross_check", None)
        if check is not None:
            try:
                found = check(ns)
            except (AttributeError, TypeError):
                found = []
            for rel, message in found:
                self.fail(key_path(path, rel) if rel else path, message)
        return _Invalid(ns)

    def value(self, tp: Any, meta: Mapping[str, Any], raw: Any, path: str) -> Any:
        if raw is UNRESOLVED:  # a failed ${VAR}: env.py already reported it
            return _INVALID
        inner, optional = split_optional(tp)
        if raw is None:
            return None if optional else self.fail(path, f"expected {describe(tp, meta)}, got null")
        return self._typed(inner, meta, raw, path, describe(tp, meta))

    def _typed(self, tp: Any, meta: Mapping[str, Any], raw: Any, path: str, expected: str) -> Any:
        def bad(shown: Any = raw) -> Any:
            return self.fail(path, f"expected {expected}, got {show(shown, secret=tp is Secret)}")

        if dataclasses.is_dataclass(tp):
            return self.build(tp, raw, path)
        item = list_item(tp)
        if item is not None:
            return self._list(tp, item, meta, raw, path, bad)
        names = choice_names(meta, tp)
        if names is not None:
            allowed = meta["choices"] if "choices" in meta else typing.get_args(tp)
            if any(raw == a and type(raw) is type(a) for a in allowed) or (isinstance(raw, str) and raw in allowed):
                return str(raw) if isinstance(raw, str) else raw
            return self.fail(path, f"expected {expected}, got {show(raw)}{_suggest(str(raw), names)}")
        if tp is bool:
            if isinstance(raw, bool):
                return raw
            if isinstance(raw, EnvStr) and raw.strip().lower() in _TRUE | _FALSE:
                return raw.strip().lower() in _TRUE
            return bad()
        if tp is int or tp is float:
            number = self._number(tp, raw)
            if number is None:
                return bad()
            return number if self._in_range(number, meta) else bad(number)
        if tp is str or tp is Secret:
            if not isinstance(raw, str):
                return bad()
            text = str(raw)
            pattern = meta.get("pattern")
            if pattern is not None and not re.fullmatch(pattern, text):
                return bad()
            return Secret(text) if tp is Secret else text
        raise TypeError(f"{path}: unsupported schema type {tp!r}")

    @staticmethod
    def _number(tp: type, raw: Any) -> int | float | None:
        if isinstance(raw, EnvStr):
            try:
                raw = int(raw.strip()) if tp is int else float(raw.strip())
            except ValueError:
                return None
        if isinstance(raw, bool) or not isinstance(raw, (int, float)):
            return None
        if tp is int:
            return raw if isinstance(raw, int) else None
        return float(raw) if math.isfinite(raw) else None

    @staticmethod
    def _in_range(x: float, meta: Mapping[str, Any]) -> bool:
        return not (
            ("min" in meta and x < meta["min"]) or ("max" in meta and x > meta["max"])
            or ("gt" in meta and x <= meta["gt"]) or ("lt" in meta and x >= meta["lt"])
        )

    def _list(self, tp: Any, item: Any, meta: Mapping[str, Any], raw: Any, path: str, bad: Any) -> Any:
        if isinstance(raw, str) and meta.get("comma_separated"):
            raw = [part.strip() for part in raw.split(",") if part.strip()]
        if not isinstance(raw, list):
            return bad()
        item_meta = {k: meta[k] for k in ("pattern", "pattern_hint") if k in meta}
        out, ok = [], True
        for i, element in enumerate(raw):
            value = self.value(item, item_meta, element, item_path(path, i))
            ok = ok and not _bad(value)
            out.append(value)
        lo, hi = meta.get("min_items"), meta.get("max_items")
        if (lo is not None and len(out) < lo) or (hi is not None and len(out) > hi):
            return self.fail(path, f"expected {describe(tp, meta)}, got {len(out)} item(s)")
        if ok and meta.get("unique"):
            first: dict[Any, int] = {}
            for i, value in enumerate(out):
                if value in first:
                    self.fail(item_path(path, i), f"duplicate {show(value)} (also at index {first[value]})")
                    ok = False
                first.setdefault(value, i)
        if not ok:   # keep a partial only when every failed item kept one (sections, not scalars)
            whole = all(v.partial is not None for v in out if _bad(v))
            return _Invalid([v.partial if _bad(v) else v for v in out] if whole else None)
        return tuple(out) if typing.get_origin(tp) is tuple else out


__all__ = ["convert", "show", "Problem"]
