"""The batched scores format: version 2 round trips, reads version 1, refuses what it cannot read."""

from __future__ import annotations

import numpy as np
import orjson
import pytest

from rnnstream.daemon import scoresbatch


def _events(n: int, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    offsets = np.cumsum(rng.integers(1, 3, n)) + 10_000        # gaps: refused events have no score
    return {
        "offsets": offsets,
        "entities": [rng.choice(["web-17", "wéb-3", "ключ", "db\n\"1\"\\", "🙂", ""]) for _ in range(n)],
        "event_time": 1.7e9 + rng.normal(0, 1e6, n),
        "score": rng.random(n),
        "error": rng.normal(0, 1, n) * 10.0 ** rng.integers(-300, 300, n),
        "anomaly": rng.random(n) < 0.2,
        "suppressed": rng.random(n) < 0.2,
        "anomalous": rng.random(n) < 0.3,
        "model_version": np.sort(rng.integers(0, 4, n)),
    }


def _encode(ev: dict, lo: int = 0, hi: int | None = None) -> bytes:
    s = slice(lo, hi)
    return scoresbatch.encode("cpu", "host-a:4711", "metrics.hosts", 3, ev["offsets"][s], ev["entities"][s],
                              ev["event_time"][s], ev["score"][s], ev["error"][s], ev["anomaly"][s],
                              ev["suppressed"][s], ev["anomalous"][s], ev["model_version"][s])


def _same(b: dict, ev: dict) -> None:
    assert b["offset"].tolist() == ev["offsets"].tolist()
    assert b["entity"] == list(ev["entities"])
    for name in ("event_time", "score", "error"):
        assert b[name].dtype == np.float64 and b[name].tobytes() == np.asarray(ev[name], np.float64).tobytes()
    assert b["anomaly"].tolist() == ev["anomaly"].tolist() and b["suppressed"].tolist() == ev["suppressed"].tolist()
    assert b["anomalous"].tolist() == ev["anomalous"].tolist()
    assert b["model_version"].tolist() == ev["model_version"].tolist()


@pytest.mark.parametrize("seed", range(20))
def test_version_2_round_trips_every_value_bit_for_bit(seed):
    n = [1, 2, 7, 300, 5000][seed % 5]
    ev = _events(n, seed)
    b = scoresbatch.decode(_encode(ev))
    assert (b["schema"], b["version"], b["detector"], b["instance_id"], b["count"]) == (
        "rnnstream.scores", 2, "cpu", "host-a:4711", n)
    assert b["source"] == {"topic": "metrics.hosts", "partition": 3, "first_offset": int(ev["offsets"][0]),
                           "last_offset": int(ev["offsets"][-1])}
    _same(b, ev)


def test_extreme_finite_values_and_signed_zeros_keep_their_bits():
    values = np.array([1e308, -1e308, 5e-324, -0.0, 0.0, 1.7976931348623157e308, np.nextafter(1.0, 0.0)])
    n = len(values)
    ev = {"offsets": np.arange(n), "entities": ["e"] * n, "event_time": values, "score": values[::-1].copy(),
          "error": values, "anomaly": np.ones(n, bool), "suppressed": np.zeros(n, bool), "anomalous": np.ones(n, bool),
          "model_version": np.full(n, 2**62)}
    _same(scoresbatch.decode(_encode(ev)), ev)


def test_the_layout_is_the_documented_one():
    ev = {"offsets": np.array([81723, 81724, 81726]), "entities": ["web-17", "web-3", "web-17"],
          "event_time": np.array([1795595460.0, 1795595460.5, 1795595520.0]), "score": np.array([0.12, 0.03, 0.9993]),
          "error": np.array([0.4, 0.1, 4.71]), "anomaly": np.array([False, False, True]),
          "suppressed": np.array([False, True, False]), "anomalous": np.array([False, True, True]),
          "model_version": np.array([12, 12, 13])}
    value = _encode(ev)
    end = value.index(b"\n")
    assert (end + 1) % 8 == 0 and value[:end].rstrip(b" ").endswith(b"}")       # columns 8-aligned
    assert orjson.loads(value[:end]) == {
        "schema": "rnnstream.scores", "version": 2, "detector": "cpu", "instance_id": "host-a:4711",
        "source": {"topic": "metrics.hosts", "partition": 3, "first_offset": 81723, "last_offset": 81726},
        "count": 3, "offset_runs": [[81723, 2], [81726, 1]], "model_version_runs": [[12, 2], [13, 1]],
        "entity": ["web-17", "web-3", "web-17"]}
    body = value[end + 1:]
    assert len(body) == 3 * 25
    assert np.frombuffer(body, "<f8", 3, 0).tolist() == ev["event_time"].tolist()
    assert np.frombuffer(body, "<f8", 3, 24).tolist() == ev["score"].tolist()
    assert np.frombuffer(body, "<f8", 3, 48).tolist() == ev["error"].tolist()
    assert list(body[72:]) == [0, 6, 5]                  # bit 0 anomaly, bit 1 suppressed, bit 2 anomalous


def test_the_same_events_give_the_same_bytes_and_any_batching_the_same_values():
    ev = _events(1000, 7)
    assert _encode(ev) == _encode(ev)
    whole = list(scoresbatch.events(_encode(ev)))
    for cuts in ([0, 1, 1000], [0, 333, 334, 999, 1000], [0, 500, 1000]):
        parts = [e for lo, hi in zip(cuts, cuts[1:]) for e in scoresbatch.events(_encode(ev, lo, hi))]
        assert parts == whole


def test_an_empty_batch_round_trips():
    ev = {k: (v[:0] if not isinstance(v, list) else []) for k, v in _events(3).items()}
    b = scoresbatch.decode(_encode(ev))
    assert b["count"] == 0 and b["source"]["first_offset"] is None and list(scoresbatch.events(_encode(ev))) == []
    _same(b, ev)


def test_events_are_the_per_record_formats_values():
    ev = _events(3, 1)
    got = list(scoresbatch.events(_encode(ev)))
    assert [e["event_id"] for e in got] == [f"cpu:metrics.hosts:3:{o}" for o in ev["offsets"].tolist()]
    assert got[1] == {"event_id": got[1]["event_id"], "detector": "cpu", "entity": ev["entities"][1],
                      "event_time": float(ev["event_time"][1]), "score": float(ev["score"][1]),
                      "error": float(ev["error"][1]), "anomaly": bool(ev["anomaly"][1]),
                      "suppressed": bool(ev["suppressed"][1]), "anomalous": bool(ev["anomalous"][1]),
                      "model_version": int(ev["model_version"][1])}
    assert all(type(e["model_version"]) is int and type(e["anomaly"]) is bool for e in got)


def test_version_1_as_documented_is_still_read():
    v1 = orjson.dumps({
        "schema": "rnnstream.scores", "version": 1, "detector": "cpu", "instance_id": "host-a:4711",
        "source": {"topic": "metrics.hosts", "partition": 3, "first_offset": 81723, "last_offset": 81725},
        "count": 3, "offset": [81723, 81724, 81725], "entity": ["web-17", "web-3", "web-17"],
        "event_time": [1795595460.0, 1795595460.5, 1795595520.0], "score": [0.12, 0.03, 0.9993],
        "error": [0.4, 0.1, 4.71], "anomaly": [False, False, True], "suppressed": [False, False, False],
        "model_version": [12, 12, 12]})
    b = scoresbatch.decode(v1)
    assert b["version"] == 1 and b["offset"].tolist() == [81723, 81724, 81725]
    assert b["score"].tolist() == [0.12, 0.03, 0.9993] and b["anomaly"].tolist() == [False, False, True]
    assert [e["event_id"] for e in scoresbatch.events(v1)] == ["cpu:metrics.hosts:3:81723", "cpu:metrics.hosts:3:81724",
                                                                "cpu:metrics.hosts:3:81725"]
    assert "anomalous" not in b and all("anomalous" not in e for e in scoresbatch.events(v1))   # version 1 had none


@pytest.mark.parametrize("value, why", [
    (b'{"event_id":"cpu:t:0:1"}', "not a batched scores value"),
    (b"\x00\x01binary", "not a batched scores value"),
    (b'{"schema":"rnnstream.scores","version":3,"count":0}\n', "version 3"),
    (b'{"schema":"rnnstream.scores","version":2,"detector":"d","instance_id":"i","source":{},"count":1,'
     b'"offset_runs":[[1,1]],"model_version_runs":[[0,1]],"entity":["a"]}\n' + bytes(24), "needs 25 bytes"),
    (b'{"schema":"rnnstream.scores","version":2,"detector":"d","instance_id":"i","source":{},"count":1,'
     b'"offset_runs":[[1,2]],"model_version_runs":[[0,1]],"entity":["a"]}\n' + bytes(25), "offset: 2 values"),
    (b'{"schema":"rnnstream.scores","version":2,"detector":"d","instance_id":"i","source":{},"count":1,'
     b'"offset_runs":[[1,1]],"model_version_runs":[[0,0],[0,1]],"entity":["a"]}\n' + bytes(25), "length < 1"),
])
def test_what_is_not_a_readable_batch_is_refused_with_the_reason(value, why):
    with pytest.raises(ValueError, match=why):
        scoresbatch.decode(value)
