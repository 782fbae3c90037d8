"""The standby assignment (no broker): balance, stickiness, warm copies preferred, copies never on the owner."""

from __future__ import annotations

from types import SimpleNamespace

import orjson
import pytest
from kafka.protocol.consumer.metadata import ConsumerProtocolAssignment, ConsumerProtocolSubscription

from rnnstream.daemon import changelog as cl
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


class FakeConsumer:
    """A group-less consumer over in-memory partitions: ``logs[(topic, p)]`` is a list of (key, value)."""

    def __init__(self, logs):
        self.logs = logs
        self.assigned: list = []
        self.pos: dict = {}

    def assignment(self):
        return set(self.assigned)

    def assign(self, tps):
        self.assigned = list(tps)

    def beginning_offsets(self, tps, timeout_ms=None):
        return {tp: 0 for tp in tps}

    def end_offsets(self, tps, timeout_ms=None):
        return {tp: len(self.logs[(tp.topic, tp.partition)]) for tp in tps}

    def seek(self, tp, offset):
        self.pos[tp] = offset

    def close(self):
        self.closed = True

    def position(self, tp):
        return self.pos[tp]

    def poll(self, timeout_ms=0, max_records=None):
        out = {}
        for tp in self.assigned:
            log = self.logs[(tp.topic, tp.partition)]
            at = self.pos[tp]
            out[tp] = [SimpleNamespace(offset=o, key=k, value=v) for o, (k, v) in enumerate(log[at:at + 2], at)]
            self.pos[tp] = at + len(out[tp])
        return out


def _commit(topic: str, entity: str, value: bytes, offset: int) -> list:
    """One commit's records: ``entity`` alone in its bucket (of 1024) with row ``value``, arrays, the head."""
    from rnnstream.daemon.changelog import _ARRAYS, _BUCKET, _HEAD, _key, bucket_of, encode_bucket

    name = f"1024.{bucket_of(entity, 1024)}".encode()
    return [(_key(_BUCKET, 0, topic, name), encode_bucket([entity.encode()], value)[0]),
            (_key(_ARRAYS, 0, topic, b"1"), b"w"),
            (_key(_HEAD, 0, topic, b""), orjson.dumps({"next_offset": offset}))]


def test_tailer_keeps_copies_current_and_hands_them_over():
    from prometheus_client import CollectorRegistry

    from rnnstream.daemon.standby import Tailer
    from rnnstream.metrics import Metrics

    logs = {("cl", 0): _commit("in", "a", b"1", 10) + _commit("in", "b", b"2", 20),
            ("cl", 1): _commit("in", "c", b"3", 5)}
    fake = FakeConsumer(logs)
    metrics = Metrics(CollectorRegistry())
    tailer = Tailer(lambda: fake, metrics, lag_every_s=0)
    tailer.set_tasks([("hosts", "cl", "in", 0), ("hosts", "cl", "in", 1)])
    for _ in range(5):
        tailer._step(fake)
    assert tailer.positions() == {("cl", 0): 6, ("cl", 1): 3}
    assert tailer.warm() == {("in", 0), ("in", 1)}
    assert metrics.registry.get_sample_value("rnnstream_standby_partitions", {"detector": "hosts"}) == 2
    assert metrics.registry.get_sample_value("rnnstream_standby_lag_records", {"detector": "hosts"}) == 0

    logs[("cl", 0)] += _commit("in", "a", b"9", 30)[:1]      # a commit being written: no head yet
    tailer._step(fake)
    collector, position = tailer.take("cl", 0, "in")
    assert position == 7 and tailer.warm() == {("in", 1)}
    restored = collector.finish()
    assert restored.head == {"next_offset": 20}              # the last complete commit
    assert restored.entities == {"a": [b"1"], "b": [b"2"]}
    assert restored.fixups == {f"1024.{cl.bucket_of('a', 1024)}"}

    tailer.set_tasks([("hosts", "cl", "in", 1)])             # kept: stays warm, not read again
    assert tailer.positions() == {("cl", 1): 3}
    tailer.set_tasks([("hosts", "cl", "in", 0), ("hosts", "cl", "in", 1)])   # a new copy: from the start
    assert tailer.take("cl", 0, "in") is None                # not read yet
    tailer.set_tasks([("hosts", "cl", "in", 0)])
    for _ in range(5):
        tailer._step(fake)
    collector, position = tailer.take("cl", 0, "in")
    assert position == 7 and collector.finish().head == {"next_offset": 20}
    assert tailer.warm() == set()


def test_tailer_thread_reads_again_from_the_start_after_a_failure():
    from prometheus_client import CollectorRegistry

    from rnnstream.daemon.standby import Tailer
    from rnnstream.embedded.testing import wait_until
    from rnnstream.metrics import Metrics

    logs = {("cl", 0): _commit("in", "a", b"1", 10) + _commit("in", "a", b"2", 20)}
    fake = FakeConsumer(logs)
    polls = []
    real_poll = fake.poll

    def flaky_poll(**kw):
        polls.append(1)
        if len(polls) == 2:   # after one poll's records were folded in
            raise OSError("connection reset (test)")
        return real_poll(**kw)
    fake.poll = flaky_poll
    tailer = Tailer(lambda: fake, Metrics(CollectorRegistry()), poll_ms=10)
    tailer.set_tasks([("hosts", "cl", "in", 0)])
    tailer.start()
    try:
        wait_until(lambda: tailer.positions().get(("cl", 0)) == 6, 10, "the copy to catch up")
    finally:
        tailer.close()
    collector, position = tailer.take("cl", 0, "in")
    restored = collector.finish()
    assert len(polls) > 2 and position == 6 and fake.closed
    assert restored.head == {"next_offset": 20} and restored.entities == {"a": [b"2"]}
    assert restored.records == 6            # read once from the start after the failure, not folded twice
