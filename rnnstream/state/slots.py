"""SlotState: per-entity state in preallocated numpy arrays, addressed through an entity→slot index.

Every field is an array whose first axis is the slot. Slots are handed out on an entity's first event,
recycled when it is evicted, and the arrays grow by doubling up to ``max_entities``. When full, the
least recently seen entities (by a logical clock that ticks once per event, so that replays evict
identically whatever the batching) make room.

Pooled fields (``FieldSpec(pooled=True)``, the history ring): rows that only a bounded sample of
entities keeps, in a pool of at most ``pool_size`` rows beside the slot arrays (``arrays[name]`` has
the pool's rows on its first axis). The per-slot field ``pool_row`` (``POOL_ROW``) holds an entity's
pool row plus one, 0 for none. A new entity gets a pool row on its first event while one is free (the
pool grows by doubling up to ``pool_size``); an evicted, expired or dropped entity frees its row, and
the next new entity takes it. So which entities keep pooled rows is a function of the event sequence
alone (eviction is), and the state's ``export``/``restore`` and ``snapshot`` carry it. An entity
without a pool row never gets one later (its history would start in the middle anyway).

Guaranteed: a slot's row, and a pool row, are all zeros when an entity first gets them;
``export``/``restore`` round-trip rows bit for bit (a pooled field exports as zeros for an entity
without a pool row, and ``pool_row`` as 1 or 0); ``snapshot``/``restore_snapshot`` round-trip the
whole state (slot and pool row numbers, free lists, clock). Not guaranteed: slot or pool row numbers
stay the same across export/restore or growth (nothing depends on them: the clock orders entities,
and every live entity's clock value is distinct).

Persistence. Two ways, both owned here so that no persistence layer touches the private fields:

* the whole state, ``snapshot()`` -> ``(arrays, meta)`` and ``restore_snapshot`` (file checkpoints);
* per entity, for a changelog: ``changes()`` names the entities touched since ``mark_clean()`` (found
  from the logical clock, so the hot path pays nothing) and those removed since (evicted, expired by
  a sweep, dropped), ``export`` copies their rows out, ``restore_entities`` puts rows back and
  ``clock()``/``set_clock`` carry the clock and counters that are not per entity.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

from .allocator import configure_allocator
from .fileformat import decode_strings, encode_strings
from .index import EntityIndex

EVICT_FRACTION = 0.01  # evict this share of capacity at once when full, so eviction is amortised
POOL_ROW = "pool_row"  # per-slot field: the entity's pool row + 1 (0: the entity has none)
POOL_ROW_DTYPE = "int32"


@dataclass(frozen=True)
class FieldSpec:
    """One per-entity field: the shape of an entity's row and its dtype. ``pooled``: only the entities
    of the pool keep a row (see the module docstring)."""

    shape: tuple[int, ...]
    dtype: str
    pooled: bool = False


def dense_arrays(fields: Mapping[str, FieldSpec], n: int) -> dict[str, np.ndarray]:
    """Zeroed arrays of ``fields`` for ``n`` entities that all keep pooled rows (entity ``s`` has pool
    row ``s``, with ``POOL_ROW`` and ``last_seq`` added): the layout kernels see, without a SlotState
    (kernel tests and benchmarks)."""
    arrays = {k: np.zeros((n, *spec.shape), dtype=spec.dtype) for k, spec in fields.items()}
    arrays[POOL_ROW] = np.arange(1, n + 1, dtype=POOL_ROW_DTYPE)
    arrays.setdefault("last_seq", np.zeros(n, dtype=np.int64))
    return arrays


@dataclass
class StateBlob:
    """Rows of some entities, detached from any SlotState: ``arrays[name][k]`` belongs to ``entities[k]``."""

    entities: list[str]
    arrays: dict[str, np.ndarray]


class _Names:
    """``names[slot]``: the entity at ``slot``, None if it is free (decoded from the index)."""

    def __init__(self, index: EntityIndex):
        self._index = index

    def __getitem__(self, slot: int) -> str | None:
        return self._index.name(int(slot))


class SlotState:
    """Slot arrays for up to ``max_entities`` entities. Not thread-safe: one scoring thread owns it."""

    def __init__(self, fields: Mapping[str, FieldSpec], max_entities: int, initial_capacity: int = 1024,
                 pool_size: int = 0):
        if max_entities < 1:
            raise ValueError("max_entities must be >= 1")
        if pool_size < 0:
            raise ValueError("pool_size must be >= 0")
        configure_allocator()   # large arrays and temporaries outside glibc's heap (see .allocator)
        self.fields = dict(fields)
        self.fields["last_seq"] = FieldSpec((), "int64")
        self.pooled = [name for name, spec in self.fields.items() if spec.pooled]
        if self.pooled:
            self.fields[POOL_ROW] = FieldSpec((), POOL_ROW_DTYPE)
        self.slot_fields = [name for name in self.fields if name not in self.pooled]
        self.max_entities = int(max_entities)
        self.pool_size = int(pool_size) if self.pooled else 0
        self.capacity = max(1, min(int(initial_capacity), self.max_entities))
        self.pool_capacity = min(self.capacity, self.pool_size)
        self.arrays = {name: np.zeros((self.capacity, *self.fields[name].shape), dtype=self.fields[name].dtype)
                       for name in self.slot_fields}
        self.arrays.update({name: np.zeros((self.pool_capacity, *self.fields[name].shape),
                                           dtype=self.fields[name].dtype) for name in self.pooled})
        self._pool_free = list(range(self.pool_capacity - 1, -1, -1))
        self.index = EntityIndex(self.capacity)   # a Mapping[str, int] of the live entities
        self.names = _Names(self.index)           # names[slot]: the entity at a slot, None if free
        self._free = list(range(self.capacity - 1, -1, -1))
        self.seq = 0
        self.evicted_total = 0
        self._clean_seq = 0                # clock at the last mark_clean(): rows touched since changed
        self._removed: set[str] = set()   # entities released since the last mark_clean()

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, name: str) -> np.ndarray:
        return self.arrays[name]

    def assign(self, entities: Sequence[str]) -> np.ndarray:
        """Slots of the longest prefix of ``entities`` that fits without evicting anyone.

        New entities get a zeroed slot (growing the arrays while below ``max_entities``). The result
        is shorter than ``entities`` only when the state is full: process that prefix, call
        ``evict_lru``, and assign the rest. Marks every assigned entity as seen, in list order.
        """
        slots, _ = self.lookup(entities)
        self.touch(slots)
        return slots

    def lookup(self, entities: Sequence[str]) -> tuple[np.ndarray, list[int]]:
        """``assign`` without marking anyone as seen; also returns the positions of new entities.

        For a caller that may process only part of the prefix: it calls ``touch`` on the slots it
        processed and ``drop`` on the new entities it did not reach.
        """
        slots = self.index.lookup(entities)
        if slots.size == 0 or slots.min() >= 0:  # the steady state: every entity already has a slot
            return slots, []
        new: list[int] = []
        added: dict[str, int] = {}   # entities first met in this batch -> their new slots
        stop = len(entities)
        for k in np.flatnonzero(slots < 0).tolist():
            entity = entities[k]
            slot = added.get(entity)
            if slot is None:
                if not self._free:
                    if self.capacity >= self.max_entities:
                        stop = k
                        break
                    self._grow(min(self.capacity * 2, self.max_entities))
                slot = self._free.pop()
                added[entity] = slot
                if self.pool_size:
                    self._give_pool_row(slot)
                new.append(k)
            slots[k] = slot
        self.index.add(list(added), np.fromiter(added.values(), dtype=np.int64, count=len(added)))
        return slots[:stop], new

    def seen_since(self, seq: int) -> np.ndarray:
        """Slots of the live entities seen at clock ``seq`` or later, in the order they were last seen.

        Vectorised over the slot arrays (no walk of the index) except for ``seq`` 0: a free slot's row
        is all zeros, so its ``last_seq`` 0 is below any later ``seq``.
        """
        last = self.arrays["last_seq"]
        if seq > 0:
            slots = np.flatnonzero(last >= seq)
        else:
            slots = self.index.live_slots()
        return slots[np.argsort(last[slots], kind="stable")]

    def touch(self, slots: np.ndarray) -> None:
        """Mark the entities of ``slots`` as seen, in order: one tick of the logical clock each.

        That clock makes LRU order a function of the event sequence alone.
        """
        self.arrays["last_seq"][slots] = np.arange(self.seq, self.seq + len(slots))
        self.seq += len(slots)

    def evict_lru(self) -> list[str]:
        """Evict the least recently seen entities: 1% of capacity (at least one). Returns their names."""
        live = self.index.live_slots()
        n_evict = min(max(1, int(self.capacity * EVICT_FRACTION)), live.size)
        if n_evict == 0:
            return []
        order = np.argpartition(self.arrays["last_seq"][live], n_evict - 1)[:n_evict]
        victims = live[order]
        names = self.index.names(victims)
        self._release(victims)
        return [n for n in names if n is not None]

    def slots_for(self, entities: Sequence[str]) -> tuple[np.ndarray, list[str]]:
        """Slots of all ``entities``, evicting the least recently seen as needed.

        Returns ``(slots, evicted)``. Entities of the list itself are protected from eviction, so
        the list may hold at most ``max_entities`` distinct entities. The Detector uses ``assign`` and
        ``evict_lru`` instead, whose choice of victims does not depend on how events are batched.
        """
        distinct = set(entities)
        if len(distinct) > self.max_entities:
            raise ValueError(f"{len(distinct)} distinct entities exceed max_entities={self.max_entities}")
        slots, evicted = self.assign(entities), []
        while len(slots) < len(entities):
            live = self.index.live_slots()
            keep = np.array([e in distinct for e in self.index.names(live)])
            last = self.arrays["last_seq"][live[~keep]]
            victim = live[~keep][int(np.argmin(last))]
            evicted.append(self.names[int(victim)])
            self._release(np.array([victim]))
            more = self.assign(entities[len(slots):])
            slots = np.concatenate([slots, more])
        return slots, evicted

    def _grow_arrays(self, names: list[str], capacity: int) -> None:
        for name in names:
            arr = self.arrays[name]
            grown = np.zeros((capacity, *arr.shape[1:]), dtype=arr.dtype)
            grown[: arr.shape[0]] = arr
            self.arrays[name] = grown

    def _grow(self, capacity: int) -> None:
        self._grow_arrays(self.slot_fields, capacity)
        self.index.grow(capacity)
        self._free = list(range(capacity - 1, self.capacity - 1, -1)) + self._free
        self.capacity = capacity

    def _grow_pool(self, capacity: int) -> None:
        self._grow_arrays(self.pooled, capacity)
        self._pool_free = list(range(capacity - 1, self.pool_capacity - 1, -1)) + self._pool_free
        self.pool_capacity = capacity

    def _give_pool_row(self, slot: int) -> bool:
        """Give ``slot`` a zeroed pool row if one is free (growing the pool below ``pool_size``)."""
        if not self._pool_free:
            if self.pool_capacity >= self.pool_size:
                return False
            self._grow_pool(min(max(2 * self.pool_capacity, 1), self.pool_size))
        self.arrays[POOL_ROW][slot] = self._pool_free.pop() + 1
        return True

    def _free_pool_row(self, slot: int) -> None:
        """Zero and free ``slot``'s pool row, if it has one."""
        row = int(self.arrays[POOL_ROW][slot]) - 1
        if row < 0:
            return
        for name in self.pooled:
            self.arrays[name][row] = 0
        self.arrays[POOL_ROW][slot] = 0
        self._pool_free.append(row)

    def pool_rows(self, slots: np.ndarray) -> np.ndarray:
        """The pool rows of ``slots`` (int64), -1 for an entity without one (all -1 without pooled fields)."""
        if not self.pooled:
            return np.full(len(slots), -1, dtype=np.int64)
        return self.arrays[POOL_ROW][slots].astype(np.int64) - 1

    def pool_used(self) -> int:
        """How many entities keep a pool row."""
        return self.pool_capacity - len(self._pool_free)

    def _release(self, slots: np.ndarray) -> None:
        slots = np.asarray(slots, dtype=np.int64)
        slots = slots[self.index.lengths[slots] >= 0] if slots.size else slots
        if slots.size == 0:
            return
        self._removed.update(self.index.names(slots))
        self.index.remove(slots)
        for s in slots.tolist():
            if self.pooled:
                self._free_pool_row(s)
            for name in self.slot_fields:
                self.arrays[name][s] = 0
            self._free.append(s)
            self.evicted_total += 1

    def evict_idle(self, now: float, ttl: float, last_ts_field: str = "last_ts") -> list[str]:
        """Evict entities whose last event time is more than ``ttl`` seconds before ``now``."""
        live = self.index.live_slots()
        if live.size == 0:
            return []
        idle = live[self.arrays[last_ts_field][live] < now - ttl]
        names = self.index.names(idle)
        self._release(idle)
        return [n for n in names if n is not None]

    def export(self, entities: Iterable[str] | None = None) -> StateBlob:
        """Copy the rows of ``entities`` (default: all) out; unknown entities are skipped. A pooled
        field's row is zeros for an entity without a pool row, and ``POOL_ROW`` is 1 or 0 (whether it
        has one: row numbers mean nothing outside this state)."""
        if entities is None:
            slots = self.index.live_slots()
            names = self.index.names(slots)
        else:
            entities = list(entities)
            slots = self.index.lookup(entities)
            names = [e for e, s in zip(entities, slots.tolist()) if s >= 0]
            slots = slots[slots >= 0]
        arrays = {k: self.arrays[k][slots].copy() for k in self.slot_fields}
        if self.pooled:
            rows = self.pool_rows(slots)
            has = rows >= 0
            arrays[POOL_ROW] = has.astype(POOL_ROW_DTYPE)
            for name in self.pooled:
                spec = self.fields[name]
                out = np.zeros((len(names), *spec.shape), dtype=spec.dtype)
                out[has] = self.arrays[name][rows[has]]
                arrays[name] = out
        return StateBlob(names, arrays)

    def drop(self, entities: Iterable[str]) -> int:
        """Forget ``entities`` (their slots are freed, not counted as evictions). Returns how many."""
        slots = self.index.lookup(list(entities))
        slots = slots[slots >= 0]
        before = self.evicted_total
        self._release(slots)
        self.evicted_total = before
        return int(slots.size)

    def reset_rows(self, slots: np.ndarray) -> None:
        """Zero the rows of ``slots`` (all fields but the LRU clock, pooled rows included): the entities
        start afresh. An entity keeps its pool row, as it would get it back if evicted and met again."""
        for name in self.slot_fields:
            if name not in ("last_seq", POOL_ROW):
                self.arrays[name][slots] = 0
        if self.pooled:
            rows = self.pool_rows(np.asarray(slots))
            rows = rows[rows >= 0]
            for name in self.pooled:
                self.arrays[name][rows] = 0

    def restore(self, blob: StateBlob) -> None:
        """Put the rows of ``blob`` back (replacing those entities' current rows, if any)."""
        missing = set(self.fields) - set(blob.arrays)
        if missing:
            raise ValueError(f"state blob lacks fields {sorted(missing)}")
        for name, spec in self.fields.items():
            got = blob.arrays[name]
            if got.shape[1:] != spec.shape:
                raise ValueError(f"field {name!r} rows are {got.shape[1:]}, expected {spec.shape}")
        slots, _ = self.slots_for(blob.entities)
        for name in self.slot_fields:
            if name != POOL_ROW:
                self.arrays[name][slots] = blob.arrays[name]
        if self.pooled:
            self._restore_pooled(slots, blob)
        if slots.size:
            self.seq = max(self.seq, int(self.arrays["last_seq"][slots].max()) + 1)

    def _restore_pooled(self, slots: np.ndarray, blob: StateBlob) -> None:
        """Pool rows for exactly the entities of ``blob`` that had one (frees first, then gives, so a
        full pool still takes them all when it did before); their pooled rows put back. An entity the
        pool has no room for (a smaller ``pool_size``) keeps no pooled row."""
        want = np.asarray(blob.arrays[POOL_ROW]) != 0
        for s in slots[~want]:
            self._free_pool_row(int(s))
        for k in np.flatnonzero(want):
            s = int(slots[k])
            if self.arrays[POOL_ROW][s] == 0 and not self._give_pool_row(s):
                continue
            row = int(self.arrays[POOL_ROW][s]) - 1
            for name in self.pooled:
                self.arrays[name][row] = blob.arrays[name][k]

    # -- persistence -------------------------------------------------------------------------------

    def changes(self) -> tuple[list[str], list[str]]:
        """``(changed, removed)`` since the last ``mark_clean``: live entities whose rows may have
        changed (every row an event touched), and entities no longer live that were released since."""
        live = self.index.live_slots()
        touched = live[self.arrays["last_seq"][live] >= self._clean_seq] if live.size else live
        changed = self.index.names(touched)
        back = list(self._removed)
        removed = sorted(n for n, s in zip(back, self.index.lookup(back).tolist()) if s < 0)
        return [n for n in changed if n is not None], removed

    def mark_clean(self) -> None:
        """What ``changes`` reports starts afresh from now."""
        self._clean_seq = self.seq
        self._removed.clear()

    def clock(self) -> dict[str, int]:
        """The counters that are not per entity: capacity, logical clock, evictions (JSON-able)."""
        return {"capacity": self.capacity, "seq": self.seq, "evicted_total": self.evicted_total}

    def set_clock(self, clock: dict[str, Any]) -> None:
        """Restore ``clock()``'s counters (after ``restore_entities``); grows to its capacity. The clock is
        set to ``clock``'s exactly, not to the larger of the two: putting rows back ticks it once per
        entity new to this state (``restore``), and a state rebuilt from a cache plus newer rows would
        otherwise run ahead of the one that wrote them (its later ``last_seq`` values would differ)."""
        capacity = int(clock["capacity"])
        if not 1 <= capacity <= self.max_entities:
            raise ValueError(f"state holds {capacity} slots, max_entities is {self.max_entities}")
        if capacity > self.capacity:
            self._grow(capacity)
        self.seq = int(clock["seq"])
        self.evicted_total = int(clock["evicted_total"])
        self.mark_clean()

    def restore_entities(self, blob: StateBlob) -> None:
        """``restore`` for a state being rebuilt: the rows put back do not count as changes."""
        self.restore(blob)
        self.mark_clean()

    def snapshot(self) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        """The whole state: ``slot.<field>`` arrays (every row), ``pool.<field>`` arrays (every pool row)
        and ``pool.free``, ``index.*`` arrays, and ``clock()``."""
        arrays: dict[str, np.ndarray] = {f"slot.{k}": self.arrays[k] for k in self.slot_fields}
        arrays.update({f"pool.{k}": self.arrays[k] for k in self.pooled})
        if self.pooled:
            arrays["pool.free"] = np.array(self._pool_free, dtype=np.int64)
        live = self.index.live_slots()
        arrays["index.names"], arrays["index.ends"] = encode_strings(self.index.names(live))
        arrays["index.slots"] = live
        arrays["index.free"] = np.array(self._free, dtype=np.int64)
        return arrays, self.clock()

    def restore_snapshot(self, arrays: Mapping[str, np.ndarray], meta: Mapping[str, Any]) -> None:
        """Replace everything with what ``snapshot`` captured. ValueError/KeyError when it does not fit
        this state's fields or ``max_entities``; the state is unchanged then."""
        capacity = int(meta["capacity"])
        if not 1 <= capacity <= self.max_entities:
            raise ValueError(f"state holds {capacity} slots, max_entities is {self.max_entities}")
        stale = sorted(k[5:] for k in arrays if k.startswith("slot.") and k[5:] in self.pooled)
        if stale:
            raise ValueError(f"the state keeps {stale} for every entity: written before history rings "
                             "were kept for a sample of entities only (training.sample_entities); that "
                             "layout is not read, start from an empty state")
        restored = self._read_rows(arrays, "slot", self.slot_fields, capacity)
        pool_capacity, pool_free = 0, []
        if self.pooled:
            pool_capacity = int(arrays[f"pool.{self.pooled[0]}"].shape[0])
            restored.update(self._read_rows(arrays, "pool", self.pooled, pool_capacity))
            pool_free = arrays["pool.free"].tolist()
            used = restored[POOL_ROW][restored[POOL_ROW] != 0] - 1
            if sorted(used.tolist() + pool_free) != list(range(pool_capacity)):   # each row used or free, once
                raise ValueError("pool rows do not match the pooled arrays")
            if pool_capacity > self.pool_size:
                pool_capacity, pool_free = self._shrink_pool(restored), []
        names = decode_strings(arrays["index.names"], arrays["index.ends"])
        slots = arrays["index.slots"].tolist()
        free = arrays["index.free"].tolist()
        if len(names) != len(slots) or any(not 0 <= s < capacity for s in slots + free):
            raise ValueError("entity index does not match the slot arrays")
        self.capacity = capacity
        self.arrays = restored
        self.pool_capacity = pool_capacity
        self._pool_free = pool_free
        if len(set(names)) != len(names) or len(set(slots)) != len(slots):
            raise ValueError("entity index names an entity or a slot twice")
        self.index = EntityIndex(capacity)
        self.index.add(names, np.array(slots, dtype=np.int64))
        self.names = _Names(self.index)
        self._free = free
        self.seq = int(meta["seq"])
        self.evicted_total = int(meta["evicted_total"])
        self.mark_clean()

    def _shrink_pool(self, restored: dict[str, np.ndarray]) -> int:
        """Fit ``restored`` (a snapshot's arrays) into a pool of ``pool_size`` rows: written with a
        larger ``training.sample_entities``, the entities at the lowest pool rows keep theirs (renumbered
        in that order), the others keep none. Returns the new pool capacity."""
        row = restored[POOL_ROW]
        ringed = np.flatnonzero(row)
        ringed = ringed[np.argsort(row[ringed], kind="stable")]
        keep, drop = ringed[:self.pool_size], ringed[self.pool_size:]
        for name in self.pooled:
            restored[name] = np.array(restored[name][row[keep] - 1])
        row[drop] = 0
        row[keep] = np.arange(1, keep.size + 1)
        return int(keep.size)

    def _read_rows(self, arrays: Mapping[str, np.ndarray], prefix: str, names: list[str],
                   rows: int) -> dict[str, np.ndarray]:
        """Copies of ``arrays[prefix.name]`` for ``names``, each checked to hold ``rows`` rows of its field."""
        out = {}
        for name in names:
            spec, arr = self.fields[name], arrays[f"{prefix}.{name}"]
            if arr.shape != (rows, *spec.shape) or arr.dtype != np.dtype(spec.dtype):
                raise ValueError(f"{prefix} field {name!r} is {arr.dtype}{arr.shape}, expected "
                                 f"{spec.dtype}{(rows, *spec.shape)}")
            out[name] = np.array(arr)
        return out

    @classmethod
    def from_snapshot(cls, arrays: Mapping[str, np.ndarray], meta: Mapping[str, Any]) -> SlotState:
        """A state rebuilt from ``snapshot`` output alone (field specs read from the arrays), for tools
        that have no config to build one from."""
        fields = {k[5:]: FieldSpec(tuple(v.shape[1:]), v.dtype.str) for k, v in arrays.items()
                  if k.startswith("slot.") and k not in ("slot.last_seq", f"slot.{POOL_ROW}")}
        pooled = {k[5:]: FieldSpec(tuple(v.shape[1:]), v.dtype.str, pooled=True) for k, v in arrays.items()
                  if k.startswith("pool.") and k != "pool.free"}
        pool_size = max((int(arrays[f"pool.{k}"].shape[0]) for k in pooled), default=0)
        st = cls({**fields, **pooled}, max_entities=max(int(meta["capacity"]), 1), initial_capacity=1,
                 pool_size=pool_size)
        st.restore_snapshot(arrays, meta)
        return st
