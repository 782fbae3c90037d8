"""Prefetching is a hint: it must compile for every array shape the kernels use and change nothing."""

import numba
import numpy as np
import pytest

from rnnstream.kernels.prefetch import prefetch_row
from rnnstream.state.slots import dense_arrays


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


def test_the_prefetches_reach_the_compiled_code():
    """A prefetch that LLVM dropped, or that numba stopped emitting, would change no result: only the
    compiled IR shows it. With the intrinsics off (``RNNSTREAM_NUMBA_INTRINSICS=0``) there are none."""
    from rnnstream.config.model_params import ESNParams
    from rnnstream.kernels.jit import INTRINSICS
    from rnnstream.kernels.params import kernel_params
    from rnnstream.models.base import BatchOutput, common_fields
    from rnnstream.models.esn import ESN
    from rnnstream.models.esn.kernel import esn_step_batch

    a = np.zeros((20, 3))
    touch_all(a, np.arange(20))
    model = ESN(1, 6, ESNParams(size=16, sparsity=0.5))
    state = dense_arrays({**common_fields(1, 6, 8), **model.state_fields()}, 4)
    n = 12
    # a fresh, uncached compile of the real kernel: numba does not show the IR of code it loaded from disk
    options = {k: v for k, v in esn_step_batch.targetoptions.items() if k != "nopython"}
    fresh = numba.njit(**options)(esn_step_batch.py_func)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr("rnnstream.models.esn.model.esn_step_batch", fresh)
        model.step(state, np.arange(n) % 4, np.ones((n, 1)), 1.7e9 + np.arange(n, dtype=float),
                   kernel_params(), BatchOutput.allocate(n, 1))
    assert state["count"].sum() == n
    for dispatcher in (touch_all, fresh):
        for ir in dispatcher.inspect_llvm().values():
            assert ("call void @llvm.prefetch" in ir) == INTRINSICS, dispatcher.__name__
