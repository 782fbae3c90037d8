"""Small helpers shared by the env substitution and the validator: YAML paths and the EnvStr marker."""

from __future__ import annotations


class EnvStr(str):
    """A string produced by ``${VAR}`` substitution.

    Unlike a plain YAML string, it may be converted to an int, float or bool when the schema asks
    for one (environment variables are always text).
    """


def key_path(parent: str, key: object) -> str:
    """``kafka`` + ``client_id`` -> ``kafka.client_id``; the root is the empty string."""
    return f"{parent}.{key}" if parent else str(key)


def item_path(parent: str, index: int) -> str:
    """``detectors`` + 0 -> ``detectors[0]``."""
    return f"{parent}[{index}]"


class _Unresolved:
    """Stands for a string whose ``${VAR}`` could not be expanded (the problem is already reported)."""

    def __repr__(self) -> str:
        return "<unresolved>"


UNRESOLVED = _Unresolved()
