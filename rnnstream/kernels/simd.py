"""Register-blocked float32 matrix-vector product for the step kernels, written as a numba intrinsic.

LLVM vectorises numba's ``acc[j] += w[k, j] * v[k]`` loops, but it must re-check at run time, every
pass, that ``acc`` does not overlap the weight rows, and it keeps ``acc`` in memory between passes:
at H=32 that was 1,900 instructions for the recurrent product, half of a GRU step. Here the product is
emitted as LLVM IR with ``<16 x float>`` accumulators held in registers over the whole row loop.

Guaranteed: ``acc[j]`` is computed exactly as the scalar loop ``s = b[j]; for k in range(n): s = s +
w_t[k, j] * v[k]`` computes it (a float32 multiply, then a float32 add, in row order; no fused
multiply-add, no reassociation), so the result does not depend on the vector width, on where a column
falls in the blocking, or on the CPU. Not guaranteed: anything when ``acc`` overlaps an input.

With ``RNNSTREAM_NUMBA_INTRINSICS=0`` (:mod:`.jit`) ``matvec_bias`` is that scalar loop in plain numba:
the same results bit for bit, slower.
"""

from __future__ import annotations

from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

from .jit import INTRINSICS, VECTOR_BITS, device

LANES = VECTOR_BITS // 32  # floats per vector: 16 (one AVX-512 register, two AVX2 registers), or 8
# vectors per pass over the rows: 3H = 96 columns is one pass of six (of 16) at H=32
BLOCKS = (6, 2, 1) if LANES == 16 else (12, 4, 2, 1)


def _c_float32(a, ndim: int) -> bool:
    return isinstance(a, types.Array) and a.ndim == ndim and a.dtype == types.float32 and a.layout == "C"


@intrinsic
def _matvec_bias_ir(typingctx, w_t, v, b, acc):
    """``acc[j] = b[j] + sum_k w_t[k, j] * v[k]`` for ``w_t`` (n, m), ``v`` (n,), ``b`` and ``acc`` (m,).

    All four are C-contiguous float32 arrays; the caller guarantees the shapes (nothing is checked at
    run time, as in any kernel here) and that ``acc`` shares no memory with the inputs.
    """
    if not (_c_float32(w_t, 2) and _c_float32(v, 1) and _c_float32(b, 1) and _c_float32(acc, 1)):
        return None

    def codegen(context, builder, signature, args):
        arrays = [context.make_array(ty)(context, builder, val) for ty, val in zip(signature.args, args)]
        _emit_matvec(builder, *arrays)
        return context.get_dummy_value()

    return types.void(w_t, v, b, acc), codegen


def _emit_matvec(builder: ir.IRBuilder, w_arr, v_arr, b_arr, acc_arr) -> None:
    i64 = ir.IntType(64)
    f32 = ir.FloatType()
    vec = ir.VectorType(f32, LANES)
    byte_ptr = ir.IntType(8).as_pointer()
    n = cgutils.unpack_tuple(builder, v_arr.shape)[0]
    m = cgutils.unpack_tuple(builder, acc_arr.shape)[0]
    row_bytes = cgutils.unpack_tuple(builder, w_arr.strides)[0]
    w, v, b, acc = (builder.bitcast(a.data, byte_ptr) for a in (w_arr, v_arr, b_arr, acc_arr))

    def const(x: int) -> ir.Constant:
        return ir.Constant(i64, x)

    def at(base, byte_offset, ty):
        return builder.bitcast(builder.gep(base, [byte_offset]), ty.as_pointer())

    def col_bytes(col):
        return builder.mul(col, const(4))

    def splat(x):
        one = builder.insert_element(ir.Constant(vec, ir.Undefined), x, ir.Constant(ir.IntType(32), 0))
        return builder.shuffle_vector(one, ir.Constant(vec, ir.Undefined),
                                      ir.Constant(ir.VectorType(ir.IntType(32), LANES), [0] * LANES))

    def emit_pass(col0, width: int, ty, load_row_value) -> None:
        """One pass over the rows for ``width`` consecutive accumulators of type ``ty`` from ``col0``."""
        cols = [builder.add(col0, const(c * (LANES if ty is vec else 1))) for c in range(width)]
        slots = [cgutils.alloca_once(builder, ty) for _ in range(width)]  # promoted to registers
        for col, slot in zip(cols, slots):
            builder.store(builder.load(at(b, col_bytes(col), ty), align=4), slot)
        with cgutils.for_range(builder, n) as rows:
            k = rows.index
            x = load_row_value(builder.load(at(v, builder.mul(k, const(4)), f32)))
            row = builder.mul(k, row_bytes)
            for col, slot in zip(cols, slots):
                wk = builder.load(at(w, builder.add(row, col_bytes(col)), ty), align=4)
                builder.store(builder.fadd(builder.load(slot), builder.fmul(wk, x)), slot)
        for col, slot in zip(cols, slots):
            builder.store(builder.load(slot), at(acc, col_bytes(col), ty), align=4)

    done = const(0)  # columns finished so far (a value: the loops' trip counts are run-time)
    for width in BLOCKS:
        step = width * LANES
        passes = builder.udiv(builder.sub(m, done), const(step))
        start = done
        with cgutils.for_range(builder, passes) as loop:
            emit_pass(builder.add(start, builder.mul(loop.index, const(step))), width, vec, splat)
        done = builder.add(start, builder.mul(passes, const(step)))
    start = done
    with cgutils.for_range(builder, builder.sub(m, start)) as loop:
        emit_pass(builder.add(start, loop.index), 1, f32, lambda x: x)


@device
def _matvec_bias_loop(w_t, v, b, acc):
    for j in range(acc.shape[0]):
        s = b[j]
        for k in range(v.shape[0]):
            s = s + w_t[k, j] * v[k]
        acc[j] = s


# ``matvec_bias(w_t, v, b, acc)``: ``acc[j] = b[j] + sum_k w_t[k, j] * v[k]`` (see _matvec_bias_ir).
matvec_bias = _matvec_bias_ir if INTRINSICS else _matvec_bias_loop
