"""Changelog records of a detector: what a commit writes, and rebuilding a detector from them."""

from __future__ import annotations

import numpy as np
import pytest

from rnnstream.config import load_config
from rnnstream.daemon import changelog as cl
from rnnstream.detector import Detector
from rnnstream.errors import StateFormatError

YAML = """
detectors:
  - name: test
    topics: [t]
    entity: host
    timestamp: {{field: ts}}
    features: [a, b]
    max_entities: {max_entities}
    model: {{type: {model}, seed: 1{extra}}}
    training: {{background: false, every_events: 60, every_seconds: 1.0e9, min_events: 16, window: 8, steps: 2}}
    scoring: {{warmup_events: 5, short_window: 3, long_window: 50, suppress_events: 2, threshold: 0.4}}
"""


def _cfg(model="gru", max_entities=100):
    """``model`` is a type name, optionally with a layer count: ``"lstm:2"``."""
    model, _, layers = model.partition(":")
    extra = ", hidden: 4" if model in ("gru", "lstm") else ""
    extra += f", layers: {layers}" if layers else ""
    return load_config(YAML.format(model=model, extra=extra, max_entities=max_entities)).detectors[0]


def _stream(n, n_entities, seed):
    rng = np.random.default_rng(seed)
    ents = [f"h{e}" for e in rng.integers(0, n_entities, n)]
    ts = 1.7e9 + np.cumsum(rng.exponential(10.0, n))
    x = rng.standard_normal((n, 2)) + 5
    return ents, x, ts


def _commit(det, log, ws, next_offset):
    """Write one commit into ``log``; ``ws`` (a one-item list) holds the writer state."""
    records, _, ws[0] = cl.commit_records(det, "t", next_offset, ws[0], fingerprints={})
    log.extend(records)
    det.state.mark_clean()
    return records


def _restore(cfg, log):
    collector = cl.Collector("t")
    for key, value in log:
        collector.add(key, value)
    restored = collector.finish()
    det = Detector(cfg)
    cl.apply(det, restored)
    return det, restored


def _same(a: Detector, b: Detector):
    names = sorted(a.state.index)
    assert names == sorted(b.state.index)
    ea, eb = a.state.export(names), b.state.export(names)
    for f in a.state.fields:
        np.testing.assert_array_equal(ea.arrays[f], eb.arrays[f], err_msg=f)
    for k, v in a.model.snapshot().items():
        np.testing.assert_array_equal(v, b.model.snapshot()[k], err_msg=k)
    assert (a.events, a.training.k, a.state.seq) == (b.events, b.training.k, b.state.seq)


@pytest.mark.parametrize("model", ["gru", "esn", "lstm", "gru:2", "lstm:3"])
def test_commits_replayed_into_a_fresh_detector_continue_identically(model):
    cfg = _cfg(model, max_entities=20)
    ents, x, ts = _stream(900, 30, seed=2)    # 30 entities for 20 slots: evictions, hence tombstones
    det, ref = Detector(cfg), Detector(cfg)
    log: list = []
    ws = [cl.WriterState()]
    try:
        ref.process(ents, x, ts)
        for a, b in ((0, 200), (200, 210), (210, 600)):
            det.process(ents[a:b], x[a:b], ts[a:b])
            _commit(det, log, ws, b)
        back, restored = _restore(cfg, log)
        assert restored.head["next_offset"] == 600 and not restored.fixups
        assert any(v is None for _, v in log), "no tombstone was written"
        _same(det, back)
        det.process(ents[600:], x[600:], ts[600:])
        back.process(ents[600:], x[600:], ts[600:])
        _same(ref, back)
        back.close()
    finally:
        det.close()
        ref.close()


def test_only_changed_entities_and_changed_arrays_are_written():
    cfg = _cfg()
    det = Detector(cfg)
    ws, log = [cl.WriterState()], []
    try:
        det.process(["a", "b", "c"], np.ones((3, 2)), np.array([1.7e9, 1.7e9 + 1, 1.7e9 + 2]))
        first = _commit(det, log, ws, 3)
        assert sorted(cl.parse_key(k)[3] for k, _ in first if k[:1] == b"e") == [b"a", b"b", b"c"]
        assert any(k[:1] == b"m" for k, _ in first)      # first commit: the shard arrays
        det.process(["b"], np.ones((1, 2)), np.array([1.7e9 + 3]))
        second = _commit(det, log, ws, 4)
        kinds = [(k[:1], cl.parse_key(k)[3]) for k, _ in second]
        assert kinds == [(b"e", b"b"), (b"h", b"")]      # one entity row and the head, no arrays
    finally:
        det.close()


