"""Changelog records of a detector: what a commit writes, and rebuilding a detector from them."""

from __future__ import annotations

import numpy as np
import pytest

from rnnstream.config import load_config
from rnnstream.daemon import changelog as cl
from rnnstream.detector import Detector
from rnnstream.errors import StateFormatError
from rnnstream.kernels import calibrate as C

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
    ents, x, ts = _stream(900, 30, seed=2)    # 30 entities for 20 slots: evictions
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
        assert det.state.evicted_total > 0, "no entity was evicted (its bucket rewritten without it)"
        _same(det, back)
        det.process(ents[600:], x[600:], ts[600:])
        back.process(ents[600:], x[600:], ts[600:])
        _same(ref, back)
        back.close()
    finally:
        det.close()
        ref.close()


def _bucket_rows(records) -> dict[bytes, dict[str, bytes]]:
    """bucket name -> its entities' rows, of the (unchunked) bucket records among ``records``."""
    return {cl.parse_key(k)[3]: cl.decode_bucket([v]) for k, v in records if k[:1] == b"b" and v is not None}


def test_only_buckets_of_changed_entities_and_changed_arrays_are_written():
    cfg = _cfg(max_entities=1000)
    names = [f"host-{i}" for i in range(300)]
    det = Detector(cfg)
    ws, log = [cl.WriterState()], []
    try:
        det.process(names, np.ones((300, 2)), 1.7e9 + np.arange(300.0))
        first = _commit(det, log, ws, 300)
        size = ws[0].buckets
        assert size == cl.bucket_count(300, cl.RowCodec(det.state).row_bytes) and 300 / size <= cl.BUCKET_ENTITIES
        rows = _bucket_rows(first)
        assert sorted(e for b in rows.values() for e in b) == sorted(names)   # every entity once
        assert len(rows) <= size < 300 / 4                                       # far fewer records than entities
        assert any(k[:1] == b"m" for k, _ in first)      # first commit: the shard arrays
        det.process(["host-7"], np.ones((1, 2)), np.array([1.7e9 + 400]))
        second = _commit(det, log, ws, 301)
        bucket = f"{size}.{cl.bucket_of('host-7', size)}".encode()
        assert [(k[:1], cl.parse_key(k)[3]) for k, _ in second] == [(b"b", bucket), (b"h", b"")]  # no arrays
        again = _bucket_rows(second)[bucket]
        assert sorted(again) == sorted(e for e in names if cl.bucket_of(e, size) == cl.bucket_of("host-7", size))
        assert again["host-7"] != rows[bucket]["host-7"] and again["host-0" if "host-0" in again else
                                                                   sorted(again)[0]] is not None
        back, _ = _restore(cfg, log)
        _same(det, back)
        back.close()
    finally:
        det.close()


def test_buckets_are_resized_as_entities_come_and_go_and_restore_from_a_cache_and_its_tail():
    """B grows with the entities and shrinks with them (evictions); a detector restored at some commit
    (a local cache) plus the records after it equals one restored from every record."""
    cfg = _cfg(max_entities=2000)
    det = Detector(cfg)
    ws, log = [cl.WriterState()], []
    sizes, caches = [], []
    try:
        t = 1.7e9
        for step, live in enumerate((20, 400, 1500, 1500, 30)):
            if live < len(det.state):   # evict all but ``live`` (idle ones, as the TTL would)
                det.state.drop(sorted(det.state.index)[live:])
            names = [f"e{i}" for i in range(live)]
            det.process(names, np.ones((live, 2)) * step, t + np.arange(live, dtype=float))
            t += live
            _commit(det, log, ws, 10 * (step + 1))
            sizes.append(ws[0].buckets)
            caches.append((len(log), ws[0].buckets, _restore(cfg, log)[0]))
        assert sizes[0] < sizes[1] < sizes[2] == sizes[3] and sizes[4] < sizes[3], sizes
        full, _ = _restore(cfg, log)
        _same(det, full)
        for at, size, cached in caches[:-1]:   # each cache brought forward by the records after it
            tail = cl.Collector("t")
            for key, value in log[at:]:
                tail.add(key, value)
            cl.apply(cached, tail.finish(), base_arrays_id=None, base_buckets=size)
            _same(det, cached)
            cached.close()
        full.close()
        caches[-1][2].close()
    finally:
        det.close()


