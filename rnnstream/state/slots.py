"""SlotState: per-entity state in preallocated numpy arrays, addressed through an entity→slot index.

Every field is an array whose first axis is the slot. Slots are handed out on an entity's first event,
recycled when it is evicted, and the arrays grow by doubling up to ``max_entities``. When full, the
least recently seen entities (by a logical clock that ticks once per event, so that replays evict
identically whatever the batching) make room.

Guaranteed: a slot's row is all zeros when an entity first gets it; ``export``/``restore`` round-trip
rows bit for bit; ``snapshot``/``restore_snapshot`` round-trip the whole state (slot numbers, free
list, clock). Not guaranteed: slot numbers stay the same across export/restore or growth (nothing
depends on them: the clock orders entities, and every live entity's clock value is distinct).

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

from .fileformat import decode_strings, encode_strings

EVICT_FRACTION = 0.01  # evict this share of capacity at once when full, so eviction is amortised


@dataclass(frozen=True)
class FieldSpec:
    """One per-slot field: the shape of a slot's row and its dtype."""

    shape: tuple[int, ...]
    dtype: str


@dataclass
class StateBlob:
    """Rows of some entities, detached from any SlotState: ``arrays[name][k]`` belongs to ``entities[k]``."""

    entities: list[str]
    arrays: dict[str, np.ndarray]


