"""The ``rnnstream`` command line. Each subcommand is a thin layer over a module that does the work."""

from __future__ import annotations

import argparse
import sys
import time
from typing import Sequence

from .errors import RnnstreamError


def _detector(config, name: str | None):
    try:
        return config.detector(name)
    except KeyError as exc:
        raise RnnstreamError(exc.args[0]) from None


def cmd_validate(args: argparse.Namespace) -> int:
    from .config import validate_main

    return validate_main(args.config)


def cmd_replay(args: argparse.Namespace) -> int:
    from .config import load_config
    from .replay import replay

    det = _detector(load_config(args.config), args.detector)
    started = time.perf_counter()
    summary = replay(det, args.input, args.output, args.plot)
    print(f"{summary.events} events, {summary.processed} scored, {len(summary.anomalies)} anomalies, "
          f"{sum(summary.rejected.values())} rejected {dict(summary.rejected) or ''} "
          f"in {time.perf_counter() - started:.1f}s -> {args.output}")
    if args.plot:
        print(f"plot: {args.plot}")
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    from .daemon.runner import main as run_main

    return run_main(args.config)


def cmd_warmup(args: argparse.Namespace) -> int:
    from .warmup import warmup

    took = warmup()
    print(f"kernels compiled and cached in {took:.1f}s")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="rnnstream", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("run", help="the daemon: consume Kafka, score, publish anomalies, serve metrics")
    p.add_argument("-c", "--config", required=True)
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("validate", help="check a configuration file without touching the network")
    p.add_argument("-c", "--config", required=True)
    p.set_defaults(func=cmd_validate)

    p = sub.add_parser("replay", help="score a CSV or JSON-lines file with one detector")
    p.add_argument("-c", "--config", required=True)
    p.add_argument("--input", required=True, help=".csv with a header row, or .jsonl")
    p.add_argument("--output", required=True, help="CSV of every event's prediction, error and score")
    p.add_argument("--plot", help="PNG of the first entity's values, predictions, scores and anomalies")
    p.add_argument("--detector", help="detector name (default: the first)")
    p.set_defaults(func=cmd_replay)

    p = sub.add_parser("eval", help="evaluate detection quality on a benchmark")
    evsub = p.add_subparsers(dest="benchmark", required=True)
    from .evaluation.commands import register as register_eval

    register_eval(evsub)  # eval nab | generate | corpus

    p = sub.add_parser("warmup", help="compile and cache every kernel (e.g. at image build time)")
    p.set_defaults(func=cmd_warmup)

    from .ops.commands import register

    register(sub)  # check-connection, state inspect|export|reset, plot
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except RnnstreamError as exc:
        print(f"rnnstream: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