def test_records_after_the_last_head_do_not_count_and_are_named_for_rewriting():
    cfg = _cfg()
    ents, x, ts = _stream(300, 5, seed=1)
    det = Detector(cfg)
    ws, log = [cl.WriterState()], []
    try:
        det.process(ents[:100], x[:100], ts[:100])
        _commit(det, log, ws, 100)
        snapshot = {e: det.state.export([e]) for e in det.state.index}
        det.process(ents[100:200], x[100:200], ts[100:200])
        records, _, _ = cl.commit_records(det, "t", 200, ws[0], fingerprints={})
        log.extend(records[:2])                              # crash after two records of the commit
        back, restored = _restore(cfg, log)
        assert restored.head["next_offset"] == 100 and len(restored.fixups) == 2
        for e, blob in snapshot.items():
            np.testing.assert_array_equal(back.state.export([e]).arrays["nmean"], blob.arrays["nmean"])
        back.close()
    finally:
        det.close()


def test_large_rows_and_arrays_are_chunked_under_the_record_limit():
    cfg = load_config(YAML.format(model="gru", extra=", hidden: 256", max_entities=10)
                      .replace("window: 8", "window: 1024").replace("min_events: 16", "min_events: 1024")
                      .replace("features: [a, b]", "features: [" + ", ".join(f"f{i}" for i in range(16)) + "]")
                      .replace("time_features", "time_features") + "    time_features: {daily_profile_bins: 1440}\n").detectors[0]
    det = Detector(cfg)
    ws, log = [cl.WriterState()], []
    try:
        det.process(["a", "b"], np.ones((2, 16)), np.array([1.7e9, 1.7e9 + 1]))
        records = _commit(det, log, ws, 2)
        assert sum(k[:1] == b"m" for k, _ in records) >= 2       # ~1 MB of weights and buffer
        assert max(len(k) + len(v or b"") for k, v in records) <= cl.CHUNK_BYTES + 64
        back, _ = _restore(cfg, log)
        _same(det, back)
        back.close()
    finally:
        det.close()


def test_rows_of_another_shape_are_refused():
    ws, log = [cl.WriterState()], []
    det = Detector(_cfg())
    try:
        det.process(["a"], np.ones((1, 2)), np.array([1.7e9]))
        _commit(det, log, ws, 1)
    finally:
        det.close()
    with pytest.raises(StateFormatError, match="bytes"):
        _restore(_cfg("esn"), log)


def test_entity_rows_longer_than_a_chunk_are_split_and_tombstoned_per_chunk(monkeypatch):
    monkeypatch.setattr(cl, "CHUNK_BYTES", 300)
    cfg = _cfg(max_entities=3)
    ents, x, ts = _stream(200, 5, seed=3)
    det = Detector(cfg)
    ws, log = [cl.WriterState()], []
    try:
        det.process(ents, x, ts)
        records = _commit(det, log, ws, 200)
        chunks = cl.RowCodec(det.state).chunks
        assert chunks >= 2 and max(len(v or b"") for _, v in records if _[:1] == b"e") <= 300
        tombstones = [k for k, v in records if v is None]
        assert len(tombstones) % chunks == 0 and tombstones
        back, _ = _restore(cfg, log)
        _same(det, back)
        back.close()
    finally:
        det.close()


def test_a_commit_that_was_not_written_changes_nothing_and_the_next_writes_it_all():
    cfg = _cfg()
    ents, x, ts = _stream(400, 5, seed=6)
    det = Detector(cfg)
    ws, log = [cl.WriterState()], []
    try:
        det.process(ents[:100], x[:100], ts[:100])
        _commit(det, log, ws, 100)
        det.process(ents[100:300], x[100:300], ts[100:300])     # retrainings: new shard arrays
        lost, _, _ = cl.commit_records(det, "t", 300, ws[0], fingerprints={})
        assert any(k[:1] == b"m" for k, _ in lost)
        log.extend(r for r in lost if r[0][:1] == b"e")         # the entity rows arrived, then a crash
        version = det.arrays_version()
        det.process(ents[300:310], x[300:310], ts[300:310])     # no retraining: the same arrays
        assert det.arrays_version() == version
        _commit(det, log, ws, 310)
        back, restored = _restore(cfg, log)
        assert restored.head["next_offset"] == 310
        _same(det, back)
        back.close()
    finally:
        det.close()