class SlotState:
    """Slot arrays for up to ``max_entities`` entities. Not thread-safe: one scoring thread owns it."""

    def __init__(self, fields: Mapping[str, FieldSpec], max_entities: int, initial_capacity: int = 1024):
        if max_entities < 1:
            raise ValueError("max_entities must be >= 1")
        self.fields = dict(fields)
        self.fields["last_seq"] = FieldSpec((), "int64")
        self.max_entities = int(max_entities)
        self.capacity = max(1, min(int(initial_capacity), self.max_entities))
        self.arrays = {name: np.zeros((self.capacity, *spec.shape), dtype=spec.dtype)
                       for name, spec in self.fields.items()}
        self.index: dict[str, int] = {}
        self.names: list[str | None] = [None] * self.capacity
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
        index = self.index
        known = list(map(index.get, entities))
        if None not in known:  # the steady state: every entity already has a slot
            return np.array(known, dtype=np.int64), []
        slots = np.empty(len(entities), dtype=np.int64)
        new: list[int] = []
        k = 0
        for entity in entities:
            slot = index.get(entity)
            if slot is None:
                if not self._free:
                    if self.capacity >= self.max_entities:
                        break
                    self._grow(min(self.capacity * 2, self.max_entities))
                slot = self._free.pop()
                index[entity] = slot
                self.names[slot] = entity
                new.append(k)
            slots[k] = slot
            k += 1
        return slots[:k], new

    def seen_since(self, seq: int) -> np.ndarray:
        """Slots of the live entities seen at clock ``seq`` or later, in the order they were last seen.

        Vectorised over the slot arrays (no walk of the index) except for ``seq`` 0: a free slot's row
        is all zeros, so its ``last_seq`` 0 is below any later ``seq``.
        """
        last = self.arrays["last_seq"]
        if seq > 0:
            slots = np.flatnonzero(last >= seq)
        else:
            slots = np.fromiter(self.index.values(), dtype=np.int64, count=len(self.index))
        return slots[np.argsort(last[slots], kind="stable")]

    def touch(self, slots: np.ndarray) -> None:
        """Mark the entities of ``slots`` as seen, in order: one tick of the logical clock each.

        That clock makes LRU order a function of the event sequence alone.
        """
        self.arrays["last_seq"][slots] = np.arange(self.seq, self.seq + len(slots))
        self.seq += len(slots)

    def evict_lru(self) -> list[str]:
        """Evict the least recently seen entities: 1% of capacity (at least one). Returns their names."""
        live = np.fromiter(self.index.values(), dtype=np.int64, count=len(self.index))
        n_evict = min(max(1, int(self.capacity * EVICT_FRACTION)), live.size)
        if n_evict == 0:
            return []
        order = np.argpartition(self.arrays["last_seq"][live], n_evict - 1)[:n_evict]
        victims = live[order]
        names = [self.names[int(s)] for s in victims]
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
            live = np.fromiter(self.index.values(), dtype=np.int64, count=len(self.index))
            keep = np.array([e in distinct for e in (self.names[int(s)] for s in live)])
            last = self.arrays["last_seq"][live[~keep]]
            victim = live[~keep][int(np.argmin(last))]
            evicted.append(self.names[int(victim)])
            self._release(np.array([victim]))
            more = self.assign(entities[len(slots):])
            slots = np.concatenate([slots, more])
        return slots, evicted

    def _grow(self, capacity: int) -> None:
        for name, arr in self.arrays.items():
            grown = np.zeros((capacity, *arr.shape[1:]), dtype=arr.dtype)
            grown[: self.capacity] = arr
            self.arrays[name] = grown
        self.names += [None] * (capacity - self.capacity)
        self._free = list(range(capacity - 1, self.capacity - 1, -1)) + self._free
        self.capacity = capacity

    def _release(self, slots: np.ndarray) -> None:
        for s in slots:
            s = int(s)
            name = self.names[s]
            if name is None:
                continue
            del self.index[name]
            self._removed.add(name)
            self.names[s] = None
            for arr in self.arrays.values():
                arr[s] = 0
            self._free.append(s)
            self.evicted_total += 1

    def evict_idle(self, now: float, ttl: float, last_ts_field: str = "last_ts") -> list[str]:
        """Evict entities whose last event time is more than ``ttl`` seconds before ``now``."""
        live = np.fromiter(self.index.values(), dtype=np.int64, count=len(self.index))
        if live.size == 0:
            return []
        idle = live[self.arrays[last_ts_field][live] < now - ttl]
        names = [self.names[int(s)] for s in idle]
        self._release(idle)
        return [n for n in names if n is not None]

    def export(self, entities: Iterable[str] | None = None) -> StateBlob:
        """Copy the rows of ``entities`` (default: all) out; unknown entities are skipped."""
        names = list(self.index) if entities is None else [e for e in entities if e in self.index]
        slots = np.array([self.index[e] for e in names], dtype=np.int64)
        return StateBlob(names, {k: a[slots].copy() for k, a in self.arrays.items()})

    def drop(self, entities: Iterable[str]) -> int:
        """Forget ``entities`` (their slots are freed, not counted as evictions). Returns how many."""
        slots = np.array([self.index[e] for e in entities if e in self.index], dtype=np.int64)
        before = self.evicted_total
        self._release(slots)
        self.evicted_total = before
        return int(slots.size)

    def reset_rows(self, slots: np.ndarray) -> None:
        """Zero the rows of ``slots`` (all fields but the LRU clock): the entities start afresh."""
        for name, arr in self.arrays.items():
            if name != "last_seq":
                arr[slots] = 0

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
        for name, arr in self.arrays.items():
            arr[slots] = blob.arrays[name]
        if slots.size:
            self.seq = max(self.seq, int(self.arrays["last_seq"][slots].max()) + 1)

    # -- persistence -------------------------------------------------------------------------------

    def changes(self) -> tuple[list[str], list[str]]:
        """``(changed, removed)`` since the last ``mark_clean``: live entities whose rows may have
        changed (every row an event touched), and entities no longer live that were released since."""
        live = np.fromiter(self.index.values(), dtype=np.int64, count=len(self.index))
        touched = live[self.arrays["last_seq"][live] >= self._clean_seq] if live.size else live
        changed = [self.names[int(s)] for s in touched]
        removed = sorted(n for n in self._removed if n not in self.index)
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
        """The whole state: ``slot.<field>`` arrays (every row), ``index.*`` arrays, and ``clock()``."""
        arrays: dict[str, np.ndarray] = {f"slot.{k}": v for k, v in self.arrays.items()}
        live = sorted(self.index.items(), key=lambda kv: kv[1])
        arrays["index.names"], arrays["index.ends"] = encode_strings([name for name, _ in live])
        arrays["index.slots"] = np.array([slot for _, slot in live], dtype=np.int64)
        arrays["index.free"] = np.array(self._free, dtype=np.int64)
        return arrays, self.clock()

    def restore_snapshot(self, arrays: Mapping[str, np.ndarray], meta: Mapping[str, Any]) -> None:
        """Replace everything with what ``snapshot`` captured. ValueError/KeyError when it does not fit
        this state's fields or ``max_entities``; the state is unchanged then."""
        capacity = int(meta["capacity"])
        if not 1 <= capacity <= self.max_entities:
            raise ValueError(f"state holds {capacity} slots, max_entities is {self.max_entities}")
        restored = {}
        for name, spec in self.fields.items():
            arr = arrays[f"slot.{name}"]
            if arr.shape != (capacity, *spec.shape) or arr.dtype != np.dtype(spec.dtype):
                raise ValueError(f"slot field {name!r} is {arr.dtype}{arr.shape}, expected "
                                 f"{spec.dtype}{(capacity, *spec.shape)}")
            restored[name] = np.array(arr)
        names = decode_strings(arrays["index.names"], arrays["index.ends"])
        slots = arrays["index.slots"].tolist()
        free = arrays["index.free"].tolist()
        if len(names) != len(slots) or any(not 0 <= s < capacity for s in slots + free):
            raise ValueError("entity index does not match the slot arrays")
        self.capacity = capacity
        self.arrays = restored
        self.index = dict(zip(names, slots))
        self.names = [None] * capacity
        for name, slot in zip(names, slots):
            self.names[slot] = name
        self._free = free
        self.seq = int(meta["seq"])
        self.evicted_total = int(meta["evicted_total"])
        self.mark_clean()

    @classmethod
    def from_snapshot(cls, arrays: Mapping[str, np.ndarray], meta: Mapping[str, Any]) -> SlotState:
        """A state rebuilt from ``snapshot`` output alone (field specs read from the arrays), for tools
        that have no config to build one from."""
        fields = {k[5:]: FieldSpec(tuple(v.shape[1:]), v.dtype.str) for k, v in arrays.items()
                  if k.startswith("slot.") and k != "slot.last_seq"}
        st = cls(fields, max_entities=max(int(meta["capacity"]), 1), initial_capacity=1)
        st.restore_snapshot(arrays, meta)
        return st
