"""Progress bars for long commands (replay, eval): tqdm on stderr, shown only when stderr is a terminal.

``progress(total=..., desc=..., unit=...)`` returns a ``tqdm`` bar (use ``update(n)``, ``close()`` or a
``with`` block). Off when stderr is not a TTY (logs, CI, pipes stay clean), when ``enabled=False``,
or when the environment sets ``RNNSTREAM_PROGRESS=0``; ``RNNSTREAM_PROGRESS=1`` forces it on.
A disabled bar accepts the same calls and prints nothing. ``note(text)`` prints a line (a finished
file, a result) without breaking an active bar.
"""

from __future__ import annotations

import os
import sys
from typing import Any, TextIO

from tqdm import tqdm


def _wanted(stream: TextIO, enabled: bool | None) -> bool:
    if enabled is not None:
        return enabled
    env = os.environ.get("RNNSTREAM_PROGRESS", "").strip()
    if env in ("0", "1"):
        return env == "1"
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())


def progress(total: float | None = None, desc: str = "", unit: str = "it", *, stream: TextIO | None = None,
             enabled: bool | None = None, **kwargs: Any) -> tqdm:
    """A tqdm bar on ``stream`` (default stderr); see the module docstring for when it shows."""
    stream = sys.stderr if stream is None else stream
    return tqdm(total=total, desc=desc, unit=unit, file=stream, disable=not _wanted(stream, enabled),
                dynamic_ncols=True, leave=False, **kwargs)


def note(text: str, stream: TextIO | None = None) -> None:
    """Print ``text`` as its own line on ``stream`` (default stdout) above any active progress bar."""
    tqdm.write(text, file=sys.stdout if stream is None else stream)
