"""``${VAR}`` / ``${VAR:-default}`` substitution in the string scalars of a parsed YAML tree.

Rules (a subset of POSIX shell expansion, applied before validation):
- ``${VAR}`` is the value of VAR; unset is a problem naming the YAML path (set-but-empty is "").
- ``${VAR:-default}`` is VAR if set and non-empty, else ``default`` (taken literally).
- ``$${`` writes a literal ``${``. A ``$`` not followed by ``{`` is left alone.
- Only string values are rewritten, never mapping keys; results are :class:`EnvStr` so the
  validator may read them as numbers or booleans. A string with a failed reference becomes
  ``UNRESOLVED``, which the validator skips (one problem per failure, not two).
Not guaranteed: nested references inside a default are not expanded.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from ._tree import UNRESOLVED, EnvStr, item_path, key_path

_REF = re.compile(r"\$\$\{|\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}|\$\{")


def referenced(text: str) -> list[str]:
    """The names of the variables ``text`` (YAML, or any string) refers to, sorted, each once; a
    ``$${`` escape refers to none."""
    return sorted({m.group(1) for m in _REF.finditer(text) if m.group(1)})


def substitute(tree: Any, env: Mapping[str, str], path: str = "") -> tuple[Any, list[tuple[str, str]]]:
    """A copy of ``tree`` with references expanded, and the problems found (path, message)."""
    problems: list[tuple[str, str]] = []
    return _walk(tree, env, path, problems), problems


def _walk(node: Any, env: Mapping[str, str], path: str, problems: list[tuple[str, str]]) -> Any:
    if isinstance(node, Mapping):
        return {k: _walk(v, env, key_path(path, k), problems) for k, v in node.items()}
    if isinstance(node, list):
        return [_walk(v, env, item_path(path, i), problems) for i, v in enumerate(node)]
    if isinstance(node, str) and "${" in node:
        return _expand(node, env, path or "(root)", problems)
    return node


def _expand(text: str, env: Mapping[str, str], path: str, problems: list[tuple[str, str]]) -> Any:
    failed = False

    def one(match: re.Match[str]) -> str:
        nonlocal failed
        whole, name, default = match.group(0), match.group(1), match.group(2)
        if whole == "$${":
            return "${"
        if name is None:
            failed = True
            problems.append((path, "malformed variable reference: write ${NAME} or ${NAME:-default} (NAME: letters, digits, '_'), or $${ for a literal ${"))
            return whole
        value = env.get(name)
        if default is not None and not value:
            return default
        if value is None:
            failed = True
            problems.append((path, f"environment variable {name} is not set (write ${{{name}:-default}} to give a default)"))
            return whole
        return value

    result = _REF.sub(one, text)
    return UNRESOLVED if failed else EnvStr(result)