def test_a_cache_loses_the_entities_of_a_bucket_rewritten_without_them():
    cfg = _cfg(max_entities=1000)
    names = [f"e{i}" for i in range(200)]
    det = Detector(cfg)
    ws, log = [cl.WriterState()], []
    try:
        det.process(names, np.ones((200, 2)), 1.7e9 + np.arange(200.0))
        _commit(det, log, ws, 200)
        at, cached = len(log), _restore(cfg, log)[0]
        det.state.drop(["e3", "e4"])                     # evicted: their buckets are rewritten
        det.process(["e5"], np.ones((1, 2)), np.array([1.7e9 + 500]))
        _commit(det, log, ws, 201)
        tail = cl.Collector("t")
        for key, value in log[at:]:
            tail.add(key, value)
        cl.apply(cached, tail.finish(), base_arrays_id=ws[0].arrays_id, base_buckets=ws[0].buckets)
        assert "e3" not in cached.state.index and "e4" not in cached.state.index
        _same(det, cached)
        cached.close()
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
        log.extend(records[:1])                              # crash after the first record of the commit
        back, restored = _restore(cfg, log)
        assert restored.head["next_offset"] == 100 and restored.fixups == {cl.parse_key(records[0][0])[3].decode()}
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
        assert max(cl.parse_key(k)[1] for k, _ in records if k[:1] == b"b") >= 1   # a bucket in chunks
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


def test_buckets_longer_than_a_chunk_are_split_and_emptied_ones_tombstoned(monkeypatch):
    monkeypatch.setattr(cl, "CHUNK_BYTES", 300)
    cfg = _cfg(max_entities=3)
    ents, x, ts = _stream(400, 5, seed=3)
    det = Detector(cfg)
    ws, log = [cl.WriterState()], []
    try:
        det.process(ents[:200], x[:200], ts[:200])
        records = _commit(det, log, ws, 200)
        assert max(cl.parse_key(k)[1] for k, _ in records if k[:1] == b"b") >= 1
        assert max(len(v or b"") for k, v in records if k[:1] == b"b") <= 300 + 4
        tombstones = []
        for a in range(200, 400, 20):           # 5 entities for 3 slots: evictions empty buckets
            det.process(ents[a:a + 20], x[a:a + 20], ts[a:a + 20])
            tombstones += [k for k, v in _commit(det, log, ws, a + 20) if v is None]
        assert tombstones
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
        log.extend(r for r in lost if r[0][:1] == b"b")         # the entity rows arrived, then a crash
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


def _as_format_2(records: list) -> list:
    """``records`` of one commit as format 2 wrote them: a record per entity (key e0), head format 2."""
    import orjson

    out = []
    for key, value in records:
        kind, _, topic, rest = cl.parse_key(key)
        if kind == b"b":
            out += [(cl._key(b"e", 0, topic, e.encode()), row) for e, row in cl.decode_bucket([value]).items()]
        elif kind == b"h":
            head = orjson.loads(value)
            head["format"] = cl.FORMAT_2
            del head["buckets"]
            out.append((key, orjson.dumps(head)))
        else:
            out.append((key, value))
    return out


