"""state inspect / export / reset on real checkpoints of Detectors fed with rnnstream.synth streams."""

from __future__ import annotations

import io
import json
import math
import shutil
from datetime import datetime

import numpy as np
import pytest

from rnnstream.config import load_config_file
from rnnstream.daemon.checkpoint import CheckpointStore
from rnnstream.detector import Detector
from rnnstream.errors import RnnstreamError
from rnnstream.kernels.calibrate import FLAG_ANOMALY, FS_HI, FS_LO, SC_FEAT, SC_N
from rnnstream.ops.state_cmd import export_main, inspect_main, inspect_state
from rnnstream.ops.state_reset import reset_main

from .helpers import synthetic, write_config

TOPIC = "metrics.hosts"
WINDOW = 8


@pytest.fixture
def world(tmp_path):
    """Two units (partitions 0 and 1) of detector 'hosts', checkpointed twice; keeps what was fed."""
    state_dir = tmp_path / "state"
    cfg_path = write_config(tmp_path / "c.yaml", state_dir=state_dir, window=WINDOW, anomalies="hosts.anomalies")
    cfg = load_config_file(cfg_path)
    det_cfg = cfg.detectors[0]
    store = CheckpointStore(state_dir, keep_generations=2)
    ents, x, ts = synthetic(n_entities=4, n_steps=500)
    x[ents.index("host-01", len(ents) - 40)] *= 5   # a spike late in host-01's series
    fed: dict[int, dict] = {}
    for partition, wanted in ((0, {"host-00", "host-01"}), (1, {"host-02", "host-03"})):
        keep = [i for i, e in enumerate(ents) if e in wanted]
        pe, px, pt = [ents[i] for i in keep], x[keep], ts[keep]
        det = Detector(det_cfg, background=False)
        half = len(pe) // 2
        det.process(pe[:half], px[:half], pt[:half])
        store.save("hosts", (TOPIC, partition), det, next_offset=half)
        res = det.process(pe[half:], px[half:], pt[half:])
        z, flag = res.z.copy(), res.flag.copy()
        store.save("hosts", (TOPIC, partition), det, next_offset=len(pe))
        fed[partition] = {"det": det, "ents": pe[half:], "x": px[half:], "ts": pt[half:], "z": z, "flag": flag,
                          "n": len(pe), "half": half}
        det.close()
    return cfg_path, cfg, store, fed


def test_inspect_reports_every_field(world):
    cfg_path, cfg, store, fed = world
    units = inspect_state(cfg)
    assert [(u.detector, u.topic, u.partition) for u in units] == [("hosts", TOPIC, 0), ("hosts", TOPIC, 1)]
    for u in units:
        det = fed[u.partition]["det"]
        assert [g.generation for g in u.generations] == [2, 1]
        assert u.newest_valid and all(g.valid for g in u.generations)
        assert u.entities == len(det.state) == 2
        assert u.model_type == "gru"
        assert u.model_version == det.model.version and det.model.version > 0   # it trained
        assert u.next_offset == fed[u.partition]["n"]
        assert 0 <= u.age_seconds < 60
        assert u.size_bytes == sum(p.stat().st_size for p in store.unit_dir("hosts", (TOPIC, u.partition)).iterdir())
    out = io.StringIO()
    assert inspect_main(str(cfg_path), as_json=True, out=out) == 0
    as_json = json.loads(out.getvalue())
    assert [u["next_offset"] for u in as_json] == [fed[0]["n"], fed[1]["n"]]
    out = io.StringIO()
    assert inspect_main(str(cfg_path), out=out) == 0
    table = out.getvalue().splitlines()
    assert table[0].split()[:3] == ["DETECTOR", "UNIT", "GENS"]
    assert table[1].split()[:4] == ["hosts", f"{TOPIC}-0", "2,1", "2"] and table[1].split()[-1] == "ok"


