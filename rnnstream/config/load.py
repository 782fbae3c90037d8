"""Loading a YAML file (or text) into a validated :class:`Config`.

``load_config`` parses with a safe loader that additionally rejects duplicate keys and reads
``1e-3`` as a number (plain PyYAML reads it as a string), expands ``${VAR}`` references, then
validates against the schema. Every problem is reported at once in one
:class:`~rnnstream.errors.ConfigError`; YAML syntax errors carry line and column. Nothing here
touches the network or the filesystem beyond reading the one file.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Mapping
from pathlib import Path

import yaml

from rnnstream.errors import ConfigError

from .env import substitute
from .schema import Config
from .validate import convert

SYNTAX = "(yaml)"


class _Loader(yaml.SafeLoader):
    """SafeLoader + duplicate-key rejection + YAML 1.2 style floats (``1e-3``)."""


def _mapping_without_duplicates(loader: _Loader, node: yaml.MappingNode) -> dict:
    loader.flatten_mapping(node)
    seen: set = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=True)
        try:
            duplicate = key in seen
            seen.add(key)
        except TypeError:
            continue  # unhashable key: construct_mapping reports it
        if duplicate:
            raise yaml.constructor.ConstructorError(
                "while constructing a mapping", node.start_mark, f"found duplicate key {key!r}", key_node.start_mark
            )
    return loader.construct_mapping(node, deep=True)


_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _mapping_without_duplicates)
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
    list("-+0123456789"),
)


def _syntax_problem(err: yaml.YAMLError) -> tuple[str, str]:
    mark = getattr(err, "problem_mark", None) or getattr(err, "context_mark", None)
    what = " ".join(p for p in (getattr(err, "context", None), getattr(err, "problem", None)) if p) or str(err)
    where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
    return SYNTAX, f"{where}{what}"


def load_config_text(text: str, *, source: str = "<string>", env: Mapping[str, str] | None = None) -> Config:
    """Parse, substitute and validate YAML ``text``. Raises ConfigError naming ``source``."""
    try:
        tree = yaml.load(text, Loader=_Loader)  # noqa: S506 - _Loader derives from SafeLoader
    except yaml.YAMLError as err:
        raise ConfigError([_syntax_problem(err)], source=source) from None
    if tree is None:
        raise ConfigError([("(root)", "the configuration is empty; expected a mapping with at least 'detectors'")], source=source)
    tree, problems = substitute(tree, os.environ if env is None else env)
    config, more = convert(Config, tree)
    problems += more
    if problems or config is None:
        raise ConfigError(problems, source=source)
    return config


def load_config_file(path: str | os.PathLike[str], *, env: Mapping[str, str] | None = None) -> Config:
    """Read and validate the YAML file at ``path``. Raises ConfigError (also if unreadable)."""
    source = os.fspath(path)
    try:
        text = Path(source).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise ConfigError([("(file)", f"cannot read the configuration: {err.strerror if isinstance(err, OSError) and err.strerror else err}")], source=source) from None
    return load_config_text(text, source=source, env=env)


def load_config(path_or_text: str | os.PathLike[str], *, env: Mapping[str, str] | None = None) -> Config:
    """Load a config from a path, or from YAML text.

    A ``PathLike`` is always a path. A ``str`` is YAML text if it contains a newline, else a path.
    ``env`` replaces ``os.environ`` for ``${VAR}`` substitution (tests).
    """
    if isinstance(path_or_text, str) and "\n" in path_or_text:
        return load_config_text(path_or_text, env=env)
    return load_config_file(path_or_text, env=env)


def validate_main(path: str | os.PathLike[str]) -> int:
    """``rnnstream validate -c FILE``: print ``OK: <n> detector(s)`` (stdout) or the problems (stderr).

    Returns the exit status: 0 valid, 1 invalid. Never touches the network.
    """
    try:
        config = load_config_file(path)
    except ConfigError as err:
        print(err, file=sys.stderr)
        return 1
    print(f"OK: {len(config.detectors)} detector(s)")
    return 0
