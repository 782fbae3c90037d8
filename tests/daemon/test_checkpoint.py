"""CheckpointStore: exact resume, generations, corrupt-file fallback, refusing a different model shape."""

from __future__ import annotations

import logging

import numpy as np
import pytest
from kafka import TopicPartition
from prometheus_client import CollectorRegistry

from rnnstream.config import load_config
from rnnstream.daemon.checkpoint import CheckpointStore, restore_detector, snapshot_detector
from rnnstream.detector import Detector
from rnnstream.metrics import Metrics

TP = TopicPartition("metrics.hosts", 2)


def detector_cfg(hidden: int = 8, threshold: float = 0.5, background: bool = False, max_entities: int = 64,
                 model: str = "type: gru"):
    text = f"""
detectors:
  - name: hosts
    topics: [metrics.hosts]
    entity: host
    timestamp: {{field: ts}}
    features: [cpu, mem]
    model: {{{model}, hidden: {hidden}, seed: 3}}
    training: {{enabled: true, background: {str(background).lower()}, skip_when_busy: false, every_events: 150,
                every_seconds: 1.0e9, min_events: 100, window: 8, batch_windows: 8, steps: 3,
                buffer_windows: 16}}
    scoring: {{threshold: {threshold}, warmup_events: 5, long_window: 50}}
    max_entities: {max_entities}
"""
    return load_config(text).detectors[0]


