"""Matrix products over a block of independent vectors held as lanes: ``acc[j, e] = b[j] + sum w[j, c] z[c, e]``.

The ESN advances the reservoirs of up to ``L`` different entities at once: column ``e`` of ``z`` (n, L)
is one entity's input vector, and every term of the product is one ``<16 x float>`` multiply and add
over 16 entities. A sparse row costs its non-zeros only, with no gather (the weight is a broadcast
scalar, the operand one contiguous vector row of ``z``), which neither a per-entity sparse row loop
(scalar, latency-bound) nor a per-entity dense product (10x the work) achieves.

Two forms, both emitted as LLVM IR that keeps the rows' accumulators in registers; ``ROWS`` rows are
summed together (their common terms in one loop, then each row's remaining terms), so that the adds'
latency of one row overlaps the others' (one row at a time was latency-bound: ESN step, R=200, about
12% more entity-steps/s with 4 rows than with 1 in alternating runs):

- :func:`csr_lanes`: ``w`` as CSR (``ptr`` int64 (m+1,), ``col`` int32, ``val`` float32), the terms of
  row ``j`` summed in storage order ``p = ptr[j], ..., ptr[j+1] - 1``;
- :func:`dense_lanes`: ``w`` dense (m, >= n) C-contiguous, terms in column order ``c = 0, ..., n-1``
  (extra columns of ``w`` are ignored: the ESN's readout keeps its bias there).

Guaranteed: every lane ``e`` is computed exactly as the scalar loop ``s = b[j]; for each term: s = s
+ w * z[c, e]`` computes it (a float32 multiply, then a float32 add, in the stated order; no fused
multiply-add, no reassociation across terms), so a lane's result depends on nothing but its own
column: not on the other lanes, on ``L``, on the vector width or on the CPU. ``L`` must be a positive
multiple of ``LANES`` (16 is one whatever ``RNNSTREAM_VECTOR_BITS``) and all arrays C-contiguous;
nothing is checked at run time. Not guaranteed:
anything when ``acc`` overlaps an input.

With ``RNNSTREAM_NUMBA_INTRINSICS=0`` (:mod:`.jit`) both names are plain numba loops with the same
arithmetic, bit for bit.
"""

from __future__ import annotations

import numpy as np
from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

from .jit import INTRINSICS, VECTOR_BITS, device

LANES = VECTOR_BITS // 32  # floats per vector: 16 (one AVX-512 register, two AVX2 registers), or 8
BLOCKS = (2, 1)       # vectors per pass over a row's terms: two independent chains where L allows
ROWS = 4              # rows summed together (independent chains); the rest of m one at a time


def _c_array(a, ndim: int, dtype) -> bool:
    return isinstance(a, types.Array) and a.ndim == ndim and a.dtype == dtype and a.layout == "C"


def _emit(builder: ir.IRBuilder, m, lanes_total, z_row_bytes, b, z, acc, acc_row_bytes, terms) -> None:
    """Rows ``j < m``: ``acc[j] = b[j] + sum over terms(j)``; ``terms(j)`` gives ``(count, term(p))``
    where ``term(p)`` returns ``(weight float, byte offset of z's row)`` of the ``p``-th term.

    ``ROWS`` rows are summed together, each in its own registers: their first ``min(count)`` terms in
    one loop (independent add chains, so the adds' latency overlaps), then each row's remaining terms.
    Every row still adds its own terms in its own order."""
    i64 = ir.IntType(64)
    f32 = ir.FloatType()
    vec = ir.VectorType(f32, LANES)

    def const(x: int) -> ir.Constant:
        return ir.Constant(i64, x)

    def at(base, byte_offset, ty):
        return builder.bitcast(builder.gep(base, [byte_offset]), ty.as_pointer())

    def splat(x):
        one = builder.insert_element(ir.Constant(vec, ir.Undefined), x, ir.Constant(ir.IntType(32), 0))
        return builder.shuffle_vector(one, ir.Constant(vec, ir.Undefined),
                                      ir.Constant(ir.VectorType(ir.IntType(32), LANES), [0] * LANES))

    def add_term(term, p, offs, slots):
        """slots += weight of term ``p`` x its z row, at the lanes ``offs``."""
        weight, z_row = term(p)
        x = splat(weight)
        for off, slot in zip(offs, slots):
            zk = builder.load(at(z, builder.add(z_row, off), vec), align=4)
            builder.store(builder.fadd(builder.load(slot), builder.fmul(zk, x)), slot)

    def row_block(j0, k: int):
        rows = [builder.add(j0, const(i)) for i in range(k)]
        row_terms = [terms(j) for j in rows]
        common = row_terms[0][0]
        for count, _ in row_terms[1:]:
            common = builder.select(builder.icmp_signed("<", count, common), count, common)
        bjs = [splat(builder.load(at(b, builder.mul(j, const(4)), f32))) for j in rows]
        out_rows = [builder.mul(j, acc_row_bytes) for j in rows]
        done = const(0)  # lanes finished so far in these rows
        for width in BLOCKS:
            step = width * LANES
            passes = builder.udiv(builder.sub(lanes_total, done), const(step))
            start = done
            with cgutils.for_range(builder, passes) as blocks:
                lane0 = builder.add(start, builder.mul(blocks.index, const(step)))
                offs = [builder.mul(builder.add(lane0, const(c * LANES)), const(4)) for c in range(width)]
                slots = [[cgutils.alloca_once(builder, vec) for _ in range(width)] for _ in rows]  # registers
                for bj, row_slots in zip(bjs, slots):
                    for slot in row_slots:
                        builder.store(bj, slot)
                with cgutils.for_range(builder, common) as loop:
                    for (_, term), row_slots in zip(row_terms, slots):
                        add_term(term, loop.index, offs, row_slots)
                for (count, term), row_slots in zip(row_terms, slots):
                    with cgutils.for_range(builder, builder.sub(count, common)) as loop:
                        add_term(term, builder.add(common, loop.index), offs, row_slots)
                for out_row, row_slots in zip(out_rows, slots):
                    for off, slot in zip(offs, row_slots):
                        builder.store(builder.load(slot), at(acc, builder.add(out_row, off), vec), align=4)
            done = builder.add(start, builder.mul(passes, const(step)))

    groups = builder.udiv(m, const(ROWS))
    with cgutils.for_range(builder, groups) as g:
        row_block(builder.mul(g.index, const(ROWS)), ROWS)
    first_single = builder.mul(groups, const(ROWS))
    with cgutils.for_range(builder, builder.sub(m, first_single)) as one:
        row_block(builder.add(first_single, one.index), 1)


