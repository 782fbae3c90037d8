"""The C allocator's policy for large blocks, set once per process that keeps per-entity state.

glibc's ``malloc`` serves a block of at least ``M_MMAP_THRESHOLD`` bytes (128 KiB at start) with its
own ``mmap``, returned to the system when freed. It raises that threshold, up to 32 MiB, each time
such a block is freed, so after the slot arrays have grown a few times (each growth frees the smaller
arrays) blocks of a few MiB, the next arrays and every batch's temporaries, come from the heap, where
freed space stays resident: about 40 bytes an entity at a million entities
(``benchmarks/bench_memory.py``). A fixed threshold (256 KiB) keeps such blocks out of the heap.

Guaranteed: nothing but memory use changes (the allocator's placement of blocks, not their
contents). Not guaranteed: any effect where the C library is not glibc (the call is skipped), or when
``MALLOC_MMAP_THRESHOLD_`` is set in the environment (the operator's choice is left alone).
"""

from __future__ import annotations

import ctypes
import os

M_MMAP_THRESHOLD = -3        # glibc's mallopt parameter number
MMAP_THRESHOLD = 1 << 18     # blocks of 256 KiB and more are mapped on their own
_done = False


def configure_allocator() -> bool:
    """Fix glibc's mmap threshold at ``MMAP_THRESHOLD`` (once per process). Returns whether it is set."""
    global _done
    if _done:
        return True
    if "MALLOC_MMAP_THRESHOLD_" in os.environ:
        return False
    try:
        libc = ctypes.CDLL(None)
        libc.gnu_get_libc_version   # glibc only: other C libraries' mallopt numbers differ
        mallopt = libc.mallopt
    except (AttributeError, OSError):
        return False
    _done = bool(mallopt(ctypes.c_int(M_MMAP_THRESHOLD), ctypes.c_int(MMAP_THRESHOLD)))
    return _done