def stream(n: int, n_entities: int = 12, seed: int = 0):
    rng = np.random.default_rng(seed)
    ents = [f"h{int(i)}" for i in rng.integers(0, n_entities, n)]
    t = 1_700_000_000 + np.arange(n) * 10.0
    x = np.column_stack([np.sin(np.arange(n) / 7) + 0.1 * rng.standard_normal(n),
                         50 + rng.standard_normal(n)])
    x[n // 2 + 17, 0] = 40.0  # a spike after the restart point
    return ents, x, t


def run(det: Detector, ents, x, t, batch: int = 7):
    """Outputs of ``det`` over the events, copied (process() reuses its buffers)."""
    outs = []
    for a in range(0, len(ents), batch):
        r = det.process(ents[a:a + batch], x[a:a + batch], t[a:a + batch])
        # Not model_version: BatchResult reports one version per batch, so it depends on batching.
        outs.append(np.column_stack([r.pred, r.z, r.err, r.score, r.flag]))
    return np.concatenate(outs)


@pytest.mark.parametrize("background,max_entities,half", [
    (False, 64, 611),   # restart mid-batch: batching does not matter without eviction
    (True, 64, 611),    # background fit pending at the checkpoint
    (False, 10, 609),   # 12 entities in 10 slots: eviction too (same batch boundaries, see below)
])
def test_resume_is_bit_identical(tmp_path, background, max_entities, half, model="type: gru"):
    # Which entity is evicted depends on which entities share its micro-batch (those are protected),
    # so with eviction the restart must fall on a boundary of the uninterrupted run's batches.
    cfg = detector_cfg(background=background, max_entities=max_entities, model=model)
    ents, x, t = stream(1200)
    full = Detector(cfg, background=background)
    try:
        expected = run(full, ents, x, t)
        full_version = full.model.version
    finally:
        full.close()
    assert full_version >= 5, "the stream must trigger several retrainings"

    first = Detector(cfg, background=background)
    try:
        head = run(first, ents[:half], x[:half], t[:half])
        store = CheckpointStore(tmp_path, 2)
        store.save("hosts", TP, first, next_offset=half)
    finally:
        first.close()
    loaded = store.load("hosts", TP, cfg, background=background)
    assert loaded is not None
    second, next_offset = loaded
    try:
        assert next_offset == half
        version_at_restart = second.model.version
        tail = run(second, ents[half:], x[half:], t[half:])
        assert second.model.version == full_version > version_at_restart  # retrained after the restart
    finally:
        second.close()
    got = np.concatenate([head, tail])
    assert got.tobytes() == expected.tobytes()


@pytest.mark.parametrize("model", ["type: lstm", "type: gru, layers: 2", "type: lstm, layers: 2"])
def test_resume_is_bit_identical_with_cell_state_and_stacked_layers(tmp_path, model):
    """The LSTM's cell state and every layer's hidden state are checkpointed (with eviction too)."""
    test_resume_is_bit_identical(tmp_path, False, 10, 609, model=model)


def test_snapshot_keeps_slots_and_counters():
    cfg = detector_cfg(max_entities=10)
    ents, x, t = stream(400)
    det = Detector(cfg)
    try:
        run(det, ents, x, t)
        arrays, meta = snapshot_detector(det)
        back = restore_detector(cfg, arrays, meta)
        try:
            assert back.state.index == det.state.index
            assert back.state._free == det.state._free
            assert back.state.seq == det.state.seq and back.state.evicted_total == det.state.evicted_total > 0
            for k, v in det.state.arrays.items():
                assert back.state.arrays[k].tobytes() == v.tobytes()
            for k, v in det.model.weights.items():
                assert back.model.weights[k].tobytes() == v.tobytes()
            assert back.model.version == det.model.version
            assert (back.training.events, back.training.next_at, back.training.k, back.training.seen_seq) == \
                (det.training.events, det.training.next_at, det.training.k, det.training.seen_seq)
            assert back.watermark == det.watermark
        finally:
            back.close()
    finally:
        det.close()


def _trained(cfg, n=300):
    det = Detector(cfg)
    run(det, *stream(n))
    return det


def test_generations_kept_and_deleted(tmp_path):
    cfg = detector_cfg()
    det = _trained(cfg)
    store = CheckpointStore(tmp_path, keep_generations=3)
    try:
        paths = [store.save("hosts", TP, det, next_offset=100 + i) for i in range(5)]
    finally:
        det.close()
    unit = tmp_path / "hosts" / "metrics.hosts-2"
    assert paths[-1] == unit / "ckpt-000000000005.rns"
    assert sorted(p.name for p in unit.iterdir()) == [f"ckpt-{g:012d}.rns" for g in (3, 4, 5)]
    assert [g for g, _ in store.generations("hosts", TP)] == [5, 4, 3]
    d, offset = store.load("hosts", TP, cfg)
    d.close()
    assert offset == 104
    assert store.load("hosts", TopicPartition("metrics.hosts", 1), cfg) is None


def test_corrupt_newest_falls_back(tmp_path, caplog):
    cfg = detector_cfg()
    det = _trained(cfg)
    registry = CollectorRegistry()
    metrics = Metrics(registry)
    store = CheckpointStore(tmp_path, 2, metrics=metrics)
    try:
        store.save("hosts", TP, det, next_offset=300)
        newest = store.save("hosts", TP, det, next_offset=400)
    finally:
        det.close()
    data = bytearray(newest.read_bytes())
    data[len(data) // 2] ^= 0x01
    newest.write_bytes(bytes(data))
    with caplog.at_level(logging.ERROR, logger="rnnstream.daemon.checkpoint"):
        d, offset = store.load("hosts", TP, cfg)
    d.close()
    assert offset == 300
    assert store.corrupt_total == 1
    assert registry.get_sample_value("rnnstream_checkpoint_corrupt_total") == 1
    assert any(getattr(r, "path", None) == str(newest) and "checksum" in r.reason for r in caplog.records)
    # Moved aside, byte for byte: a second load does not count it again, rotation cannot delete it.
    aside = newest.parent / "corrupt" / newest.name
    assert aside.read_bytes() == bytes(data) and not newest.exists()
    d, offset = store.load("hosts", TP, cfg)
    d.close()
    assert (offset, store.corrupt_total) == (300, 1)
    det = _trained(cfg)
    try:
        for k in range(3):
            store.save("hosts", TP, det, next_offset=500 + k)
    finally:
        det.close()
    assert aside.read_bytes() == bytes(data)

    # Every generation unreadable: nothing to restore; each file counted once.
    for _, p in store.generations("hosts", TP):
        p.write_bytes(p.read_bytes()[:100])
    assert store.load("hosts", TP, cfg) is None
    assert store.load("hosts", TP, cfg) is None
    assert store.corrupt_total == 3
    assert len(list((newest.parent / "corrupt").iterdir())) == 3


def test_different_hidden_size_refused_scoring_change_accepted(tmp_path, caplog):
    cfg = detector_cfg(hidden=8)
    det = _trained(cfg)
    store = CheckpointStore(tmp_path)
    try:
        store.save("hosts", TP, det, next_offset=300)
        weights = {k: v.copy() for k, v in det.model.weights.items()}
    finally:
        det.close()
    with caplog.at_level(logging.WARNING):
        assert store.load("hosts", TP, detector_cfg(hidden=16)) is None
    assert any("shape changed" in r.getMessage() for r in caplog.records)
    assert store.corrupt_total == 0

    d, offset = store.load("hosts", TP, detector_cfg(hidden=8, threshold=0.9))
    try:
        assert offset == 300 and d.cfg.scoring.threshold == 0.9
        for k, v in weights.items():
            assert d.model.weights[k].tobytes() == v.tobytes()
    finally:
        d.close()


def test_log_features_are_part_of_the_shape(tmp_path, caplog):
    """Values on a log scale make other state: a checkpoint made without them is refused with them, and
    the fingerprint without any is the one of the builds before log_features (their checkpoints restore)."""
    import dataclasses

    from rnnstream.daemon.checkpoint import _digest, shape_fingerprint

    cfg = detector_cfg()
    logged = dataclasses.replace(cfg, log_features=("mem",))
    assert shape_fingerprint(cfg) == _digest({"model": cfg.model, "features": list(cfg.features),
                                              "time_features": cfg.time_features, "window": cfg.training.window})
    assert shape_fingerprint(logged) != shape_fingerprint(cfg)
    det = _trained(cfg)
    store = CheckpointStore(tmp_path)
    try:
        store.save("hosts", TP, det, next_offset=300)
    finally:
        det.close()
    with caplog.at_level(logging.WARNING):
        assert store.load("hosts", TP, logged) is None
    assert any("shape changed" in r.getMessage() for r in caplog.records)


def test_checkpoint_of_an_older_format_refused_not_corrupt(tmp_path, caplog):
    """A checkpoint written before the compact history ring (state file format 1): refused with what
    happened, the partition starts afresh, and the file is neither counted corrupt nor moved."""
    import struct

    import crc32c

    from rnnstream.state import fileformat as ff

    cfg = detector_cfg()
    det = _trained(cfg)
    store = CheckpointStore(tmp_path)
    try:
        path = store.save("hosts", TP, det, next_offset=300)
    finally:
        det.close()
    body = bytearray(path.read_bytes()[:-4])
    struct.pack_into("<I", body, 8, ff.VERSION - 1)
    old = bytes(body) + struct.pack("<I", crc32c.crc32c(bytes(body)))
    path.write_bytes(old)
    with caplog.at_level(logging.WARNING):
        assert store.load("hosts", TP, cfg) is None
    refused = [r for r in caplog.records if "another rnnstream version" in r.getMessage()]
    assert refused and "older rnnstream" in refused[0].reason
    assert store.corrupt_total == 0 and path.read_bytes() == old


def test_lowered_max_entities_refused(tmp_path):
    cfg = detector_cfg(max_entities=64)
    det = _trained(cfg)
    store = CheckpointStore(tmp_path)
    try:
        assert det.state.capacity > 8
        store.save("hosts", TP, det, next_offset=300)
    finally:
        det.close()
    assert store.load("hosts", TP, detector_cfg(max_entities=8)) is None
    assert store.corrupt_total == 0


def test_lowered_sample_entities_restores_fewer_rings(tmp_path):
    """A smaller training.sample_entities is a setting, not a corrupt file: the checkpoint is restored
    and only that many entities keep their history rings."""
    import dataclasses

    cfg = detector_cfg()
    det = _trained(cfg)
    store = CheckpointStore(tmp_path)
    try:
        ringed = int((det.state["pool_row"] > 0).sum())
        assert ringed > 3
        store.save("hosts", TP, det, next_offset=300)
    finally:
        det.close()
    small = dataclasses.replace(cfg, training=dataclasses.replace(cfg.training, sample_entities=3))
    d, offset = store.load("hosts", TP, small)
    try:
        assert offset == 300 and store.corrupt_total == 0
        assert int((d.state["pool_row"] > 0).sum()) == d.state.pool_used() == 3 and len(d.state) == ringed
        ents, x, t = stream(100, seed=5)
        run(d, ents, x, t)
        assert d.state.pool_used() == 3
    finally:
        d.close()


def test_prepare_captures_the_state_then_and_write_makes_it_a_generation(tmp_path):
    """The background checkpoint's halves: ``prepare`` copies the state at that moment (the detector
    may go on at once), ``write`` publishes it as the next generation and rotates the old ones."""
    cfg = detector_cfg()
    tp = TopicPartition("metrics.hosts", 0)
    ents, x, t = stream(600)
    store = CheckpointStore(tmp_path, keep_generations=2)
    det = Detector(cfg, background=False)
    try:
        run(det, ents[:300], x[:300], t[:300])
        store.save("hosts", tp, det, 300)                      # generation 1
        prepared = store.prepare("hosts", tp, det, 450)       # generation 2, at offset 450 ...
        at_prepare = det.snapshot()[0]
        at_prepare = {k: np.array(v) for k, v in at_prepare.items()}
        run(det, ents[300:], x[300:], t[300:])                 # ... while the detector goes on
        assert [g for g, _ in store.generations("hosts", tp)] == [1]   # nothing visible before write
        path = store.write(prepared)
        assert [g for g, _ in store.generations("hosts", tp)] == [2, 1] and path.name.endswith("000002.rns")
        loaded, next_offset = store.load("hosts", tp, cfg)
        try:
            assert next_offset == 450
            got = loaded.snapshot()[0]
            for k, v in at_prepare.items():
                np.testing.assert_array_equal(got[k], v, err_msg=k)
        finally:
            loaded.close()
        store.write(store.prepare("hosts", tp, det, 600))
        assert [g for g, _ in store.generations("hosts", tp)] == [3, 2]   # rotated to keep_generations
    finally:
        det.close()
