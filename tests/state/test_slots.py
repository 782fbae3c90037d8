"""SlotState: slot assignment, growth, LRU and idle eviction, export/drop/restore, memory per entity."""

from __future__ import annotations

import time

import numpy as np
import pytest

from rnnstream.kernels.params import n_time_features
from rnnstream.models.base import common_fields
from rnnstream.state.slots import FieldSpec, SlotState

FIELDS = {"h": FieldSpec((3,), "float32"), "last_ts": FieldSpec((), "float64"), "ring": FieldSpec((2, 2), "uint8")}


def _fill(state: SlotState, entities, value=1.0) -> np.ndarray:
    slots, _ = state.slots_for(entities)
    for k, s in enumerate(slots):
        state["h"][s] = value + k
        state["ring"][s] = 7
    return slots


def test_new_entity_gets_zeroed_slot_and_same_slot_after():
    st = SlotState(FIELDS, max_entities=10, initial_capacity=4)
    slots, evicted = st.slots_for(["a", "b", "a"])
    assert evicted == [] and slots[0] == slots[2] != slots[1]
    assert len(st) == 2
    for name in FIELDS:
        assert not st[name][slots].any()
    st["h"][slots[0]] = 5.0
    again, _ = st.slots_for(["a"])
    assert again[0] == slots[0] and np.all(st["h"][again[0]] == 5.0)


def test_growth_by_doubling_keeps_rows():
    st = SlotState(FIELDS, max_entities=100, initial_capacity=2)
    names = [f"e{i}" for i in range(2)]
    slots = _fill(st, names)
    rows = {n: st["h"][s].copy() for n, s in zip(names, slots)}
    capacities = []
    for i in range(2, 40):
        st.slots_for([f"e{i}"])
        capacities.append(st.capacity)
    assert sorted(set(capacities)) == [4, 8, 16, 32, 64]
    for n, row in rows.items():
        np.testing.assert_array_equal(st["h"][st.index[n]], row)
    assert all(st[name].shape[0] == st.capacity for name in st.fields)
    assert st.evicted_total == 0


def test_growth_stops_at_max_entities():
    st = SlotState(FIELDS, max_entities=5, initial_capacity=2)
    st.slots_for([f"e{i}" for i in range(5)])
    assert st.capacity == 5
    _, evicted = st.slots_for(["new"])
    assert st.capacity == 5 and len(evicted) == 1 and len(st) == 5


def test_lru_eviction_evicts_least_recently_seen():
    st = SlotState(FIELDS, max_entities=4, initial_capacity=4)
    st.slots_for(["a", "b", "c", "d"])
    st.slots_for(["a"])               # b is now the least recently seen
    _, evicted = st.slots_for(["e"])
    assert evicted == ["b"] and "b" not in st.index and st.evicted_total == 1
    st.slots_for(["c", "d"])          # order now: a, e, c, d (oldest first)
    _, evicted = st.slots_for(["f"])
    assert evicted == ["a"]


def test_eviction_never_takes_an_entity_of_the_current_batch():
    st = SlotState(FIELDS, max_entities=4, initial_capacity=4)
    st.slots_for(["a", "b", "c", "d"])
    # "a" is the oldest but is in this batch; so is "b": "c" must go.
    slots, evicted = st.slots_for(["a", "new", "b"])
    assert evicted == ["c"]
    assert set(st.index) == {"a", "b", "d", "new"}
    assert len(set(slots.tolist())) == 3


def test_batch_larger_than_max_entities_is_refused():
    st = SlotState(FIELDS, max_entities=3, initial_capacity=3)
    with pytest.raises(ValueError, match="max_entities=3"):
        st.slots_for(["a", "b", "c", "d"])


def test_evicted_slot_is_zeroed_and_reused():
    st = SlotState(FIELDS, max_entities=3, initial_capacity=3)
    slots = _fill(st, ["a", "b", "c"], value=9.0)
    st["last_ts"][slots] = 123.0
    victim = st.index["a"]
    new_slots, evicted = st.slots_for(["d"])
    assert evicted == ["a"] and new_slots[0] == victim
    for name in st.fields:
        if name != "last_seq":
            assert not st[name][victim].any(), name
    assert st.names[victim] == "d"


