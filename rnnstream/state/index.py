"""EntityIndex: entity key -> slot in numpy arrays, ~40 bytes an entity instead of a dict's ~250.

A dict of Python strings costs a string object (~64 bytes for a short key), an int object per slot
(32), and the dict's own entry and index (~40-80). Here the keys are UTF-8 bytes in one arena
(``arena``, each slot's key at ``start[slot]``, ``length[slot]`` bytes; ``length`` -1 marks a free
slot), each slot keeps the low 32 bits of its key's 64-bit FNV-1a hash (``hashes``: the table
position is taken from the low bits, and a stored hash only spares comparing the bytes of keys that
differ), and an open-addressing table of slot numbers (``table``, linear probing, at most half full,
deletion by backward shift: no tombstones) finds a key. ``starts`` are uint32 while the arena is at
most 4 GiB (int64 beyond): 20 bytes an entity for the hashes, starts and lengths, not 28. A batch of keys is looked up in one compiled call. Keys are decoded back to ``str`` only
where a name is needed (evictions, changes, snapshots).

Guaranteed: a ``Mapping[str, int]`` of the live entities (``in``, ``[]``, iteration in slot order,
``len``, equality with any mapping); ``lookup`` agrees with it key by key. Not guaranteed: the table
layout or the arena offsets (they depend on the order of insertions and removals; nothing reads them
but this class). Removed keys leave dead bytes in the arena until they exceed the live ones, then
the arena is compacted (amortised O(1) per removal).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence

import numpy as np

from ..kernels.jit import device, kernel

FNV_OFFSET = np.uint64(14695981039346656037)
FNV_PRIME = np.uint64(1099511628211)
HASH_MASK = np.uint64(0xFFFFFFFF)   # the stored hashes keep the low 32 bits
EMPTY = -1
STARTS32_LIMIT = 1 << 32   # an arena up to this many bytes has uint32 starts


@device
def _fnv1a(buf, lo, hi):
    h = FNV_OFFSET
    for i in range(lo, hi):
        h = (h ^ np.uint64(buf[i])) * FNV_PRIME
    return h


@device
def _same_key(arena, start, length, buf, lo, hi):
    if length != hi - lo:
        return False
    for i in range(length):
        if arena[start + i] != buf[lo + i]:
            return False
    return True


@kernel
def _lookup(table, hashes, starts, lengths, arena, buf, offs, out):
    """``out[k]``: the slot of key ``buf[offs[k]:offs[k + 1]]``, or -1."""
    mask = table.shape[0] - 1
    for k in range(out.shape[0]):
        lo = offs[k]
        hi = offs[k + 1]
        h = _fnv1a(buf, lo, hi) & HASH_MASK
        i = _home(h, mask)
        out[k] = EMPTY
        while True:
            s = table[i]
            if s == EMPTY:
                break
            if np.uint64(hashes[s]) == h and _same_key(arena, starts[s], lengths[s], buf, lo, hi):
                out[k] = s
                break
            i = (i + 1) & mask


@device
def _home(h, mask):
    """The table position a key of (stored) hash ``h`` is probed from."""
    return np.int64(np.uint64(h) & np.uint64(mask))


@kernel
def _insert(table, hashes, slots):
    """Put ``slots`` (their ``hashes`` set, keys not yet in the table) into the table."""
    mask = table.shape[0] - 1
    for k in range(slots.shape[0]):
        s = slots[k]
        i = _home(hashes[s], mask)
        while table[i] != EMPTY:
            i = (i + 1) & mask
        table[i] = s


@kernel
def _remove(table, hashes, slots):
    """Take ``slots`` (each in the table) out of the table, shifting later entries of their probe
    runs back so that no lookup stops early."""
    mask = table.shape[0] - 1
    for k in range(slots.shape[0]):
        s = slots[k]
        i = _home(hashes[s], mask)
        while table[i] != s:
            i = (i + 1) & mask
        j = i
        while True:
            j = (j + 1) & mask
            t = table[j]
            if t == EMPTY:
                break
            home = _home(hashes[t], mask)
            # t may move back to the hole at i unless its home lies cyclically in (i, j]
            if (j > i and (home <= i or home > j)) or (j < i and (home <= i and home > j)):
                table[i] = t
                i = j
        table[i] = EMPTY


def encode_keys(entities: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """UTF-8 bytes of ``entities`` concatenated (uint8) and the offsets of each key (len + 1,)."""
    n = len(entities)
    joined = "".join(entities)
    buf = joined.encode("utf-8", "surrogatepass")   # a lone surrogate (valid JSON) is a key too
    if len(buf) == len(joined):   # ASCII: a key's byte length is its length
        lens = np.fromiter(map(len, entities), dtype=np.int64, count=n)
    else:
        encoded = [e.encode("utf-8", "surrogatepass") for e in entities]
        buf = b"".join(encoded)
        lens = np.fromiter(map(len, encoded), dtype=np.int64, count=n)
    offs = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(lens, out=offs[1:])
    return np.frombuffer(buf, dtype=np.uint8), offs


class EntityIndex(Mapping):
    """Entity key -> slot for slots ``0 .. capacity - 1`` (see the module docstring)."""

    def __init__(self, capacity: int):
        self.capacity = int(capacity)
        self.hashes = np.zeros(self.capacity, dtype=np.uint32)
        self.starts = np.zeros(self.capacity, dtype=np.uint32)
        self.lengths = np.full(self.capacity, EMPTY, dtype=np.int32)
        self.table = np.full(16, EMPTY, dtype=np.int32)
        self.arena = np.zeros(256, dtype=np.uint8)
        self.used = 0        # arena bytes written
        self.dead = 0        # of which belong to removed keys
        self.count = 0

    # -- batch operations ------------------------------------------------------------------------

    def lookup(self, entities: Sequence[str]) -> np.ndarray:
        """The slot of each of ``entities`` (int64), -1 where unknown."""
        buf, offs = encode_keys(entities)
        out = np.empty(len(entities), dtype=np.int64)
        _lookup(self.table, self.hashes, self.starts, self.lengths, self.arena, buf, offs, out)
        return out

    def add(self, entities: Sequence[str], slots: np.ndarray) -> None:
        """Index ``entities`` (distinct, none indexed yet) at ``slots`` (free, below ``capacity``)."""
        slots = np.asarray(slots, dtype=np.int64)
        if slots.size == 0:
            return
        buf, offs = encode_keys(entities)
        self._reserve(len(buf))
        self.arena[self.used:self.used + len(buf)] = buf
        self.starts[slots] = self.used + offs[:-1]
        self.lengths[slots] = np.diff(offs)
        self.used += len(buf)
        self.hashes[slots] = _hash_keys(buf, offs)
        self.count += slots.size
        if 2 * self.count > self.table.shape[0]:
            self._rebuild_table(2 * self.count)
        else:
            _insert(self.table, self.hashes, slots)

    def remove(self, slots: np.ndarray) -> None:
        """Forget the keys of ``slots`` (live ones; others are skipped)."""
        slots = np.asarray(slots, dtype=np.int64)
        slots = np.unique(slots[self.lengths[slots] >= 0])
        if slots.size == 0:
            return
        _remove(self.table, self.hashes, slots)
        self.dead += int(self.lengths[slots].sum())
        self.lengths[slots] = EMPTY
        self.count -= slots.size
        if self.dead > 4096 and self.dead > self.used - self.dead:
            self._compact()

    def grow(self, capacity: int) -> None:
        """Make room for slots up to ``capacity``."""
        extra = int(capacity) - self.capacity
        if extra <= 0:
            return
        self.hashes = np.concatenate([self.hashes, np.zeros(extra, dtype=self.hashes.dtype)])
        self.starts = np.concatenate([self.starts, np.zeros(extra, dtype=self.starts.dtype)])
        self.lengths = np.concatenate([self.lengths, np.full(extra, EMPTY, dtype=np.int32)])
        self.capacity = int(capacity)

    def live_slots(self) -> np.ndarray:
        """Slots holding an entity, ascending (int64)."""
        return np.flatnonzero(self.lengths >= 0)

    def name(self, slot: int) -> str | None:
        """The key at ``slot``, None if the slot is free."""
        n = int(self.lengths[slot])
        if n < 0:
            return None
        start = int(self.starts[slot])
        return self.arena[start:start + n].tobytes().decode("utf-8", "surrogatepass")

    def names(self, slots: Sequence[int] | np.ndarray) -> list[str | None]:
        """The keys at ``slots`` (None for a free slot): their bytes gathered and decoded at once."""
        slots = np.asarray(slots, dtype=np.int64).reshape(-1)
        lens = self.lengths[slots].astype(np.int64)
        free = lens < 0
        lens[free] = 0
        offs = np.zeros(slots.size + 1, dtype=np.int64)
        np.cumsum(lens, out=offs[1:])
        buf = np.empty(int(offs[-1]), dtype=np.uint8)
        _gather(self.arena, self.starts, slots, lens, offs, buf)
        raw = buf.tobytes()
        text = raw.decode("utf-8", "surrogatepass")
        if len(text) == len(raw):   # ASCII: byte offsets are character offsets
            out = [text[a:b] for a, b in zip(offs[:-1].tolist(), offs[1:].tolist())]
        else:
            out = [raw[a:b].decode("utf-8", "surrogatepass") for a, b in zip(offs[:-1].tolist(), offs[1:].tolist())]
        if free.any():
            for k in np.flatnonzero(free).tolist():
                out[k] = None
        return out

    # -- Mapping ---------------------------------------------------------------------------------

    def __getitem__(self, entity: str) -> int:
        slot = int(self.lookup([entity])[0])
        if slot < 0:
            raise KeyError(entity)
        return slot

    def __contains__(self, entity: object) -> bool:
        return isinstance(entity, str) and int(self.lookup([entity])[0]) >= 0

    def __iter__(self) -> Iterator[str]:
        return iter(self.names(self.live_slots()))

    def __len__(self) -> int:
        return self.count

    def nbytes(self) -> int:
        """Bytes of the index's arrays."""
        return sum(a.nbytes for a in (self.hashes, self.starts, self.lengths, self.table, self.arena))

    # -- internals -------------------------------------------------------------------------------

    def _reserve(self, n: int) -> None:
        if self.used + n <= self.arena.shape[0]:
            return
        size = max(2 * self.arena.shape[0], self.used + n)
        self._fit_starts(size)
        grown = np.zeros(size, dtype=np.uint8)
        grown[:self.used] = self.arena[:self.used]
        self.arena = grown

    def _fit_starts(self, arena_size: int) -> None:
        """Widen ``starts`` to int64 before the arena grows beyond what uint32 offsets address."""
        if arena_size > STARTS32_LIMIT and self.starts.dtype != np.int64:
            self.starts = self.starts.astype(np.int64)

    def _rebuild_table(self, at_least: int) -> None:
        size = 16
        while size < at_least:
            size *= 2
        self.table = np.full(size, EMPTY, dtype=np.int32)
        _insert(self.table, self.hashes, self.live_slots())

    def _compact(self) -> None:
        live = self.live_slots()
        lens = self.lengths[live].astype(np.int64)
        offs = np.zeros(live.size + 1, dtype=np.int64)
        np.cumsum(lens, out=offs[1:])
        arena = np.zeros(max(256, 2 * int(offs[-1])), dtype=np.uint8)
        self._fit_starts(arena.shape[0])
        _gather(self.arena, self.starts, live, lens, offs, arena)
        self.arena = arena
        self.starts[live] = offs[:-1]
        self.used, self.dead = int(offs[-1]), 0


@kernel
def _hash_many(buf, offs, out):
    for k in range(out.shape[0]):
        out[k] = _fnv1a(buf, offs[k], offs[k + 1]) & HASH_MASK


def _hash_keys(buf: np.ndarray, offs: np.ndarray) -> np.ndarray:
    out = np.empty(len(offs) - 1, dtype=np.uint32)
    _hash_many(buf, offs, out)
    return out


@kernel
def _gather(arena, starts, live, lens, offs, out):
    for k in range(live.shape[0]):
        src = starts[live[k]]
        dst = offs[k]
        for i in range(lens[k]):
            out[dst + i] = arena[src + i]


def warm_index() -> None:
    """Run every compiled function of this module once (compiled, or loaded from numba's cache), so
    that a first eviction or compaction in a running daemon does not wait for the compiler."""
    ix = EntityIndex(4)
    ix.add(["a", "b"], np.array([0, 1]))
    ix.lookup(["a", "c"])
    ix.remove(np.array([0]))
    ix._compact()
