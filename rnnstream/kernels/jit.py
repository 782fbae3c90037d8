"""The one place numba's compile options and on-disk cache are chosen.

``error_model='numpy'`` lets float kernels vectorise (no ZeroDivisionError checks); ``nogil`` lets a
scoring thread and the trainer run at once; ``cache`` keeps compiled code on disk so that a second
process starts scoring in seconds. Helpers are always inlined into their kernel (``forceinline``): a
call that LLVM leaves out of line passes every array argument as seven scalars on the stack, which
cost a third of a GRU step (0.68 -> 0.47 us, ``benchmarks/bench_gru_step.py --no-time-features``).

numba keys a cached kernel on its own source file only, not on the helpers it calls from other
modules, so an edited helper would be served stale from the cache. The cache therefore lives in a
directory named after a hash of every kernel source: ``$NUMBA_CACHE_DIR`` (or
``~/.cache/rnnstream/numba``) ``/<hash>``.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numba
from numba.core import config as numba_config

_OPTIONS = dict(cache=True, nogil=True, error_model="numpy", fastmath=False)
_PACKAGE = Path(__file__).resolve().parent.parent


def _source_hash() -> str:
    digest = hashlib.sha256()
    for sub in ("kernels", "models"):
        for path in sorted((_PACKAGE / sub).rglob("*.py")):
            digest.update(str(path.relative_to(_PACKAGE)).encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def cache_dir() -> Path:
    base = os.environ.get("NUMBA_CACHE_DIR") or str(Path.home() / ".cache" / "rnnstream" / "numba")
    return Path(base) / _source_hash()


numba_config.CACHE_DIR = str(cache_dir())


def kernel(fn):
    """Decorate a top-level batch kernel (called from Python once per micro-batch).

    Compiled without numba's reference counting: a step kernel allocates nothing, and the counting
    cost an atomic increment and decrement for every array row it views (30 a GRU event).
    """
    return numba.njit(_nrt=False, **_OPTIONS)(fn)


def trainer(fn):
    """Decorate a kernel that allocates its own arrays (training), with reference counting on."""
    return numba.njit(**_OPTIONS)(fn)


def device(fn):
    """Decorate a helper called only from other kernels (inlined into each caller; no allocation)."""
    return numba.njit(forceinline=True, _nrt=False, **_OPTIONS)(fn)
