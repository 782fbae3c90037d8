"""SlotState: slot assignment, growth, LRU and idle eviction, export/drop/restore, memory per entity."""

from __future__ import annotations

import time

import numpy as np
import pytest

from rnnstream.kernels.params import n_time_features
from rnnstream.models.base import common_fields
from rnnstream.state.slots import FieldSpec, SlotState, StateBlob

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
    """Arrays of a GRU detector at H=32, W=64, F=1 (5 time features, no daily profile), history rings
    for 4096 entities: 400 bytes per entity in the slot arrays, the rings 1.3 KB each in their pool."""
    n, hidden, window, n_features, sample = 1_000_000, 32, 64, 1, 4096
    n_inputs = n_features + n_time_features(True, True, True)
    fields = {**common_fields(n_features, n_inputs, window), "h": FieldSpec((hidden,), "float32")}
    started = time.perf_counter()
    # Preallocated at full size (np.zeros pages are only touched when written).
    st = SlotState(fields, max_entities=n, initial_capacity=n, pool_size=sample)
    names = [f"host-{i}" for i in range(n)]
    for lo in range(0, n, 100_000):
        st.assign(names[lo:lo + 100_000])
    assert st.assign(["one-more"]).size == 0
    evicted = st.evict_lru()
    st.assign(["one-more"])
    elapsed = time.perf_counter() - started
    per_entity = sum(st[k].nbytes for k in st.slot_fields) / st.capacity
    per_ring = sum(st[k].nbytes for k in st.pooled) / st.pool_capacity
    assert len(st) == n - len(evicted) + 1 and len(evicted) == n // 100
    assert per_entity == 400, per_entity   # sc 224, h 128, count, last_ts, nmean, nvar, last_seq 8, pred, pool_row 4
    assert per_ring == 520 + 256 + 8 and st.pool_capacity == sample
    # the evicted 1% were the first arrivals, which held every ring: the newcomer took one of them
    assert st.pool_used() == 1 and st["pool_row"][st.index["one-more"]] > 0
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


# --- pooled fields: rows kept for a bounded sample of entities -----------------------------------------

POOLED = {"h": FieldSpec((2,), "float32"), "hist": FieldSpec((3,), "float64", pooled=True)}


def _ringed(st: SlotState) -> list[str]:
    return sorted(n for n, s in st.index.items() if st["pool_row"][s])


def test_pool_rows_go_to_the_first_arrivals_and_grow_by_doubling():
    st = SlotState(POOLED, max_entities=20, initial_capacity=1, pool_size=5)
    assert st["hist"].shape == (1, 3) and st.pool_capacity == 1
    st.assign([f"e{i}" for i in range(8)])
    assert _ringed(st) == ["e0", "e1", "e2", "e3", "e4"] and st.pool_used() == 5
    assert st.pool_capacity == 5 and st["hist"].shape == (5, 3)     # 1, 2, 4, then capped at 5
    rows = st.pool_rows(np.array([st.index[f"e{i}"] for i in range(8)]))
    assert sorted(rows[:5].tolist()) == [0, 1, 2, 3, 4] and rows[5:].tolist() == [-1, -1, -1]


def test_eviction_frees_and_zeroes_the_pool_row_for_the_next_new_entity():
    st = SlotState(POOLED, max_entities=4, initial_capacity=4, pool_size=2)
    st.assign(["a", "b", "c"])                  # a, b keep rows; c arrived with the pool full
    row_a = int(st.pool_rows(np.array([st.index["a"]]))[0])
    st["hist"][:] = 9.0
    st.assign(["b", "c"])
    st.evict_lru()                              # "a" is the least recently seen
    assert "a" not in st.index and st.pool_used() == 1
    assert not st["hist"][row_a].any()          # zeroed when freed
    st.assign(["c"])                            # a known entity without a row does not get one later
    assert _ringed(st) == ["b"]
    st.assign(["d"])                            # the next new entity takes the freed row
    assert _ringed(st) == ["b", "d"] and not st["hist"][st.pool_rows(np.array([st.index["d"]]))[0]].any()
    st.drop(["b", "d"])
    assert st.pool_used() == 0 and not st["hist"].any()


