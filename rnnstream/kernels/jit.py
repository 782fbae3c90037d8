"""The one place numba's compile options, the numba seam and the on-disk cache are chosen.

``error_model='numpy'`` lets float kernels vectorise (no ZeroDivisionError checks); ``nogil`` lets a
scoring thread and the trainer run at once; ``cache`` keeps compiled code on disk so that a second
process starts scoring in seconds. Helpers are always inlined into their kernel (``forceinline``): a
call that LLVM leaves out of line passes every array argument as seven scalars on the stack, which
cost a third of a GRU step (0.68 -> 0.47 us, ``benchmarks/bench_gru_step.py --no-time-features``).

The numba seam: the kernels use numba internals in four places, the LLVM intrinsics of
:mod:`.simd`, :mod:`.lanes` and :mod:`.prefetch`, ``_nrt=False`` (no reference counting in a step
kernel) and ``to_fixed_tuple`` (:data:`fixed_tuple`). ``RNNSTREAM_NUMBA_INTRINSICS=0`` in the environment,
read once at import, replaces all of them with plain numba (the same arithmetic bit for bit, see each module; prefetching becomes a no-op),
for a numba release on which an intrinsic no longer compiles. The tested numba range is bounded in
``pyproject.toml``. ``RNNSTREAM_VECTOR_BITS=256`` makes the intrinsics use 8-float vectors instead of
16 (for CPUs that lower their clock for 512-bit instructions); results are the same bit for bit.

The on-disk cache is not set up by importing this module: :func:`configure_cache` (called by the
command line at start-up, before any kernel runs) enables it for every kernel. Until then kernels
compile in memory only. numba keys a cached kernel on its own source file only, not on the helpers it
calls from other modules, so an edited helper would be served stale from the cache; the cache
therefore lives in a directory named after a hash of every kernel source and of the seam setting:
``$NUMBA_CACHE_DIR`` (or ``~/.cache/rnnstream/numba``) ``/<hash>``.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numba
from numba.core import config as numba_config

INTRINSICS_ENV = "RNNSTREAM_NUMBA_INTRINSICS"


def _intrinsics_enabled() -> bool:
    value = os.environ.get(INTRINSICS_ENV, "1").strip().lower()
    if value in ("1", "true", "yes", "on", ""):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"{INTRINSICS_ENV}={value!r}: expected 1 (LLVM intrinsics, the default) or 0 (plain numba)")


INTRINSICS = _intrinsics_enabled()
VECTOR_BITS_ENV = "RNNSTREAM_VECTOR_BITS"


def _vector_bits() -> int:
    value = os.environ.get(VECTOR_BITS_ENV, "512").strip() or "512"
    if value not in ("256", "512"):
        raise ValueError(f"{VECTOR_BITS_ENV}={value!r}: expected 512 (the default) or 256")
    return int(value)


VECTOR_BITS = _vector_bits()
_OPTIONS = dict(nogil=True, error_model="numpy", fastmath=False)
_NO_REFCOUNT = dict(_nrt=False) if INTRINSICS else {}
_PACKAGE = Path(__file__).resolve().parent.parent
_DISPATCHERS: list = []          # every function decorated here, to point at the cache once it is chosen
_cache_path: Path | None = None


def _source_hash() -> str:
    digest = hashlib.sha256()
    for sub in ("kernels", "models"):
        for path in sorted((_PACKAGE / sub).rglob("*.py")):
            digest.update(str(path.relative_to(_PACKAGE)).encode())
            digest.update(path.read_bytes())
    digest.update(f"intrinsics={INTRINSICS} vector_bits={VECTOR_BITS}".encode())
    return digest.hexdigest()[:16]


def cache_dir(base: str | os.PathLike | None = None) -> Path:
    """The cache directory for ``base`` (default ``$NUMBA_CACHE_DIR``, else ``~/.cache/rnnstream/numba``)."""
    base = base or os.environ.get("NUMBA_CACHE_DIR") or str(Path.home() / ".cache" / "rnnstream" / "numba")
    return Path(base) / _source_hash()


def _enable_cache(dispatcher) -> None:
    saved = numba_config.CACHE_DIR
    numba_config.CACHE_DIR = str(_cache_path)  # numba's cache locator reads it when the cache is made
    try:
        dispatcher.enable_caching()
    finally:
        numba_config.CACHE_DIR = saved


def configure_cache(base: str | os.PathLike | None = None) -> Path:
    """Keep every kernel's compiled code in ``cache_dir(base)`` from now on; returns the directory.

    Kernels compiled before the call stay in memory only (they are not recompiled). Calling it again
    moves the cache. numba's own global setting is left as it was.
    """
    global _cache_path
    _cache_path = cache_dir(base)
    for dispatcher in _DISPATCHERS:
        _enable_cache(dispatcher)
    return _cache_path


def configured_cache() -> Path | None:
    """The directory set by :func:`configure_cache`, or None (kernels are not cached on disk)."""
    return _cache_path


def _jit(fn, **options):
    dispatcher = numba.njit(**_OPTIONS, **options)(fn)
    _DISPATCHERS.append(dispatcher)
    if _cache_path is not None:
        _enable_cache(dispatcher)
    return dispatcher


def kernel(fn):
    """Decorate a top-level batch kernel (called from Python once per micro-batch).

    Compiled without numba's reference counting (unless ``RNNSTREAM_NUMBA_INTRINSICS=0``): a step
    kernel allocates nothing, and the counting cost an atomic increment and decrement for every array
    row it views (30 a GRU event).
    """
    return _jit(fn, **_NO_REFCOUNT)


def trainer(fn):
    """Decorate a kernel that allocates its own arrays (training), with reference counting on."""
    return _jit(fn)


def device(fn):
    """Decorate a helper called only from other kernels (inlined into each caller; no allocation)."""
    return _jit(fn, forceinline=True, **_NO_REFCOUNT)


def _fixed_tuple_loop(a, n):
    return a


if INTRINSICS:
    from numba.np.unsafe.ndarray import to_fixed_tuple as _to_fixed_tuple

# ``fixed_tuple(a, n)``: the first ``n`` (a compile-time constant) values of the 1-D array ``a`` as a
# tuple, for a batch kernel to hand its parameter vector to the per-event helpers. Read from an array,
# every parameter is loaded again at each event (the kernel writes to other float64 arrays, which LLVM
# cannot tell apart from it) and so is every quantity derived from it (``1 / long_window``, ...); held
# in a tuple they are values, computed once per batch. ``RNNSTREAM_NUMBA_INTRINSICS=0``: the array itself
# (numba's ``to_fixed_tuple`` is one of its internals).
fixed_tuple = _to_fixed_tuple if INTRINSICS else device(_fixed_tuple_loop)
