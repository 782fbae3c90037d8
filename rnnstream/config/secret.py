"""``Secret``: a string that never shows itself in repr, str, f-strings or logs.

Only :meth:`Secret.reveal` returns the value; call it at the last moment (e.g. when building
kafka-python keyword arguments). Not guaranteed: a caller that reveals and then logs the value.
"""

from __future__ import annotations

import hmac

MASK = "********"


class Secret:
    """An immutable wrapper around a sensitive string. Equality is by value (constant time)."""

    __slots__ = ("_value",)

    def __init__(self, value: str):
        if not isinstance(value, str):
            raise TypeError("Secret wraps a str")
        object.__setattr__(self, "_value", value)

    def reveal(self) -> str:
        """The wrapped value. Never log or print it."""
        return self._value

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError("Secret is immutable")

    def __repr__(self) -> str:
        return f"Secret({MASK!r})"

    def __str__(self) -> str:
        return MASK

    def __format__(self, spec: str) -> str:
        return format(MASK, spec)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Secret):
            return NotImplemented
        return hmac.compare_digest(self._value.encode(), other._value.encode())

    def __hash__(self) -> int:
        return hash((Secret, self._value))

    def __reduce__(self):  # refuse pickling/copy-by-serialisation: it would carry the value around
        raise TypeError("Secret cannot be pickled")

    def __copy__(self) -> Secret:
        return self

    def __deepcopy__(self, memo: dict) -> Secret:
        return self