def test_idle_eviction_and_reset_rows_handle_pool_rows():
    fields = {**POOLED, "last_ts": FieldSpec((), "float64")}
    st = SlotState(fields, max_entities=8, pool_size=2)
    slots = st.assign(["a", "b", "c"])
    st["last_ts"][slots] = [0.0, 100.0, 0.0]
    st["hist"][:] = 5.0
    st["h"][slots] = 1.0
    st.reset_rows(slots[1:2])                   # b starts afresh: keeps its row, zeroed
    assert _ringed(st) == ["a", "b"] and not st["hist"][st.pool_rows(slots[1:2])[0]].any()
    assert st["hist"][st.pool_rows(slots[:1])[0]].all() and not st["h"][slots[1]].any()
    st["last_ts"][slots[1]] = 100.0
    assert sorted(st.evict_idle(now=100.0, ttl=50.0)) == ["a", "c"]
    assert st.pool_used() == 1 and _ringed(st) == ["b"]


def test_export_restore_gives_pool_rows_to_exactly_the_entities_that_had_them():
    st = SlotState(POOLED, max_entities=8, pool_size=2)
    st.assign(["a", "b", "c"])                  # a, b ringed; c not
    for name in ("a", "b"):
        st["hist"][st.pool_rows(np.array([st.index[name]]))[0]] = ord(name)
    st.drop(["a"])                              # a free row, and c still has none
    blob = st.export()
    assert blob.arrays["pool_row"].tolist() == [int(e == "b") for e in blob.entities]
    np.testing.assert_array_equal(blob.arrays["hist"][blob.entities.index("c")], 0.0)
    back = SlotState(POOLED, max_entities=8, pool_size=2)
    back.restore_entities(StateBlob(["c", "b"], {k: v[[blob.entities.index("c"), blob.entities.index("b")]]
                                                 for k, v in blob.arrays.items()}))
    assert _ringed(back) == ["b"] and back.pool_used() == 1   # c did not take the free row
    np.testing.assert_array_equal(back["hist"][back.pool_rows(np.array([back.index["b"]]))[0]], ord("b"))
    for k in blob.arrays:
        np.testing.assert_array_equal(back.export(["b", "c"]).arrays[k], st.export(["b", "c"]).arrays[k])
    back.assign(["d", "e"])                     # as in the original: d takes the free row, e none
    st.assign(["d", "e"])
    assert _ringed(back) == _ringed(st) == ["b", "d"]
    small = SlotState(POOLED, max_entities=8, pool_size=0)   # no room: rows dropped, not an error
    small.restore(blob)
    assert _ringed(small) == [] and small.pool_used() == 0


def test_snapshot_round_trips_pool_rows_and_refuses_rings_kept_per_entity():
    st = SlotState(POOLED, max_entities=10, initial_capacity=2, pool_size=3)
    st.assign(["a", "b", "c", "d"])
    st["hist"][:] = np.arange(st["hist"].size).reshape(st["hist"].shape)
    st.drop(["b"])
    arrays, meta = st.snapshot()
    arrays = {k: v.copy() for k, v in arrays.items()}   # the snapshot's arrays are the state's own
    assert "slot.hist" not in arrays and arrays["pool.hist"].shape == (st.pool_capacity, 3)
    back = SlotState.from_snapshot(arrays, meta)
    assert back.pool_size == st.pool_capacity and _ringed(back) == _ringed(st) == ["a", "c"]
    for name in st.fields:
        np.testing.assert_array_equal(back[name], st[name])
    assert back.assign(["e"])[0] == st.assign(["e"])[0] and _ringed(back) == _ringed(st)   # free lists too
    old = {k: v for k, v in arrays.items() if not k.startswith("pool.") and k != "slot.pool_row"}
    old["slot.hist"] = np.zeros((meta["capacity"], 3))
    with pytest.raises(ValueError, match="for every entity.*sample_entities"):
        SlotState(POOLED, max_entities=10, pool_size=3).restore_snapshot(old, meta)
    small = SlotState(POOLED, max_entities=10, pool_size=1)   # a smaller training.sample_entities
    small.restore_snapshot(arrays, meta)
    assert _ringed(small) == ["a"] and small.pool_capacity == small.pool_used() == 1   # the lowest ring row
    np.testing.assert_array_equal(small.export(["a"]).arrays["hist"], st.export(["a"]).arrays["hist"])
    small.assign(["f"])
    assert _ringed(small) == ["a"]
    bad = dict(arrays, **{"pool.free": np.array([0])})
    with pytest.raises(ValueError, match="pool rows"):
        SlotState(POOLED, max_entities=10, pool_size=3).restore_snapshot(bad, meta)
