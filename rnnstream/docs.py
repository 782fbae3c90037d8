"""Keep the README's generated sections (configuration and metrics references) in step with the code.

``python -m rnnstream.docs`` rewrites them in place; ``tests/test_docs.py`` fails when they differ.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Callable

README = Path(__file__).resolve().parent.parent / "README.md"


def _sections() -> dict[str, Callable[[], str]]:
    from .config import render_reference
    from .metrics import render_metrics_table

    return {"config-reference": render_reference, "metrics-reference": render_metrics_table}


def render(text: str) -> str:
    """``text`` with every ``<!-- BEGIN name -->...<!-- END name -->`` block regenerated."""
    for name, make in _sections().items():
        pattern = re.compile(rf"(<!-- BEGIN {name} -->\n).*?(<!-- END {name} -->)", re.S)
        if not pattern.search(text):
            raise ValueError(f"README has no '<!-- BEGIN {name} -->' block")
        text = pattern.sub(lambda m: m.group(1) + make().rstrip("\n") + "\n" + m.group(2), text)
    return text


def main() -> int:
    README.write_text(render(README.read_text()))
    print(f"regenerated {README}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
