"""The register-blocked matrix-vector product against a scalar float32 loop (bit for bit) and numpy."""

import numpy as np
import numba
import pytest

from rnnstream.kernels.simd import LANES, _matvec_bias_ir, matvec_bias


@numba.njit(cache=False)
def product(w_t, v, b, acc):
    matvec_bias(w_t, v, b, acc)


def scalar_float32(w_t, v, b):
    """The documented order: ``s = b[j]``, then ``s = s + w_t[k, j] * v[k]`` for k = 0, 1, ... in float32."""
    out = b.copy()
    for k in range(w_t.shape[0]):
        out = (out + w_t[k] * v[k]).astype(np.float32)
    return out


# Column counts that exercise every block width (6, 2 and 1 vectors) and the scalar tail.
@pytest.mark.parametrize("n, m", [(32, 96), (1, 96), (6, 96), (32, 192), (33, 100), (16, 48), (5, 7),
                                  (0, 20), (3, 6 * LANES + 2 * LANES + LANES + 5)])
def test_matches_scalar_loop_exactly_and_numpy_closely(n, m):
    rng = np.random.default_rng(n * 1000 + m)
    w_t = rng.normal(size=(n, m)).astype(np.float32)
    v = rng.normal(size=n).astype(np.float32)
    b = rng.normal(size=m).astype(np.float32)
    acc = np.full(m, np.nan, dtype=np.float32)
    product(w_t, v, b, acc)
    np.testing.assert_array_equal(acc, scalar_float32(w_t, v, b))
    np.testing.assert_allclose(acc, b.astype(np.float64) + w_t.T.astype(np.float64) @ v, rtol=1e-5, atol=1e-5)


def test_row_view_inputs_and_outputs():
    """Rows of 2-D arrays (as the kernels pass ``h[s]`` and ``gates[0]``) are read and written in place."""
    rng = np.random.default_rng(3)
    w_t = rng.normal(size=(8, 40)).astype(np.float32)
    h = rng.normal(size=(5, 8)).astype(np.float32)
    b = rng.normal(size=40).astype(np.float32)
    gates = np.zeros((2, 40), dtype=np.float32)

    @numba.njit(cache=False)
    def rows(w_t, h, b, gates):
        matvec_bias(w_t, h[3], b, gates[1])

    rows(w_t, h, b, gates)
    np.testing.assert_array_equal(gates[1], scalar_float32(w_t, h[3], b))
    assert not gates[0].any()


def test_the_intrinsic_refuses_other_dtypes_at_compile_time():
    @numba.njit(cache=False)
    def product_ir(w_t, v, b, acc):
        _matvec_bias_ir(w_t, v, b, acc)

    with pytest.raises(numba.core.errors.TypingError):
        product_ir(np.zeros((2, 3)), np.zeros(2), np.zeros(3), np.zeros(3))