def _arrays(context, builder, signature, args):
    return [context.make_array(ty)(context, builder, val) for ty, val in zip(signature.args, args)]


@intrinsic
def _csr_lanes_ir(typingctx, ptr, col, val, b, z, acc):
    if not (_c_array(ptr, 1, types.int64) and _c_array(col, 1, types.int32) and _c_array(val, 1, types.float32)
            and _c_array(b, 1, types.float32) and _c_array(z, 2, types.float32)
            and _c_array(acc, 2, types.float32)):
        return None

    def codegen(context, builder, signature, args):
        ptr_a, col_a, val_a, b_a, z_a, acc_a = _arrays(context, builder, signature, args)
        i64 = ir.IntType(64)
        byte_ptr = ir.IntType(8).as_pointer()
        m, lanes_total = cgutils.unpack_tuple(builder, acc_a.shape)
        z_row_bytes = cgutils.unpack_tuple(builder, z_a.strides)[0]
        acc_row_bytes = cgutils.unpack_tuple(builder, acc_a.strides)[0]
        ptr_p = ptr_a.data
        col_p = col_a.data
        val_p = val_a.data

        def terms(j):
            first = builder.load(builder.gep(ptr_p, [j]))
            end = builder.load(builder.gep(ptr_p, [builder.add(j, ir.Constant(i64, 1))]))

            def term(q):
                p = builder.add(first, q)
                c = builder.sext(builder.load(builder.gep(col_p, [p])), i64)
                return builder.load(builder.gep(val_p, [p])), builder.mul(c, z_row_bytes)
            return builder.sub(end, first), term

        b, z, acc = (builder.bitcast(a.data, byte_ptr) for a in (b_a, z_a, acc_a))
        _emit(builder, m, lanes_total, z_row_bytes, b, z, acc, acc_row_bytes, terms)
        return context.get_dummy_value()

    return types.void(ptr, col, val, b, z, acc), codegen


@intrinsic
def _dense_lanes_ir(typingctx, w, b, z, acc):
    if not (_c_array(w, 2, types.float32) and _c_array(b, 1, types.float32) and _c_array(z, 2, types.float32)
            and _c_array(acc, 2, types.float32)):
        return None

    def codegen(context, builder, signature, args):
        w_a, b_a, z_a, acc_a = _arrays(context, builder, signature, args)
        byte_ptr = ir.IntType(8).as_pointer()
        m, lanes_total = cgutils.unpack_tuple(builder, acc_a.shape)
        n = cgutils.unpack_tuple(builder, z_a.shape)[0]
        z_row_bytes = cgutils.unpack_tuple(builder, z_a.strides)[0]
        acc_row_bytes = cgutils.unpack_tuple(builder, acc_a.strides)[0]
        w_row_elems = cgutils.unpack_tuple(builder, w_a.shape)[1]
        w_p = w_a.data

        def terms(j):
            row = builder.gep(w_p, [builder.mul(j, w_row_elems)])

            def term(c):
                return builder.load(builder.gep(row, [c])), builder.mul(c, z_row_bytes)
            return n, term

        b, z, acc = (builder.bitcast(a.data, byte_ptr) for a in (b_a, z_a, acc_a))
        _emit(builder, m, lanes_total, z_row_bytes, b, z, acc, acc_row_bytes, terms)
        return context.get_dummy_value()

    return types.void(w, b, z, acc), codegen


@device
def _csr_lanes_loop(ptr, col, val, b, z, acc):
    for j in range(acc.shape[0]):
        for e in range(acc.shape[1]):
            s = b[j]
            for p in range(ptr[j], ptr[j + 1]):
                s = s + val[p] * z[col[p], e]
            acc[j, e] = s


@device
def _dense_lanes_loop(w, b, z, acc):
    for j in range(acc.shape[0]):
        for e in range(acc.shape[1]):
            s = b[j]
            for c in range(z.shape[0]):
                s = s + w[j, c] * z[c, e]
            acc[j, e] = s


# ``csr_lanes(ptr, col, val, b, z, acc)`` and ``dense_lanes(w, b, z, acc)``: see the module docstring.
csr_lanes = _csr_lanes_ir if INTRINSICS else _csr_lanes_loop
dense_lanes = _dense_lanes_ir if INTRINSICS else _dense_lanes_loop


def csr_lanes_reference(ptr: np.ndarray, col: np.ndarray, val: np.ndarray, b: np.ndarray,
                        z: np.ndarray) -> np.ndarray:
    """Plain numpy ``csr_lanes``: the same float32 operations in the same order, all lanes at once."""
    acc = np.array(np.broadcast_to(b.astype(np.float32)[:, None], (b.shape[0], z.shape[1])))
    for j in range(b.shape[0]):
        for p in range(ptr[j], ptr[j + 1]):
            acc[j] = acc[j] + val[p] * z[col[p]]   # float32 * float32 row, then float32 add
    return acc
