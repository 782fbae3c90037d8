"""SlotState: per-entity state in preallocated numpy arrays, addressed through an entity→slot index.

Every field is an array whose first axis is the slot. Slots are handed out on an entity's first event,
recycled when it is evicted, and the arrays grow by doubling up to ``max_entities``. When full, the
least recently seen entities (by a logical clock, so that replays evict identically) make room, never
one that appears in the batch being assigned.

Guaranteed: a slot's row is all zeros when an entity first gets it; ``export``/``restore`` round-trip
rows bit for bit. Not guaranteed: slot numbers stay the same across export/restore or growth.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Mapping, Sequence

import numpy as np

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

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, name: str) -> np.ndarray:
        return self.arrays[name]

    def slots_for(self, entities: Sequence[str]) -> tuple[np.ndarray, list[str]]:
        """Slot of each entity (new ones get a zeroed slot); returns ``(slots, evicted_entities)``.

        Marks every listed entity as seen now, in list order.
        """
        slots = np.empty(len(entities), dtype=np.int64)
        evicted: list[str] = []
        index = self.index
        for k, entity in enumerate(entities):
            slot = index.get(entity)
            if slot is None:
                if not self._free:
                    evicted += self._make_room(entities)
                slot = self._free.pop()
                index[entity] = slot
                self.names[slot] = entity
            slots[k] = slot
        # A logical clock, one tick per batch position, keeps LRU order deterministic across replays.
        self.arrays["last_seq"][slots] = np.arange(self.seq, self.seq + len(slots))
        self.seq += len(slots)
        return slots, evicted

    def _make_room(self, protected: Iterable[str]) -> list[str]:
        if self.capacity < self.max_entities:
            self._grow(min(self.capacity * 2, self.max_entities))
            return []
        keep = {self.index[e] for e in protected if e in self.index}
        n_evict = max(1, int(self.capacity * EVICT_FRACTION))
        last = self.arrays["last_seq"].copy()
        if keep:
            last[list(keep)] = np.iinfo(np.int64).max
        n_evict = min(n_evict, self.capacity - len(keep))
        if n_evict <= 0:
            raise RuntimeError(f"one batch holds more than max_entities={self.max_entities} entities")
        victims = np.argpartition(last, n_evict - 1)[:n_evict]
        names = [self.names[int(s)] for s in victims]
        self._release(victims)
        return [n for n in names if n is not None]

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

    def restore(self, blob: StateBlob) -> None:
        """Put the rows of ``blob`` back (replacing those entities' current rows, if any)."""
        missing = set(self.fields) - set(blob.arrays)
        if missing:
            raise ValueError(f"state blob lacks fields {sorted(missing)}")
        slots, _ = self.slots_for(blob.entities)
        for name, arr in self.arrays.items():
            arr[slots] = blob.arrays[name]
        if slots.size:
            self.seq = max(self.seq, int(self.arrays["last_seq"][slots].max()) + 1)
