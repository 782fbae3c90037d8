"""rnnstream reproduce: the daemon's scores of one partition, from its checkpoint and its records."""

from __future__ import annotations

import csv
import io

import pytest
from kafka import KafkaConsumer, TopicPartition

from rnnstream.config import load_config_file
from rnnstream.daemon.checkpoint import CheckpointStore
from rnnstream.daemon.decode import decode_batch
from rnnstream.detector import Detector
from rnnstream.embedded.testing import produce
from rnnstream.errors import RnnstreamError
from rnnstream.ops.reproduce import reproduce
from rnnstream.synth import generate

from .helpers import write_config

pytestmark = pytest.mark.kafka


def _all_records(bootstrap, topic):
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False)
    tp = TopicPartition(topic, 0)
    consumer.assign([tp])
    consumer.seek_to_beginning(tp)
    end = consumer.end_offsets([tp])[tp]
    records = []
    while len(records) < end:
        records += consumer.poll(timeout_ms=1000).get(tp, [])
    consumer.close()
    return records


def _score(det, cfg, records, chunk):
    """Score ``records`` in chunks the way Unit.handle does; offset -> formatted score."""
    out = {}
    for k in range(0, len(records), chunk):
        dec = decode_batch(records[k:k + chunk], cfg)
        res = det.process(dec.entities, dec.x, dec.ts)
        for j, i in enumerate(res.index.tolist()):
            out[int(dec.offsets[i])] = f"{res.score[j]:.6g}"
    return out


def _rows(path):
    with open(path, newline="") as fh:
        return {int(r["offset"]): r for r in csv.DictReader(fh)}


def test_reproduce_equals_the_daemon_from_its_checkpoint(kafka, tmp_path):
    topic = kafka.new_topic("repro", 1)
    cfg_path = write_config(tmp_path / "c.yaml", bootstrap=kafka.bootstrap, topics=(topic,), state_dir=tmp_path / "state")
    cfg = load_config_file(cfg_path)
    det_cfg = cfg.detectors[0]
    events, _ = generate(n_entities=3, n_steps=500, seed=5)
    events[700] = {**events[700], "cpu": "n/a"}                # a record the decoder refuses
    produce(kafka.bootstrap, topic, events)
    records = _all_records(kafka.bootstrap, topic)
    half = 600
    # "The daemon": scores the first part, checkpoints at offset 600, scores the rest.
    daemon = Detector(det_cfg, background=False)
    first = _score(daemon, det_cfg, records[:half], 100)
    CheckpointStore(cfg.state_dir, 2).save(det_cfg.name, (topic, 0), daemon, half)
    rest = _score(daemon, det_cfg, records[half:], 100)
    daemon.close()

    out, msg = tmp_path / "p.csv", io.StringIO()
    summary = reproduce(cfg, det_cfg.name, f"{topic}-0", out, plot=tmp_path / "e.png", entity=events[1100]["host"],
                        timeout_s=60, out=msg)
    rows = _rows(out)
    assert sorted(rows) == list(range(half, len(records)))          # from the checkpoint's offset to the end
    assert {o: r["score"] for o, r in rows.items() if not r["rejected"]} == rest   # exactly the daemon's
    assert rows[700]["rejected"] == "wrong_type"
    assert summary["records"] == len(records) - half and summary["rejected"] == 1
    assert f"next offset {half}" in msg.getvalue() and (tmp_path / "e.png").read_bytes()[:4] == b"\x89PNG"

    # from the beginning: a fresh detector over every record, as a daemon that started there
    summary = reproduce(cfg, det_cfg.name, f"{topic}-0", out, from_beginning=True, until_offset=half - 1,
                        timeout_s=60, out=io.StringIO())
    assert {o: r["score"] for o, r in _rows(out).items()} == first and summary["records"] == half

    with pytest.raises(RnnstreamError, match="starts after offset 100"):
        reproduce(cfg, det_cfg.name, f"{topic}-0", out, until_offset=100, timeout_s=30, out=io.StringIO())
    with pytest.raises(RnnstreamError, match="is not an input of detector"):
        reproduce(cfg, det_cfg.name, "other-0", out, timeout_s=30, out=io.StringIO())
