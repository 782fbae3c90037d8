"""The one place numba's compile options are chosen.

``error_model='numpy'`` lets float kernels vectorise (no ZeroDivisionError checks); ``nogil`` lets a
scoring thread and the trainer run at once; ``cache`` keeps compiled code on disk (NUMBA_CACHE_DIR) so a
second process starts scoring in seconds.
"""

from __future__ import annotations

import numba

_OPTIONS = dict(cache=True, nogil=True, error_model="numpy", fastmath=False)


def kernel(fn):
    """Decorate a top-level batch kernel (called from Python once per micro-batch)."""
    return numba.njit(**_OPTIONS)(fn)


def device(fn):
    """Decorate a helper called only from other kernels; inlined by LLVM where it pays."""
    return numba.njit(**_OPTIONS)(fn)
