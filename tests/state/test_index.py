"""EntityIndex: the compiled open-addressing index agrees with a dict through adds, removals,
compaction and growth, for any keys."""

from __future__ import annotations

import numpy as np
import pytest

from rnnstream.state.index import EntityIndex, _hash_keys, encode_keys


def _check(ix: EntityIndex, ref: dict[str, int], probes: list[str]) -> None:
    assert ix.lookup(probes).tolist() == [ref.get(p, -1) for p in probes]
    assert dict(ix) == ref and len(ix) == len(ref)
    assert sorted(ix.live_slots().tolist()) == sorted(ref.values())
    for name, slot in ref.items():
        assert ix.name(slot) == name


def test_keys_of_any_text_round_trip():
    keys = ["a", "aa", "", "host-1", "é", "日本", "a\x00b", "\ud800", "x" * 300]
    ix = EntityIndex(16)
    ix.add(keys, np.arange(len(keys)) + 3)
    ref = {k: i + 3 for i, k in enumerate(keys)}
    _check(ix, ref, keys + ["b", "a\x00", "host-2", "e"])
    assert ix["日本"] == 8 and "\ud800" in ix and "b" not in ix and 5 not in ix
    with pytest.raises(KeyError):
        ix["missing"]
    buf, offs = encode_keys(["ab", "é"])
    assert buf.tobytes() == "abé".encode() and offs.tolist() == [0, 2, 4]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_agrees_with_a_dict_through_adds_removals_growth_and_compaction(seed):
    rng = np.random.default_rng(seed)
    capacity = 64
    ix, ref = EntityIndex(capacity), {}
    free = list(range(capacity))
    compacted = grown = 0
    for step in range(400):
        if len(free) < 10:
            ix.grow(2 * capacity)
            free += list(range(2 * capacity - 1, capacity - 1, -1))
            capacity *= 2
            grown += 1
        if rng.random() < 0.55 or not ref:
            wanted = {f"k{int(v)}" + "é" * int(v % 3) for v in rng.integers(0, 5000, int(rng.integers(1, 30)))}
            names = sorted(wanted - set(ref))[:len(free)]
            slots = np.array([free.pop() for _ in names], dtype=np.int64)
            ix.add(names, slots)
            ref.update(zip(names, slots.tolist()))
        else:
            victims = rng.choice(sorted(ref), size=min(int(rng.integers(1, 40)), len(ref)), replace=False)
            dead_before = ix.dead
            ix.remove(np.array([ref[v] for v in victims] + [ref[victims[0]]]))   # a repeat is harmless
            compacted += ix.dead < dead_before
            for v in victims:
                free.append(ref.pop(v))
        probes = [f"k{int(v)}" + "é" * int(v % 3) for v in rng.integers(0, 5000, 100)] + list(ref)[:20]
        _check(ix, ref, probes)
        assert 2 * len(ix) <= ix.table.shape[0]
    assert compacted > 0 and grown > 0


def test_a_crowded_table_finds_every_key_after_removals_in_the_middle_of_probe_runs():
    """Many keys hashing to few home positions: backward-shift deletion must keep every run intact."""
    ix = EntityIndex(40)
    names = [f"n{i}" for i in range(40)]
    ix.add(names[:8], np.arange(8))      # table of 16: long probe runs
    ref = dict(zip(names[:8], range(8)))
    for victim in (3, 0, 6):
        ix.remove(np.array([victim]))
        del ref[names[victim]]
        _check(ix, ref, names)
    ix.add(names[8:30], np.arange(8, 30))
    ref.update(zip(names[8:30], range(8, 30)))
    _check(ix, ref, names)


def test_warm_index_compiles_every_kernel():
    from rnnstream.state import index

    index.warm_index()
    for fn in (index._lookup, index._insert, index._remove, index._hash_many, index._gather):
        assert fn.signatures, fn.__name__


def test_names_of_many_slots_at_once_match_one_by_one():
    ix = EntityIndex(8)
    keys = ["host-1", "é-2", "", "日本"]
    ix.add(keys, np.array([5, 1, 7, 2]))
    ix.remove(np.array([7]))
    slots = [0, 1, 2, 5, 7, 1]
    assert ix.names(slots) == [ix.name(s) for s in slots] == [None, "é-2", "日本", "host-1", None, "é-2"]
    assert ix.names([]) == [] and ix.names([5, 5]) == ["host-1", "host-1"]


def test_keys_whose_stored_hashes_are_equal_are_told_apart_by_their_bytes():
    """Only the low 32 bits of a key's hash are kept, so distinct keys may share one (these two do,
    found among 400,000 random keys); lookups then compare the bytes."""
    a, b = "1954c58c0e600747", "1ec51c234035eb69"
    buf, offs = encode_keys([a, b])
    assert _hash_keys(buf, offs)[0] == _hash_keys(buf, offs)[1]
    ix = EntityIndex(8)
    ix.add([a], np.array([3]))
    assert ix.hashes.dtype == np.uint32 and ix.starts.dtype == np.uint32
    assert ix.lookup([a, b]).tolist() == [3, -1]
    ix.add([b], np.array([5]))
    assert ix.lookup([a, b]).tolist() == [3, 5]
    ix.remove(np.array([3]))
    assert ix.lookup([a, b]).tolist() == [-1, 5]


def test_starts_widen_to_int64_when_the_arena_outgrows_uint32(monkeypatch):
    import rnnstream.state.index as index_module

    monkeypatch.setattr(index_module, "STARTS32_LIMIT", 512)   # as if 4 GiB were 512 bytes
    ix, ref = EntityIndex(64), {}
    for k in range(40):
        name = f"entity-{k:04d}-" + "x" * (k % 7)
        ix.add([name], np.array([k]))
        ref[name] = k
    assert ix.arena.shape[0] > 512 and ix.starts.dtype == np.int64
    ix.remove(np.arange(0, 40, 2))
    for k in range(0, 40, 2):
        del ref[f"entity-{k:04d}-" + "x" * (k % 7)]
    ix._compact()
    _check(ix, ref, list(ref) + ["entity-0000-", "missing"])
