"""systemd's sd_notify protocol: one datagram of ``KEY=value`` lines to the socket in $NOTIFY_SOCKET.

The unit in deploy/systemd is ``Type=notify`` with ``WatchdogSec``: send ``ready()`` once state is
restored and partitions are assigned, ``watchdog()`` at least every ``watchdog_interval()`` seconds
from the processing loop (so a stuck loop gets the process restarted), ``stopping()`` at shutdown.

Without $NOTIFY_SOCKET (not under systemd) every call is a no-op returning False. A send error is
logged once and returns False: notification must never stop the daemon.
"""

from __future__ import annotations

import logging
import os
import socket

log = logging.getLogger(__name__)
_warned = False


def _address(env: dict[str, str] | os._Environ) -> str | None:
    path = env.get("NOTIFY_SOCKET")
    if not path:
        return None
    if path.startswith("@"):          # abstract namespace socket
        return "\0" + path[1:]
    return path


def sd_notify(*states: str, env: dict[str, str] | None = None) -> bool:
    """Send ``states`` (e.g. ``"READY=1"``, ``"STATUS=consuming"``) as one datagram. True if sent."""
    global _warned
    address = _address(os.environ if env is None else env)
    if address is None or not states:
        return False
    payload = "\n".join(states).encode()
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.connect(address)
            sock.sendall(payload)
    except OSError as exc:
        if not _warned:
            log.warning("sd_notify failed", extra={"socket": address.replace("\0", "@"), "error": str(exc)})
            _warned = True
        return False
    return True


def ready(status: str | None = None) -> bool:
    return sd_notify("READY=1", *([f"STATUS={status}"] if status else []))


def watchdog() -> bool:
    return sd_notify("WATCHDOG=1")


def stopping(status: str | None = None) -> bool:
    return sd_notify("STOPPING=1", *([f"STATUS={status}"] if status else []))


def status(text: str) -> bool:
    return sd_notify(f"STATUS={text}")


def watchdog_interval(env: dict[str, str] | None = None) -> float | None:
    """Seconds between ``watchdog()`` calls: half of $WATCHDOG_USEC, or None when no watchdog is asked
    for this process ($WATCHDOG_PID, when set, must be our pid)."""
    env = os.environ if env is None else env
    usec, pid = env.get("WATCHDOG_USEC"), env.get("WATCHDOG_PID")
    if not usec:
        return None
    if pid and pid != str(os.getpid()):
        return None
    try:
        value = int(usec)
    except ValueError:
        return None
    return value / 2e6 if value > 0 else None