def test_eviction_amortised_share_of_capacity():
    st = SlotState(FIELDS, max_entities=300, initial_capacity=300)
    st.assign([f"e{i}" for i in range(300)])
    assert st.assign(["new"]).size == 0          # full: nothing assigned, nobody evicted yet
    evicted = st.evict_lru()
    assert sorted(evicted) == ["e0", "e1", "e2"]  # 1% of 300, the oldest
    assert st.assign(["new"]).size == 1
    assert len(st) == 298


def test_assign_stops_at_the_first_entity_that_needs_room():
    st = SlotState(FIELDS, max_entities=3, initial_capacity=1)
    slots = st.assign(["a", "b", "a", "c", "d", "a"])
    assert [st.names[s] for s in slots] == ["a", "b", "a", "c"]   # grew 1 -> 2 -> 3, then full
    assert st.evict_lru() == ["b"]                # "a" and "c" were seen after "b"


def test_slots_for_protects_its_own_entities():
    st = SlotState(FIELDS, max_entities=3, initial_capacity=3)
    st.slots_for(["a", "b", "c"])
    slots, evicted = st.slots_for(["a", "d"])
    assert evicted == ["b"] and [st.names[s] for s in slots] == ["a", "d"]


def test_evict_idle_by_event_time():
    st = SlotState(FIELDS, max_entities=10)
    slots, _ = st.slots_for(["old", "mid", "new"])
    st["last_ts"][slots] = [100.0, 500.0, 1000.0]
    assert st.evict_idle(now=1000.0, ttl=600.0) == ["old"]   # 100 < 400
    assert set(st.index) == {"mid", "new"}
    assert st.evict_idle(now=1000.0, ttl=500.0) == []         # 500 is not < 500
    assert sorted(st.evict_idle(now=10_000.0, ttl=1.0)) == ["mid", "new"]
    assert len(st) == 0 and st.evict_idle(now=0.0, ttl=1.0) == []
    assert st.evicted_total == 3


def test_export_drop_restore_round_trip_bit_exact():
    rng = np.random.default_rng(0)
    st = SlotState(FIELDS, max_entities=64, initial_capacity=4)
    names = [f"e{i}" for i in range(20)]
    slots, _ = st.slots_for(names)
    st["h"][slots] = rng.standard_normal((20, 3)).astype(np.float32)
    st["h"][slots[3], 1] = np.float32(np.nan)  # bit patterns, not just values
    st["last_ts"][slots] = rng.uniform(0, 1e9, 20)
    st["ring"][slots] = rng.integers(0, 255, (20, 2, 2), dtype=np.uint8)
    moved = names[::3] + ["unknown"]
    blob = st.export(moved)
    assert blob.entities == names[::3]
    kept_before = st.export([n for n in names if n not in moved])

    assert st.drop(moved) == len(names[::3])
    assert st.evicted_total == 0 and all(n not in st.index for n in moved)

    other = SlotState(FIELDS, max_entities=64, initial_capacity=2)   # e.g. another replica
    other.slots_for(["x"])
    other.restore(blob)
    st.restore(blob)                                                # and back again
    for target in (other, st):
        again = target.export(blob.entities)
        assert again.entities == blob.entities
        for name, arr in blob.arrays.items():
            assert again.arrays[name].tobytes() == arr.tobytes(), name
    kept_after = st.export(kept_before.entities)
    for name, arr in kept_before.arrays.items():
        assert kept_after.arrays[name].tobytes() == arr.tobytes(), name
    # The restored entities keep their LRU position relative to the others.
    assert other.seq > int(blob.arrays["last_seq"].max())


def test_restore_rejects_blob_without_all_fields():
    st = SlotState(FIELDS, max_entities=4)
    st.slots_for(["a"])
    blob = st.export()
    del blob.arrays["h"]
    with pytest.raises(ValueError, match="h"):
        SlotState(FIELDS, max_entities=4).restore(blob)


