"""Prefetching is a hint: it must compile for every array shape the kernels use and change nothing."""

import numba
import numpy as np

from rnnstream.kernels.prefetch import prefetch_row


@numba.njit(cache=False)
def touch_all(a, order):
    for i in order:
        prefetch_row(a, i)


def test_prefetch_rows_of_each_rank_leaves_arrays_unchanged():
    rng = np.random.default_rng(0)
    for a in (rng.normal(size=1000), rng.integers(0, 9, size=(50, 3)).astype(np.uint8),
              rng.normal(size=(40, 64, 6)).astype(np.float32), rng.normal(size=(7, 1))):
        before = a.copy()
        touch_all(a, np.arange(a.shape[0]))
        touch_all(a, np.array([a.shape[0] + 10**6]))  # far out of range: dropped, never faults
        np.testing.assert_array_equal(a, before)