def test_a_format_2_changelog_is_read_and_rewritten_as_buckets_at_the_next_commit():
    cfg = _cfg(max_entities=100)
    ents, x, ts = _stream(400, 40, seed=8)
    det = Detector(cfg)
    try:
        det.process(ents[:200], x[:200], ts[:200])
        records, _, _ = cl.commit_records(det, "t", 200, cl.WriterState(), fingerprints={})
        det.state.mark_clean()
        log = _as_format_2(records)
        back, restored = _restore(cfg, log)
        _same(det, back)
        assert len(restored.legacy) == len(det.state)
        from rnnstream.daemon.statelog import _writer_from

        ws = [_writer_from(restored)]
        back.process(ents[200:210], x[200:210], ts[200:210])
        det.process(ents[200:210], x[200:210], ts[200:210])
        migration = _commit(back, log, ws, 210)
        assert sum(k[:1] == b"e" and v is None for k, v in migration) == len(restored.legacy)
        again, restored = _restore(cfg, log)
        assert not restored.legacy and restored.head["format"] == cl.FORMAT
        _same(det, again)
        latest = dict(log)                                   # compacted: the last record of each key
        compacted = [(k, v) for k, v in log if latest[k] is v and v is not None]
        final, _ = _restore(cfg, compacted)
        _same(det, final)
        for d in (back, again, final):
            d.close()
    finally:
        det.close()


@pytest.mark.parametrize("layout", [1, 3, 4])
def test_a_changelog_of_the_previous_scorer_layout_is_restored_and_rewritten_whole(layout, legacy_scorer_rows):
    """Buckets an earlier build wrote (its scorer rows shorter) restore with what they learnt, upgraded as
    a checkpoint is, whether the head records their layout (3) or not (1); the first commit after
    rewrites every bucket, so a later restore from the topic reads one layout (a commit of the changed
    bucket alone would leave the others unreadable)."""
    import orjson

    cfg = _cfg(max_entities=1000)
    names = [f"host-{i}" for i in range(300)]
    det = Detector(cfg)
    ws, log = [cl.WriterState()], []
    try:
        det.process(names, np.random.default_rng(3).standard_normal((300, 2)) + 5, 1.7e9 + np.arange(300.0))
        _commit(det, log, ws, 300)
        assert ws[0].buckets > 1
        codec = cl.RowCodec(det.state)
        bins = int(cfg.time_features.daily_profile_bins)
        width = legacy_scorer_rows(np.zeros((1, det.state.fields["sc"].shape[0])), 2, bins, layout).shape[1]
        recorded = layout not in C.UNRECORDED_LAYOUTS
        assert width == det.scorer_width(layout) and (width in det.legacy_scorer_widths()) != recorded
        old = cl.RowCodec(det.state, (width, None))
        legacy_log = []
        for key, value in log:   # the same commit as the earlier build wrote it
            if key[:1] == b"b" and value is not None:
                rows = cl.decode_bucket([value])
                blob = codec.decode(list(rows), list(rows.values()))
                blob.arrays["sc"] = legacy_scorer_rows(blob.arrays["sc"], 2, bins, layout)
                (value,) = cl.encode_bucket([e.encode() for e in rows], old.encode_all(blob))
            elif key[:1] == b"h":   # (builds before layout 3 recorded none)
                head = orjson.loads(value)
                head["meta"].pop("scorer_layout")
                if recorded:
                    head["meta"]["scorer_layout"] = layout
                value = orjson.dumps({**head, "row_bytes": old.row_bytes})
            legacy_log.append((key, value))
        back, restored = _restore(cfg, legacy_log)
        assert restored.head["row_bytes"] == old.row_bytes != codec.row_bytes
        got, want = back.state.export(names), det.state.export(names)
        for f in det.state.fields:
            if f != "sc":
                np.testing.assert_array_equal(got.arrays[f], want.arrays[f], err_msg=f)
        np.testing.assert_array_equal(got.arrays["sc"],
                                      det.upgrade_scorer_rows(legacy_scorer_rows(want.arrays["sc"], 2, bins, layout),
                                                              layout if recorded else None))
        h = restored.head
        writer = [cl.WriterState(int(h["parity"]), h["arrays_id"], int(h["chunks"]), buckets=h["buckets"],
                                 row_bytes=h["row_bytes"])]
        back.process(["host-7"], np.ones((1, 2)), np.array([1.7e9 + 400]))
        records = _commit(back, legacy_log, writer, 301)
        assert len(_bucket_rows(records)) == writer[0].buckets   # every bucket, not only host-7's
        again, _ = _restore(cfg, legacy_log)
        _same(back, again)
        again.close()
        back.close()
    finally:
        det.close()