def test_million_entities_memory_and_time():
    """Arrays of a GRU detector at H=32, W=64, F=1 (5 time features, no daily profile): under 1200 bytes
    per entity (the ring keeps event times, not the calendar inputs)."""
    n, hidden, window, n_features = 1_000_000, 32, 64, 1
    n_inputs = n_features + n_time_features(True, True, True)
    fields = {**common_fields(n_features, n_inputs, window), "h": FieldSpec((hidden,), "float32")}
    started = time.perf_counter()
    # Preallocated at full size (np.zeros pages are only touched when written).
    st = SlotState(fields, max_entities=n, initial_capacity=n)
    names = [f"host-{i}" for i in range(n)]
    for lo in range(0, n, 100_000):
        st.assign(names[lo:lo + 100_000])
    assert st.assign(["one-more"]).size == 0
    evicted = st.evict_lru()
    st.assign(["one-more"])
    elapsed = time.perf_counter() - started
    per_entity = sum(a.nbytes for a in st.arrays.values()) / st.capacity
    assert len(st) == n - len(evicted) + 1 and len(evicted) == n // 100
    assert per_entity < 1200, per_entity   # 1116 bytes: ring_t 520, ring_in 256, sc 160, h 128, ...
    assert elapsed < 30.0


def test_snapshot_round_trips_the_whole_state():
    st = SlotState(FIELDS, max_entities=10, initial_capacity=2)
    _fill(st, ["a", "b", "c"])
    st.drop(["b"])
    arrays, meta = st.snapshot()
    back = SlotState.from_snapshot(arrays, meta)
    assert back.index == st.index and back.capacity == st.capacity and back.seq == st.seq
    for name in st.fields:
        np.testing.assert_array_equal(back[name], st[name])
    # the free list came back too: the next new entity gets the same slot in both
    assert back.assign(["d"])[0] == st.assign(["d"])[0]
    with pytest.raises(ValueError, match="max_entities"):
        SlotState(FIELDS, max_entities=2).restore_snapshot(arrays, meta)


def test_changes_name_touched_and_removed_entities_since_mark_clean():
    st = SlotState(FIELDS, max_entities=3, initial_capacity=3)
    st.assign(["a", "b", "c"])
    assert sorted(st.changes()[0]) == ["a", "b", "c"] and st.changes()[1] == []
    st.mark_clean()
    assert st.changes() == ([], [])
    st.assign(["b"])
    assert st.changes() == (["b"], [])
    st.evict_lru()                      # "a" is the least recently seen
    assert st.changes() == (["b"], ["a"])
    st.assign(["a"])                    # back again: a change, not a removal
    assert sorted(st.changes()[0]) == ["a", "b"] and st.changes()[1] == []


def test_restore_entities_and_clock_rebuild_a_state_without_changes():
    st = SlotState(FIELDS, max_entities=10, initial_capacity=2)
    _fill(st, ["a", "b", "c"])
    fresh = SlotState(FIELDS, max_entities=10)
    fresh.restore_entities(st.export())
    fresh.set_clock(st.clock())
    assert fresh.changes() == ([], []) and fresh.seq == st.seq and fresh.capacity >= st.capacity
    again = fresh.export(["a", "b", "c"])
    for name in st.fields:
        np.testing.assert_array_equal(again.arrays[name], st.export(["a", "b", "c"]).arrays[name])
    with pytest.raises(ValueError, match="rows are"):
        SlotState({**FIELDS, "h": FieldSpec((4,), "float32")}, max_entities=10).restore(st.export())


def test_seen_since_lists_live_entities_seen_at_or_after_a_clock_in_order():
    st = SlotState({"v": FieldSpec((), "float64")}, max_entities=8, initial_capacity=2)
    st.assign(["a", "b", "c", "a", "d"])          # clock: a 0, b 1, c 2, a 3, d 4
    st.drop(["c"])
    st.assign(["e", "b"])                         # e 5 (reuses c's slot), b 6
    names = lambda slots: [st.names[int(s)] for s in slots]  # noqa: E731
    assert names(st.seen_since(0)) == ["a", "d", "e", "b"]
    assert names(st.seen_since(4)) == ["d", "e", "b"]
    assert names(st.seen_since(6)) == ["b"] and st.seen_since(7).size == 0
    for seq in range(8):   # the same as walking the index
        live = np.array(list(st.index.values()))
        want = live[st.arrays["last_seq"][live] >= seq]
        assert sorted(st.seen_since(seq).tolist()) == sorted(want.tolist())