def test_inspect_reports_corrupt_newest(world):
    cfg_path, cfg, store, fed = world
    newest = store.generations("hosts", (TOPIC, 1))[0][1]
    data = bytearray(newest.read_bytes())
    data[len(data) // 2] ^= 0xFF
    newest.write_bytes(bytes(data))
    units = {u.partition: u for u in inspect_state(cfg)}
    assert units[0].newest_valid
    bad = units[1]
    assert not bad.newest_valid
    assert "checksum mismatch" in bad.generations[0].error
    assert bad.generation == 1                       # falls back to what the daemon would load
    assert bad.next_offset == fed[1]["half"] < fed[1]["n"]
    out = io.StringIO()
    assert inspect_main(str(cfg_path), detector="hosts", out=out) == 1
    text = out.getvalue()
    assert "CORRUPT" in text and "checksum mismatch" in text and "would restore generation 1" in text


def _entity_rows(fed_p, entity):
    """Positions of ``entity``'s events in the second (post-first-checkpoint) half fed."""
    return [i for i, e in enumerate(fed_p["ents"]) if e == entity]


@pytest.mark.parametrize("entity,partition", [("host-01", 0), ("host-02", 1)])
def test_export_entity_fields(world, entity, partition):
    cfg_path, cfg, store, fed = world
    out = io.StringIO()
    assert export_main(str(cfg_path), "hosts", entity, out=out) == 0
    got = json.loads(out.getvalue())
    f = fed[partition]
    det = f["det"]
    slot = det.state.index[entity]
    st = det.state.arrays
    assert got["entity"] == entity and got["detector"] == "hosts"
    assert got["unit"] == {"topic": TOPIC, "partition": partition}
    assert got["also_in"] == []
    assert got["model_type"] == "gru" and got["model_version"] == det.model.version
    assert got["event_count"] == int(st["count"][slot])
    assert got["last_event_epoch"] == float(st["last_ts"][slot])
    mine = _entity_rows(f, entity)
    assert datetime.fromisoformat(got["last_event_time"]).timestamp() == f["ts"][mine[-1]]
    assert got["normaliser"]["cpu"]["mean"] == float(st["nmean"][slot, 0])
    assert got["normaliser"]["cpu"]["std"] == math.sqrt(float(st["nvar"][slot, 0]))
    assert got["scorer"]["errors_seen"] == int(st["sc"][slot, SC_N])
    if any(fl & FLAG_ANOMALY for fl in f["flag"][mine]):   # the row keeps a log p-value; the export says a score
        assert got["scorer"]["alarmed"] and 0.0 <= got["scorer"]["last_alarm_score"] <= 1.0
    cpu = got["scorer"]["features"]["cpu"]["range"]
    assert cpu == {"min": float(st["sc"][slot, SC_FEAT + FS_LO]), "max": float(st["sc"][slot, SC_FEAT + FS_HI])}
    assert cpu["max"] >= f["x"][mine, 0].max() and cpu["min"] <= f["x"][mine, 0].min()
    np.testing.assert_array_equal(np.array(got["recurrent_state"]["h"], dtype=np.float32), st["h"][slot])
    assert len(got["recurrent_state"]["h"]) == 6
    # history: the entity's last WINDOW inputs, oldest first, with their anomaly flags
    hist = got["history"]
    assert len(hist) == WINDOW
    last = mine[-WINDOW:]
    np.testing.assert_allclose([h["input"]["cpu"] for h in hist], f["z"][last, 0], rtol=1e-6, atol=1e-6)
    assert [h["anomaly"] for h in hist] == [bool(fl & FLAG_ANOMALY) for fl in f["flag"][last]]
    assert set(hist[0]["input"]) == {"cpu", "time_of_day_sin", "time_of_day_cos", "day_of_week_sin",
                                     "day_of_week_cos", "log_gap", "cpu_profile_now", "cpu_profile_next"}
    assert hist[-1]["input"]["log_gap"] == pytest.approx(math.log1p(300.0) / 10.0, rel=1e-6)
    assert got["checkpoint"]["config_matches_shape"] is True


def test_export_history_has_an_anomaly_flag(world):
    """The synthetic incidents make at least one flag in some entity's recent window; check order."""
    cfg_path, cfg, store, fed = world
    flagged = 0
    for p, f in fed.items():
        for entity in set(f["ents"]):
            out = io.StringIO()
            export_main(str(cfg_path), "hosts", entity, partition=f"{TOPIC}-{p}", out=out)
            got = json.loads(out.getvalue())
            mine = _entity_rows(f, entity)[-WINDOW:]
            assert [h["anomaly"] for h in got["history"]] == [bool(fl & FLAG_ANOMALY) for fl in f["flag"][mine]]
            flagged += sum(h["anomaly"] for h in got["history"])
    total = sum(int((f["flag"] & FLAG_ANOMALY).sum()) for f in fed.values())
    assert total > 0   # the stream does raise anomalies, so the flags above were exercised
    assert flagged <= total


def test_export_absent_entity_names_what_was_searched(world):
    cfg_path, cfg, store, fed = world
    with pytest.raises(RnnstreamError) as err:
        export_main(str(cfg_path), "hosts", "host-99", out=io.StringIO())
    msg = str(err.value)
    assert "'host-99'" in msg and f"{TOPIC}-0" in msg and f"{TOPIC}-1" in msg and "(2 entities)" in msg
    with pytest.raises(RnnstreamError, match="partition 'metrics.hosts-7'"):
        export_main(str(cfg_path), "hosts", "host-01", partition=f"{TOPIC}-7", out=io.StringIO())
    with pytest.raises(RnnstreamError, match="no detector named 'nope'"):
        export_main(str(cfg_path), "nope", "host-01", out=io.StringIO())


def test_reset_refuses_without_yes(world):
    cfg_path, cfg, store, fed = world
    out = io.StringIO()
    assert reset_main(str(cfg_path), out=out) == 1
    text = out.getvalue()
    assert "would reset:" in text and f"hosts/{TOPIC}-0" in text and "--yes" in text
    assert len(inspect_state(cfg)) == 2


def test_reset_refuses_recent_checkpoint_unless_forced(world):
    cfg_path, cfg, store, fed = world
    out = io.StringIO()
    assert reset_main(str(cfg_path), yes=True, min_age=3600, out=out) == 1
    assert "< --min-age 3600s" in out.getvalue() and "--force" in out.getvalue()
    assert len(inspect_state(cfg)) == 2
    assert reset_main(str(cfg_path), yes=True, min_age=3600, force=True, out=io.StringIO()) == 0
    assert inspect_state(cfg) == []


def test_reset_moves_one_partition_and_can_be_undone(world):
    cfg_path, cfg, store, fed = world
    root = store.root
    before = {p.relative_to(root): p.read_bytes() for p in root.rglob("*.rns")}
    out = io.StringIO()
    assert reset_main(str(cfg_path), detector="hosts", partition=f"{TOPIC}-1", yes=True, out=out) == 0
    text = out.getvalue()
    assert [(u.partition) for u in inspect_state(cfg)] == [0]
    (dest,) = [d for d in root.iterdir() if d.name.startswith("reset-")]
    moved = dest / "hosts" / f"{TOPIC}-1"
    assert sorted(p.name for p in moved.iterdir()) == ["ckpt-000000000001.rns", "ckpt-000000000002.rns"]
    assert "must be stopped" in text and "committed offsets" in text
    assert f"--group ops-test --topic {TOPIC}:1 --reset-offsets --to-earliest" in text
    # a fresh daemon finds nothing for partition 1 and still restores partition 0
    assert store.load("hosts", (TOPIC, 1), cfg.detectors[0]) is None
    loaded = store.load("hosts", (TOPIC, 0), cfg.detectors[0])
    assert loaded is not None and loaded[1] == fed[0]["n"]
    loaded[0].close()
    # undo: move back, everything is as before, byte for byte
    shutil.move(str(moved), str(root / "hosts" / moved.name))
    after = {p.relative_to(root): p.read_bytes() for p in root.rglob("*.rns") if not str(p.relative_to(root)).startswith("reset-")}
    assert after == before
    assert [u.partition for u in inspect_state(cfg)] == [0, 1]


def test_nothing_to_reset(tmp_path):
    cfg_path = write_config(tmp_path / "c.yaml", state_dir=tmp_path / "empty")
    out = io.StringIO()
    assert reset_main(str(cfg_path), yes=True, out=out) == 1
    assert "nothing to reset" in out.getvalue()


def test_export_is_strict_json_even_for_non_finite_state():
    import json
    import math

    from rnnstream.ops.state_cmd import json_safe

    state = {"a": math.nan, "b": [1.0, math.inf, {"c": -math.inf}], "d": "x", "e": 2}
    text = json.dumps(json_safe(state), allow_nan=False)
    assert json.loads(text) == {"a": None, "b": [1.0, None, {"c": None}], "d": "x", "e": 2}
