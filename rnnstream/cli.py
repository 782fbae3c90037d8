"""The ``rnnstream`` command line. Each subcommand is a thin layer over a module that does the work.

Exit codes: 0 success; 1 the command ran and found a problem (invalid config, nothing scored, a failed
check); 2 a usage error or a refusal with a message (bad path, unknown detector). A user mistake
prints one ``rnnstream: ...`` message, never a traceback; a closed stdout (``| head``) ends quietly.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from typing import Sequence

from . import __version__
from .errors import RnnstreamError

DESCRIPTION = ("Real-time anomaly detection on Kafka streams with per-entity recurrent networks. "
               "Each subcommand has its own --help with examples.")


def _detector(config, name: str | None):
    try:
        return config.detector(name)
    except KeyError as exc:
        raise RnnstreamError(exc.args[0]) from None


def cmd_validate(args: argparse.Namespace) -> int:
    from .config import load_config_file
    from .errors import ConfigError
    from .ops.preflight import port_problem, state_dir_problem

    try:
        config = load_config_file(args.config)
    except ConfigError as err:
        print(err, file=sys.stderr)
        return 1
    # What `run` would trip over before joining the group (daemon configs only). A state_dir that is
    # a file is wrong for every user; permissions and a busy port are warnings, since validate may run
    # as another user, or next to this config's running daemon before a reload.
    if config.kafka is not None:
        problem = state_dir_problem(config.state_dir)
        busy = port_problem(config.metrics.host, config.metrics.port)
        if problem and "not a directory" in problem:
            print(f"{args.config}: 1 problem(s)\n  state_dir: {problem}", file=sys.stderr)
            return 1
        for key, warning in (("state_dir", problem), ("metrics.port", busy)):
            if warning:
                print(f"{args.config}: warning: {key}: {warning}", file=sys.stderr)
    print(f"OK: {len(config.detectors)} detector(s)")
    return 0


def cmd_replay(args: argparse.Namespace) -> int:
    from .config import load_config
    from .replay import check_paths, replay

    det = _detector(load_config(args.config), args.detector)
    check_paths(args.input, args.output, args.plot)
    if args.entity is not None and args.plot is None:
        raise RnnstreamError("--entity chooses what --plot draws; give --plot FILE.png too")
    started = time.perf_counter()
    summary = replay(det, args.input, args.output, args.plot, entity=args.entity)
    print(f"{summary.events} events, {summary.processed} scored, {len(summary.anomalies)} anomalies, "
          f"{sum(summary.rejected.values())} rejected {dict(summary.rejected) or ''} "
          f"in {time.perf_counter() - started:.1f}s -> {args.output}")
    if summary.rejected:
        print(("nothing was scored; " if not summary.processed else "")
              + "rows refused, by reason (first example of each):\n" + summary.explain_rejections(args.input),
              file=sys.stderr)
    if not summary.processed:
        print(f"rnnstream: no event of {args.input} was scored (detector {det.name!r}: entity "
              f"{det.entity.field or '<key>'}, timestamp {det.timestamp.field or '<record>'} "
              f"unit {det.timestamp.unit}, features {', '.join(det.features)})", file=sys.stderr)
        return 1
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


def add_command(sub: argparse._SubParsersAction, name: str, summary: str, description: str,
                examples: Sequence[str] = ()) -> argparse.ArgumentParser:
    """A subcommand whose --help shows ``description`` and an Examples section."""
    epilog = "examples:\n" + "\n".join(f"  {e}" for e in examples) if examples else None
    return sub.add_parser(name, help=summary, description=description, epilog=epilog,
                          formatter_class=argparse.RawDescriptionHelpFormatter)


def add_config(p: argparse.ArgumentParser, required: bool = True) -> None:
    p.add_argument("-c", "--config", required=required, metavar="FILE",
                   help="the YAML configuration (see config/example.yaml)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="rnnstream", description=DESCRIPTION)
    parser.add_argument("--version", action="version", version=f"rnnstream {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = add_command(sub, "run", "the daemon: consume Kafka, score, publish anomalies, serve metrics",
                    "Join the consumer group, score every event of every detector's topics, publish anomalies\n"
                    "and scores, checkpoint state, and serve /metrics, /healthz and /readyz. SIGTERM stops\n"
                    "it cleanly, SIGHUP re-reads the configuration.",
                    ["rnnstream run -c /etc/rnnstream/config.yaml"])
    add_config(p)
    p.set_defaults(func=cmd_run)

    p = add_command(sub, "validate", "check a configuration file without touching the network",
                    "Report every problem of a configuration in one pass, each with its YAML path, plus a\n"
                    "state_dir and metrics port the daemon could not use. Exit 0 when valid, 1 otherwise.",
                    ["rnnstream validate -c /etc/rnnstream/config.yaml"])
    add_config(p)
    p.set_defaults(func=cmd_validate)

    p = add_command(sub, "replay", "score a CSV or JSON-lines file with one detector",
                    "Run a fresh detector over a file, in file order, and write one output row per input\n"
                    "row (observed, predicted, error, score, anomaly and suppression flags, or the reason the\n"
                    "row was refused). Paths are checked before any work. Exit 1 when no row was scored.",
                    ["rnnstream replay -c config/nab.yaml --input cpu.csv --output scores.csv",
                     "rnnstream replay -c cfg.yaml --input events.jsonl --output s.csv --plot web1.png --entity web-1"])
    add_config(p)
    p.add_argument("--input", required=True, metavar="FILE", help=".csv with a header row, or .jsonl")
    p.add_argument("--output", required=True, metavar="FILE", help="CSV of every event's prediction, error and score")
    p.add_argument("--plot", metavar="PNG", help="also draw one entity: values, predictions, score, threshold, anomalies")
    p.add_argument("--entity", help="the entity --plot draws (default: the first one scored)")
    p.add_argument("--detector", help="detector name (default: the first in the config)")
    p.set_defaults(func=cmd_replay)

    p = sub.add_parser("eval", help="evaluate detection quality on a benchmark")
    evsub = p.add_subparsers(dest="benchmark", required=True)
    from .evaluation.commands import register as register_eval

    register_eval(evsub)  # eval nab | generate | corpus

    p = add_command(sub, "warmup", "compile and cache every kernel (e.g. at image build time)",
                    "Compile every numba kernel into the cache (NUMBA_CACHE_DIR), so the daemon's first\n"
                    "start does not spend seconds compiling.",
                    ["rnnstream warmup", "NUMBA_CACHE_DIR=/opt/cache NUMBA_CPU_NAME=generic rnnstream warmup"])
    p.set_defaults(func=cmd_warmup)

    from .ops.commands import register

    register(sub)  # check-connection, state inspect|export|reset, plot
    return parser


def _stdout_closed() -> int:
    """stdout's reader went away (``| head``): stop quietly, as the standard tools do."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())   # so the interpreter's final flush does not fail again
    except (OSError, ValueError):
        pass
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from .kernels.jit import configure_cache

    configure_cache()  # before any kernel compiles: $NUMBA_CACHE_DIR or ~/.cache/rnnstream/numba
    try:
        rc = args.func(args)
        sys.stdout.flush()   # a closed pipe shows here, not in the interpreter's exit
        return rc
    except BrokenPipeError:
        return _stdout_closed()
    except RnnstreamError as exc:
        print(f"rnnstream: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("rnnstream: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
