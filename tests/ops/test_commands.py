"""The argparse wiring: every subcommand parses and reaches its function (through a scratch parser)."""

from __future__ import annotations

import argparse
import io
from contextlib import redirect_stdout

import pytest

from rnnstream.ops.commands import register

from .helpers import write_config


def parse(argv):
    parser = argparse.ArgumentParser(prog="rnnstream")
    register(parser.add_subparsers(dest="command", required=True))
    return parser.parse_args(argv)


def test_parses_every_subcommand():
    a = parse(["check-connection", "-c", "f.yaml", "--timeout", "2"])
    assert (a.func.__name__, a.config, a.timeout) == ("cmd_check_connection", "f.yaml", 2.0)
    a = parse(["state", "inspect", "-c", "f.yaml", "--json"])
    assert (a.func.__name__, a.json, a.detector) == ("cmd_state_inspect", True, None)
    a = parse(["state", "export", "-c", "f", "--detector", "d", "--entity", "e", "--partition", "t-1"])
    assert (a.func.__name__, a.partition) == ("cmd_state_export", "t-1")
    a = parse(["state", "reset", "-c", "f", "--min-age", "60", "--yes"])
    assert (a.func.__name__, a.min_age, a.yes, a.force) == ("cmd_state_reset", 60.0, True, False)
    a = parse(["plot", "--scores", "s.csv", "--entity", "e", "--out", "x.png"])
    assert (a.func.__name__, a.anomalies, a.max_records) == ("cmd_plot", False, 100_000)
    with pytest.raises(SystemExit):
        parse(["plot", "--scores", "s.csv", "--anomalies", "--entity", "e", "--out", "x.png"])


def test_reset_without_yes_through_argparse(tmp_path):
    cfg = write_config(tmp_path / "c.yaml", state_dir=tmp_path / "state", with_kafka=False)
    (tmp_path / "state" / "hosts" / "metrics.hosts-0").mkdir(parents=True)
    args = parse(["state", "reset", "-c", str(cfg)])
    out = io.StringIO()
    with redirect_stdout(out):
        assert args.func(args) == 1
    assert "would reset:" in out.getvalue() and (tmp_path / "state" / "hosts" / "metrics.hosts-0").is_dir()
