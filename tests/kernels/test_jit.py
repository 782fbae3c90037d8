"""The numba seam: the plain-numba fallbacks give the intrinsics' results bit for bit; the cache is
chosen at start-up, not at import."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path
from types import SimpleNamespace

import numba
import numpy as np

import pytest

from rnnstream.kernels.jit import INTRINSICS, INTRINSICS_ENV, VECTOR_BITS, VECTOR_BITS_ENV
from rnnstream.state.slots import dense_arrays

HERE = Path(__file__).resolve().parent


def compute() -> dict[str, np.ndarray]:
    """Every function behind the seam, and both step kernels, on fixed inputs."""
    from rnnstream.config.model_params import ESNParams
    from rnnstream.kernels import jit
    from rnnstream.kernels.lanes import csr_lanes, dense_lanes
    from rnnstream.kernels.params import kernel_params
    from rnnstream.kernels.simd import matvec_bias
    from rnnstream.models.base import BatchOutput, common_fields
    from rnnstream.models.esn import ESN
    from rnnstream.models.gru import GRUModel
    from rnnstream.models.lstm import LSTMModel

    @numba.njit(cache=False)
    def products(w_t, v, b, ptr, col, val, z, w, acc1, acc2, acc3):
        matvec_bias(w_t, v, b, acc1)
        csr_lanes(ptr, col, val, b[:acc2.shape[0]], z, acc2)
        dense_lanes(w, b[:acc3.shape[0]], z, acc3)

    rng = np.random.default_rng(0)
    f32 = np.float32
    out: dict[str, np.ndarray] = {"setting": np.array([jit.INTRINSICS, jit.VECTOR_BITS])}
    w_t, v, b = (rng.normal(size=(33, 100)).astype(f32), rng.normal(size=33).astype(f32),
                 rng.normal(size=100).astype(f32))
    ptr = np.array([0, 3, 3, 7], dtype=np.int64)
    col = np.array([4, 0, 2, 1, 2, 3, 4], dtype=np.int32)
    val = rng.normal(size=7).astype(f32)
    lanes = 32  # a multiple of the vector width at either setting
    z = rng.normal(size=(5, lanes)).astype(f32)
    w = rng.normal(size=(2, 6)).astype(f32)
    out["matvec"], out["csr"], out["dense"] = (np.empty(100, f32), np.empty((3, lanes), f32),
                                               np.empty((2, lanes), f32))
    products(w_t, v, b, ptr, col, val, z, w, out["matvec"], out["csr"], out["dense"])
    kp = kernel_params()
    for name, model in (("gru", GRUModel(1, 6, SimpleNamespace(hidden=32, seed=0))),
                        ("gru2", GRUModel(1, 6, SimpleNamespace(hidden=32, layers=2, seed=0))),
                        ("lstm2", LSTMModel(1, 6, SimpleNamespace(hidden=32, layers=2, seed=0))),
                        ("esn", ESN(1, 6, ESNParams(size=40, seed=0)))):
        state = dense_arrays({**common_fields(1, 6, 8), **model.state_fields()}, 30)
        n = 600
        slots = rng.integers(0, 30, n)
        x = rng.normal(size=(n, 1)) + 3.0
        ts = 1.7e9 + np.arange(n) * 30.0
        batch = BatchOutput.allocate(n, 1)
        model.step(state, slots, x, ts, kp, batch)
        out[f"{name}_pred"], out[f"{name}_score"] = batch.pred, batch.score
        out[f"{name}_state"] = state["r" if name == "esn" else "h"]
        if "c" in state:
            out[f"{name}_cell"] = state["c"]
    return out


@pytest.mark.parametrize("setting", [{INTRINSICS_ENV: "0"}, {VECTOR_BITS_ENV: "256"}])
def test_fallbacks_and_vector_widths_match_the_default_bit_for_bit(tmp_path, setting):
    """The choice is made at import, so the other side runs in its own process."""
    assert INTRINSICS and VECTOR_BITS == 512, "run the test suite with the default settings"
    script = textwrap.dedent(f"""
        import sys, numpy as np
        sys.path.insert(0, {str(HERE)!r})
        from rnnstream.kernels.jit import configure_cache
        configure_cache()
        from test_jit import compute
        np.savez({str(tmp_path / "plain.npz")!r}, **compute())
    """)
    env = dict(os.environ, **setting)
    subprocess.run([sys.executable, "-c", script], env=env, check=True, timeout=600)
    plain = np.load(tmp_path / "plain.npz")
    mine = compute()
    expected = [0 if setting.get(INTRINSICS_ENV) == "0" else 1, int(setting.get(VECTOR_BITS_ENV, 512))]
    assert list(mine["setting"]) == [1, 512] and list(plain["setting"]) == expected
    assert set(plain.files) == set(mine)
    for key in set(mine) - {"setting"}:
        np.testing.assert_array_equal(plain[key], mine[key], err_msg=key)
    assert all(np.any(mine[f"{m}_state"] != 0) for m in ("esn", "gru", "gru2", "lstm2"))


@pytest.mark.parametrize("name", [INTRINSICS_ENV, VECTOR_BITS_ENV])
def test_a_bad_seam_setting_is_refused(name):
    result = subprocess.run([sys.executable, "-c", "import rnnstream.kernels.jit"], capture_output=True,
                            text=True, env=dict(os.environ, **{name: "maybe"}), timeout=120)
    assert result.returncode != 0 and f"{name}='maybe'" in result.stderr


def test_the_cache_is_chosen_by_configure_cache_not_by_import(tmp_path):
    (tmp_path / "mod.py").write_text(textwrap.dedent("""
        from rnnstream.kernels.jit import kernel

        @kernel
        def add(a, b):
            return a + b
    """))
    script = textwrap.dedent(f"""
        import sys
        sys.path.insert(0, {str(tmp_path)!r})
        from numba.core import config
        import mod
        from rnnstream.kernels import jit
        before = config.CACHE_DIR
        assert jit.configured_cache() is None
        mod.add(1, 2)                                  # compiled before: kept in memory only
        path = jit.configure_cache({str(tmp_path / "base")!r})
        mod.add(1.0, 2.0)                              # compiled after: written to the cache
        assert config.CACHE_DIR == before, "numba's global setting must be left alone"
        print(path)
    """)
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_CACHE_DIR"}
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env,
                          check=True, timeout=300)
    path = Path(done.stdout.strip())
    assert path.parent == tmp_path / "base"
    index = list(path.rglob("mod.add-*.nbi"))
    data = list(path.rglob("mod.add-*.nbc"))
    assert len(index) == 1 and len(data) == 1, sorted(p.name for p in path.rglob("*"))
    assert not list(tmp_path.glob("__pycache__/*.nb*")), "nothing cached next to the source"
