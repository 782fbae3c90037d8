"""The standby assignment (no broker): balance, stickiness, warm copies preferred, copies never on the owner."""

from __future__ import annotations

from types import SimpleNamespace

import orjson
import pytest
from kafka.protocol.consumer.metadata import ConsumerProtocolAssignment, ConsumerProtocolSubscription

from rnnstream.daemon.standby import StandbyAssignor, plan


def _check(owned, copies, partitions, members, replicas):
    got = sorted(p for m in members for p in owned[m])
    assert got == partitions, "every partition has exactly one owner"
    sizes = [len(owned[m]) for m in members]
    assert max(sizes) - min(sizes) <= 1, f"unbalanced: {sizes}"
    for p in partitions:
        keepers = [m for m in members if p in copies[m]]
        assert len(keepers) == min(replicas, len(members) - 1)
        assert all(p not in owned[m] for m in keepers), "a copy on the partition's owner"


@pytest.mark.parametrize("n,m,r", [(6, 3, 1), (6, 2, 1), (5, 3, 2), (2, 3, 1), (7, 4, 3), (6, 1, 1)])
def test_plan_is_balanced_and_keeps_copies_elsewhere(n, m, r):
    partitions, members = list(range(n)), [f"m{i}" for i in range(m)]
    owned, copies = plan(partitions, members, {}, {}, r)
    _check(owned, copies, partitions, members, r)
    assert plan(partitions, members, {}, {}, r) == (owned, copies)


def test_owners_keep_their_partitions_and_a_dead_members_go_to_their_copies():
    members = ["a", "b", "c"]
    owned, copies = plan(list(range(6)), members, {}, {}, 1)
    # c dies: a and b keep what they had, and c's partitions go to the member holding their copy
    active = {m: set(owned[m]) for m in ("a", "b")}
    warm = {m: set(copies[m]) for m in ("a", "b")}
    owned2, copies2 = plan(list(range(6)), ["a", "b"], active, warm, 1)
    _check(owned2, copies2, list(range(6)), ["a", "b"], 1)
    for m in ("a", "b"):
        assert set(owned[m]) <= set(owned2[m])
    for p in owned["c"]:
        keeper = next(m for m in ("a", "b") if p in copies[m])
        assert p in owned2[keeper], f"partition {p} did not go to its warm copy"
    assert copies2 == {"a": owned2["b"], "b": owned2["a"]}   # two left: each keeps the other's copy


def test_assignor_round_trip_through_the_group_protocol():
    held = {"a": ({("t", 0), ("t", 1)}, {("t", 2)}), "b": (set(), set())}
    assignors = {m: StandbyAssignor(1, lambda m=m: held[m]) for m in held}
    members = [SimpleNamespace(member_id=m, group_instance_id=None,
                               metadata=ConsumerProtocolSubscription.decode(a.metadata({"t"}).encode()))
               for m, a in assignors.items()]
    cluster = SimpleNamespace(partitions_for_topic=lambda t: {0, 1, 2, 3} if t == "t" else None)
    out = assignors["a"].assign(cluster, members)
    for m, a in assignors.items():
        a.on_assignment(ConsumerProtocolAssignment.decode(out[m].encode()), 1)
    a_owned = {tp.partition for tp in out["a"].partitions()}
    b_owned = {tp.partition for tp in out["b"].partitions()}
    assert a_owned == {0, 1} and b_owned == {2, 3}      # a keeps its two; b takes the rest
    assert assignors["a"].standby == {("t", 2), ("t", 3)}   # its warm copy of 2 kept, and 3
    assert assignors["b"].standby == {("t", 0), ("t", 1)}
    assignors["a"].clear()
    assert assignors["a"].standby == set()


def test_foreign_user_data_counts_as_holding_nothing():
    a = StandbyAssignor(1, lambda: (set(), set()))
    members = [SimpleNamespace(member_id=m, group_instance_id=None,
                               metadata=ConsumerProtocolSubscription(0, ["t"], data))
               for m, data in (("x", b"\x00\x01garbage"), ("y", b""))]
    cluster = SimpleNamespace(partitions_for_topic=lambda t: {0, 1})
    out = a.assign(cluster, members)
    assert sorted(len(out[m].partitions()) for m in ("x", "y")) == [1, 1]
    assert orjson.loads(out["x"].user_data)["standby"] == [["t", p] for p in
                                                           sorted(tp.partition for tp in out["y"].partitions())]
