"""Software prefetch for the step kernels: ask for an entity's state rows before its event comes up.

Events of random entities miss the cache in every per-slot array they touch (about ten lines an
event). Reading those rows early, as plain loads, stalls the core once the loads fill its reorder
window; a prefetch instruction (``llvm.prefetch``) does not hold the core up, so the lines of events
several places ahead can be in flight at once. A prefetch has no effect on results: it only hints.
With ``RNNSTREAM_NUMBA_INTRINSICS=0`` (:mod:`.jit`) ``prefetch_row`` does nothing.
"""

from __future__ import annotations

from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

from .jit import INTRINSICS, device

LINE = 64  # bytes per cache line


@intrinsic
def _prefetch_row_ir(typingctx, a, i):
    """Prefetch every cache line of ``a[i]`` (the ``i``-th entry along axis 0 of a C-contiguous array).

    ``i`` is not bounds-checked; a prefetch of an invalid address is harmless (it is dropped).
    """
    if not (isinstance(a, types.Array) and a.layout == "C" and isinstance(i, types.Integer)):
        return None

    def codegen(context, builder, signature, args):
        arr = context.make_array(signature.args[0])(context, builder, args[0])
        i64 = ir.IntType(64)
        index = context.cast(builder, args[1], signature.args[1], types.int64)
        shape = cgutils.unpack_tuple(builder, arr.shape)
        row_bytes = ir.Constant(i64, context.get_abi_sizeof(context.get_data_type(signature.args[0].dtype)))
        for extent in shape[1:]:
            row_bytes = builder.mul(row_bytes, extent)
        byte_ptr = ir.IntType(8).as_pointer()
        start = builder.gep(builder.bitcast(arr.data, byte_ptr), [builder.mul(index, row_bytes)])
        fn = cgutils.get_or_insert_function(
            builder.module, ir.FunctionType(ir.VoidType(), [byte_ptr, ir.IntType(32), ir.IntType(32), ir.IntType(32)]),
            "llvm.prefetch.p0")
        read, keep, data = ir.Constant(ir.IntType(32), 0), ir.Constant(ir.IntType(32), 3), ir.Constant(ir.IntType(32), 1)
        # the lines from the one holding the first byte to the one holding the last
        start_at = builder.ptrtoint(start, i64)
        first = builder.and_(start_at, ir.Constant(i64, -LINE))
        last = builder.and_(builder.add(start_at, builder.sub(row_bytes, ir.Constant(i64, 1))), ir.Constant(i64, -LINE))
        lines = builder.add(builder.udiv(builder.sub(last, first), ir.Constant(i64, LINE)), ir.Constant(i64, 1))
        with cgutils.for_range(builder, lines) as loop:
            line_at = builder.add(first, builder.mul(loop.index, ir.Constant(i64, LINE)))
            builder.call(fn, [builder.inttoptr(line_at, byte_ptr), read, keep, data])
        return context.get_dummy_value()

    return types.void(a, i), codegen


@device
def _prefetch_row_none(a, i):
    pass


# ``prefetch_row(a, i)``: prefetch the cache lines of ``a[i]`` (see _prefetch_row_ir).
prefetch_row = _prefetch_row_ir if INTRINSICS else _prefetch_row_none

AHEAD = 4  # prefetch distance in events (2 to 8 measured alike; 10k and 1M entities)


@device
def prefetch_common(i, slots, count, last_ts, nmean, nvar, pred, sc, pool_row, ring_in, ring_t, ring_flag):
    """Prefetch the shared per-slot rows (``models.base.common_fields``) of the events ahead of ``i``.

    The rows an event reads, for event ``i + 2 AHEAD``; the history ring row it will write, for event
    ``i + AHEAD``, once that entity's event count has had time to arrive. A model kernel prefetches
    its own state rows at ``i + 2 AHEAD`` as well.
    """
    n = slots.shape[0]
    if i + 2 * AHEAD < n:
        s = slots[i + 2 * AHEAD]
        prefetch_row(count, s)
        prefetch_row(last_ts, s)
        prefetch_row(nmean, s)
        prefetch_row(nvar, s)
        prefetch_row(pred, s)
        prefetch_row(sc, s)
        prefetch_row(pool_row, s)
    if i + AHEAD < n:
        s = slots[i + AHEAD]
        r = pool_row[s] - 1
        if r >= 0:
            prefetch_row(ring_flag, r)
            prefetch_row(ring_in[r], count[s] % ring_in.shape[1])
            prefetch_row(ring_t[r], count[s] % ring_t.shape[1])
