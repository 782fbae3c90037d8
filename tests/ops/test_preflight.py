"""rnnstream.ops.preflight: state_dir and port checks, the state_dir lock; and their users (validate,
state reset, the daemon's start-up before it joins the group)."""

from __future__ import annotations

import io
import socket

import pytest

from rnnstream.cli import main
from rnnstream.config import load_config_text
from rnnstream.errors import RnnstreamError
from rnnstream.ops.preflight import StateLock, port_problem, state_dir_problem
from rnnstream.ops.state_reset import reset_main

from .helpers import config_text, synthetic, write_config


def test_state_dir_problems(tmp_path):
    assert state_dir_problem(tmp_path) is None
    assert state_dir_problem(tmp_path / "new" / "deeper") is None          # creatable
    afile = tmp_path / "afile"
    afile.write_text("x")
    assert "is not a directory" in state_dir_problem(afile)
    assert "not a directory" in state_dir_problem(afile / "sub")


def test_port_problem_names_a_busy_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        assert "already in use" in port_problem("127.0.0.1", port)
    assert port_problem("127.0.0.1", 0) is None


def test_lock_shared_by_daemons_exclusive_for_reset(tmp_path):
    a, b, reset = StateLock(tmp_path), StateLock(tmp_path), StateLock(tmp_path)
    assert a.acquire() and b.acquire()              # two replicas share a state_dir
    assert not reset.acquire(exclusive=True)
    a.release()
    b.release()
    assert reset.acquire(exclusive=True)
    assert not a.acquire()
    reset.release()


def _checkpointed(tmp_path):
    from rnnstream.daemon.checkpoint import CheckpointStore
    from rnnstream.detector import Detector

    cfg_path = write_config(tmp_path / "c.yaml", state_dir=tmp_path / "state")
    cfg = load_config_text(cfg_path.read_text())
    det = Detector(cfg.detectors[0], background=False)
    ents, x, ts = synthetic(n_steps=500)
    det.process(ents, x, ts)
    CheckpointStore(cfg.state_dir).save("hosts", ("metrics.hosts", 0), det, 100)
    det.close()
    return cfg_path, cfg


def test_state_reset_refuses_while_a_daemon_holds_the_lock(tmp_path):
    cfg_path, cfg = _checkpointed(tmp_path)
    daemon = StateLock(cfg.state_dir)
    assert daemon.acquire()
    out = io.StringIO()
    assert reset_main(str(cfg_path), yes=True, out=out) == 1
    assert "a running daemon holds" in out.getvalue() and (tmp_path / "state" / "hosts").is_dir()
    out = io.StringIO()
    assert reset_main(str(cfg_path), yes=True, force=True, out=out) == 0
    assert not (tmp_path / "state" / "hosts" / "metrics.hosts-0").exists()
    daemon.release()


def test_validate_checks_state_dir_and_warns_on_busy_port(tmp_path, capsys):
    afile = tmp_path / "afile"
    afile.write_text("x")
    bad = tmp_path / "bad.yaml"
    bad.write_text(config_text(state_dir=afile))
    assert main(["validate", "-c", str(bad)]) == 1
    assert "state_dir: state_dir" in capsys.readouterr().err
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        ok = tmp_path / "ok.yaml"
        ok.write_text(config_text(state_dir=tmp_path / "st") + f"metrics: {{host: 127.0.0.1, port: {port}}}\n")
        assert main(["validate", "-c", str(ok)]) == 0
        captured = capsys.readouterr()
    assert "OK: 1 detector(s)" in captured.out and "already in use" in captured.err


class _NoConsumer:
    """A consumer factory that fails the test if the daemon tries to join the group."""

    def __init__(self):
        self.calls = 0

    def __call__(self, cfg, topics):
        self.calls += 1
        raise AssertionError("the daemon joined the group before its pre-join checks")


def test_daemon_checks_state_dir_and_port_before_joining(tmp_path):
    from prometheus_client import CollectorRegistry

    from rnnstream.daemon.runner import Runner

    afile = tmp_path / "afile"
    afile.write_text("x")
    cfg = load_config_text(config_text(state_dir=afile) + "metrics: {host: 127.0.0.1, port: 0}\n")
    never = _NoConsumer()
    runner = Runner(cfg, registry=CollectorRegistry(), consumer_factory=never, producer_factory=lambda c: None)
    with pytest.raises(RnnstreamError, match="not a directory.*before joining"):
        runner.run()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        cfg = load_config_text(config_text(state_dir=tmp_path / "st") + f"metrics: {{host: 127.0.0.1, port: {port}}}\n")
        runner = Runner(cfg, registry=CollectorRegistry(), consumer_factory=never, producer_factory=lambda c: None)
        with pytest.raises(RnnstreamError, match=f"metrics port {port} on 127.0.0.1 is already in use"):
            runner.run()
    assert never.calls == 0
