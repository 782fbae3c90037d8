"""When the loop counts as behind, so that scores wait for the next polls' in one produce request
(``Runner._behind``, ``Outputs.hold_scores``)."""

from __future__ import annotations

from types import SimpleNamespace

from kafka import TopicPartition

from rnnstream.daemon.runner import Runner


class _Consumer:
    def __init__(self, highwater):
        self.marks = highwater

    def highwater(self, tp):
        return self.marks.get(tp)


def _records(first: int, n: int):
    return [SimpleNamespace(offset=o) for o in range(first, first + n)]


def test_behind_when_a_full_polls_records_wait_in_a_partition_of_the_poll():
    a, b = TopicPartition("t", 0), TopicPartition("t", 1)
    cfg = SimpleNamespace(kafka=SimpleNamespace(max_poll_records=5000))
    poll = {a: _records(100, 300), b: _records(0, 10)}
    behind = lambda marks: Runner._behind(SimpleNamespace(config=cfg, consumer=_Consumer(marks)), poll)  # noqa: E731
    assert behind({a: 400 + 5000, b: 10})              # 5,000 records after this poll's last in t-0
    assert not behind({a: 400 + 4999, b: 10 + 4999})   # fewer than a full poll anywhere
    assert not behind({})                              # no fetch has told the highwater mark yet
    assert behind({a: 400, b: 10 + 5000})
