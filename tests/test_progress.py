"""rnnstream.progress: a tqdm bar on stderr only when it is a terminal (or forced)."""

from __future__ import annotations

import io

from rnnstream.progress import progress


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_off_when_not_a_terminal(monkeypatch):
    monkeypatch.delenv("RNNSTREAM_PROGRESS", raising=False)
    buf = io.StringIO()
    with progress(total=10, desc="replay", stream=buf) as bar:
        bar.update(10)
    assert buf.getvalue() == ""


def test_on_for_a_terminal_and_overridable(monkeypatch):
    monkeypatch.delenv("RNNSTREAM_PROGRESS", raising=False)
    tty = _Tty()
    with progress(total=10, desc="replay", unit="rows", stream=tty) as bar:
        bar.update(10)
    assert "replay" in tty.getvalue() and "/10 [" in tty.getvalue()   # leave=False clears it at the end
    monkeypatch.setenv("RNNSTREAM_PROGRESS", "0")
    quiet = _Tty()
    with progress(total=3, stream=quiet) as bar:
        bar.update(3)
    assert quiet.getvalue() == ""
    monkeypatch.setenv("RNNSTREAM_PROGRESS", "1")
    forced = io.StringIO()
    with progress(total=3, desc="x", stream=forced) as bar:
        bar.update(3)
    assert "/3 [" in forced.getvalue()
