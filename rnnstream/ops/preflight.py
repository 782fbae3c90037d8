"""Checks of the machine a daemon is about to run on, made before it joins the consumer group.

* ``state_dir_problem``: the state directory exists and is a writable directory, or can be created;
* ``port_problem``: the metrics port can be bound (nothing else listens there);
* ``StateLock``: the daemon holds a shared ``flock`` on ``<state_dir>/.rnnstream.lock`` while it runs
  (replicas sharing a state_dir each hold one); ``rnnstream state reset`` takes it exclusively, so it
  refuses while any daemon on the same file system holds it.

Not guaranteed: locks across hosts on a network file system without working ``flock`` (NFS with
``nolock``); a port check races with any other process binding it later.
"""

from __future__ import annotations

import errno
import fcntl
import os
import socket
from pathlib import Path

from ..errors import RnnstreamError

LOCK_NAME = ".rnnstream.lock"


def state_dir_problem(state_dir: str | os.PathLike) -> str | None:
    """Why the daemon could not keep its state in ``state_dir``, or None when it can."""
    path = Path(state_dir)
    if path.exists():
        if not path.is_dir():
            return f"state_dir {path} exists but is not a directory"
        if not os.access(path, os.W_OK | os.X_OK):
            return f"state_dir {path} is not writable by this user (uid {os.getuid()})"
        return None
    parent = path.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir():
        return f"state_dir {path} cannot be created: {parent} is not a directory"
    if not os.access(parent, os.W_OK | os.X_OK):
        return f"state_dir {path} does not exist and {parent} is not writable by this user (uid {os.getuid()})"
    return None


def port_problem(host: str, port: int) -> str | None:
    """Why ``host:port`` cannot be bound for the metrics server, or None when it can (port 0: always)."""
    if port == 0:
        return None
    try:
        infos = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        return f"metrics.host {host!r} does not resolve ({exc.strerror})"
    family, _, _, _, addr = infos[0]
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)   # as http.server does
        try:
            sock.bind(addr)
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                return (f"metrics port {port} on {host} is already in use (another rnnstream daemon? "
                        f"`ss -ltnp 'sport = :{port}'` shows which process)")
            return f"metrics port {port} on {host} cannot be bound: {exc.strerror or exc}"
    return None


class StateLock:
    """A ``flock`` on ``<state_dir>/.rnnstream.lock``: shared for daemons, exclusive for a reset."""

    def __init__(self, state_dir: str | os.PathLike):
        self.path = Path(state_dir) / LOCK_NAME
        self._fd: int | None = None

    def acquire(self, exclusive: bool = False) -> bool:
        """Take the lock without waiting; False when a conflicting holder has it."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, (fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH) | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        self._fd = fd
        return True

    def release(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)   # closing releases the flock

    @property
    def held(self) -> bool:
        return self._fd is not None


def lock_state_dir(state_dir: str | os.PathLike) -> StateLock:
    """The daemon's shared lock on ``state_dir`` (RnnstreamError if a reset holds it right now)."""
    lock = StateLock(state_dir)
    if not lock.acquire(exclusive=False):
        raise RnnstreamError(f"state_dir {state_dir} is locked by a running `rnnstream state reset`; retry after it")
    return lock


def preflight_problems(cfg) -> list[str]:
    """What would make ``rnnstream run`` fail before it joins the group: state_dir, then the port."""
    return [p for p in (state_dir_problem(cfg.state_dir), port_problem(cfg.metrics.host, cfg.metrics.port)) if p]
