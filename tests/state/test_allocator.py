"""state.allocator: with the fixed mmap threshold, a freed large block goes back to the system even
after a larger one was freed before it (glibc would otherwise serve it from its heap and keep it)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

PROBE = r"""
import os, sys
import numpy as np
from rnnstream.state.allocator import configure_allocator

def rss():
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")

if sys.argv[1] == "fixed":
    assert configure_allocator()
big = np.ones(8 << 20, dtype=np.uint8)     # 8 MiB, mapped; freeing it raises glibc's dynamic threshold
del big
before = rss()
blocks = [np.ones(2 << 20, dtype=np.uint8) for _ in range(9)]   # 2 MiB blocks
keep = blocks.pop()                        # the last one stays: on the heap, nothing below it is trimmed
del blocks                                 # 16 MiB freed
print((rss() - before - keep.nbytes) >> 20)
"""


@pytest.mark.skipif(not sys.platform.startswith("linux") or "MALLOC_MMAP_THRESHOLD_" in os.environ,
                    reason="glibc's allocator on Linux")
def test_freed_large_blocks_leave_the_process_with_the_fixed_threshold():
    def grown(mode: str) -> int:
        out = subprocess.run([sys.executable, "-c", PROBE, mode], capture_output=True, text=True, check=True)
        return int(out.stdout.strip())

    try:
        import ctypes
        ctypes.CDLL(None).gnu_get_libc_version
    except AttributeError:
        pytest.skip("not glibc")
    assert grown("dynamic") >= 12      # glibc's default: the 2 MiB blocks were heap, still resident
    assert grown("fixed") <= 2
