"""The lane-block products against a plain float32 loop (bit for bit), numpy, and lane independence."""

import numba
import numpy as np
import pytest

from rnnstream.kernels.lanes import LANES, _dense_lanes_ir, csr_lanes, csr_lanes_reference, dense_lanes


@numba.njit(cache=False)
def csr(ptr, col, val, b, z, acc):
    csr_lanes(ptr, col, val, b, z, acc)


@numba.njit(cache=False)
def dense(w, b, z, acc):
    dense_lanes(w, b, z, acc)


def random_csr(rng, m, n, density):
    mask = rng.random((m, n)) < density
    mask[0] = False                                    # an empty row: acc = b
    w = np.where(mask, rng.normal(size=(m, n)), 0.0).astype(np.float32)
    ptr = np.concatenate([[0], np.cumsum(mask.sum(axis=1))]).astype(np.int64)
    col = np.concatenate([rng.permutation(np.flatnonzero(r)) for r in mask]).astype(np.int32)  # any order
    val = w[np.repeat(np.arange(m), np.diff(ptr)), col]
    return w, ptr, col, val


@pytest.mark.parametrize("m, n, lanes, density", [(40, 46, LANES, 0.1), (7, 30, 2 * LANES, 0.5),
                                                  (13, 5, 3 * LANES, 1.0), (200, 206, LANES, 0.1)])
def test_csr_matches_the_ordered_float32_loop_exactly_and_numpy_closely(m, n, lanes, density):
    rng = np.random.default_rng(m + n + lanes)
    w, ptr, col, val = random_csr(rng, m, n, density)
    b = rng.normal(size=m).astype(np.float32)
    z = rng.normal(size=(n, lanes)).astype(np.float32)
    acc = np.full((m, lanes), np.nan, dtype=np.float32)
    csr(ptr, col, val, b, z, acc)
    np.testing.assert_array_equal(acc, csr_lanes_reference(ptr, col, val, b, z))
    np.testing.assert_allclose(acc, b[:, None] + w.astype(np.float64) @ z, rtol=1e-4, atol=1e-5)


def test_csr_sums_in_storage_order():
    """Terms that cancel only in one order: 1e8 + 1 - 1e8 is 0 in float32, 1e8 - 1e8 + 1 is 1."""
    ptr = np.array([0, 3, 6], dtype=np.int64)
    col = np.array([0, 1, 2, 0, 2, 1], dtype=np.int32)
    val = np.ones(6, dtype=np.float32)
    z = np.zeros((3, LANES), dtype=np.float32)
    z[:, 0] = [1e8, 1.0, -1e8]
    acc = np.empty((2, LANES), dtype=np.float32)
    csr(ptr, col, val, np.zeros(2, dtype=np.float32), z, acc)
    assert acc[0, 0] == 0.0 and acc[1, 0] == 1.0


@pytest.mark.parametrize("lanes", [LANES, 2 * LANES, 3 * LANES])
def test_dense_uses_the_first_n_columns_in_order(lanes):
    rng = np.random.default_rng(lanes)
    w = rng.normal(size=(3, 21)).astype(np.float32)       # one column more than z has rows
    b = rng.normal(size=3).astype(np.float32)
    z = rng.normal(size=(20, lanes)).astype(np.float32)
    acc = np.empty((3, lanes), dtype=np.float32)
    dense(w, b, z, acc)
    ptr = np.arange(0, 61, 20, dtype=np.int64)
    col = np.tile(np.arange(20, dtype=np.int32), 3)
    np.testing.assert_array_equal(acc, csr_lanes_reference(ptr, col, w[:, :20].ravel(), b, z))


def test_a_lane_depends_on_its_own_column_only():
    rng = np.random.default_rng(5)
    _, ptr, col, val = random_csr(rng, 30, 30, 0.3)
    b = rng.normal(size=30).astype(np.float32)
    z = rng.normal(size=(30, 2 * LANES)).astype(np.float32)
    acc = np.empty((30, 2 * LANES), dtype=np.float32)
    csr(ptr, col, val, b, z, acc)
    z2 = rng.normal(size=(30, LANES)).astype(np.float32)
    z2[:, 7] = z[:, LANES + 3]                          # same vector, other lane, other block width
    acc2 = np.empty((30, LANES), dtype=np.float32)
    csr(ptr, col, val, b, z2, acc2)
    np.testing.assert_array_equal(acc2[:, 7], acc[:, LANES + 3])


def test_the_intrinsic_refuses_other_dtypes_at_compile_time():
    @numba.njit(cache=False)
    def dense_ir(w, b, z, acc):
        _dense_lanes_ir(w, b, z, acc)

    with pytest.raises(numba.core.errors.TypingError):
        dense_ir(np.zeros((2, 3)), np.zeros(2), np.zeros((3, LANES)), np.zeros((2, LANES)))
