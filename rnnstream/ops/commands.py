"""argparse wiring of the operator subcommands: ``register(sub)`` adds check-connection, state, plot.

Each ``cmd_*`` takes the parsed namespace and returns the exit code; RnnstreamError propagates to the
caller (``rnnstream.cli.main`` prints it and exits 2). Heavy imports happen inside the commands.
"""

from __future__ import annotations

import argparse
from typing import Any


def cmd_check_connection(args: argparse.Namespace) -> int:
    from .connection import check_connection_main

    return check_connection_main(args.config, timeout_s=args.timeout)


def cmd_state_inspect(args: argparse.Namespace) -> int:
    from .state_cmd import inspect_main

    return inspect_main(args.config, detector=args.detector, as_json=args.json)


def cmd_state_export(args: argparse.Namespace) -> int:
    from .state_cmd import export_main

    return export_main(args.config, args.detector, args.entity, partition=args.partition,
                       from_kafka=args.from_kafka)


def cmd_state_reset(args: argparse.Namespace) -> int:
    from .state_reset import reset_main

    return reset_main(args.config, detector=args.detector, partition=args.partition, yes=args.yes,
                      min_age=args.min_age, force=args.force)


def cmd_plot(args: argparse.Namespace) -> int:
    from .plot_cmd import plot_main

    return plot_main(out=args.out, entity=args.entity, scores=args.scores, config=args.config,
                     anomalies=args.anomalies, detector=args.detector, since=args.since,
                     max_records=args.max_records, timeout_s=args.timeout)


def register(sub: Any) -> None:
    """Add the operator subcommands to ``sub`` (the result of ``parser.add_subparsers``)."""
    p = sub.add_parser("check-connection", help="reach the brokers and check every detector's topics")
    p.add_argument("-c", "--config", required=True)
    p.add_argument("--timeout", type=float, default=10.0, help="seconds to wait for the brokers (default 10)")
    p.set_defaults(func=cmd_check_connection)

    p = sub.add_parser("state", help="inspect, export or reset the checkpoints under state_dir")
    ssub = p.add_subparsers(dest="state_command", required=True)
    q = ssub.add_parser("inspect", help="per detector and partition: generations, entities, model, offset, age, validity")
    q.add_argument("-c", "--config", required=True)
    q.add_argument("--detector", help="only this detector")
    q.add_argument("--json", action="store_true", help="machine-readable output")
    q.set_defaults(func=cmd_state_inspect)
    q = ssub.add_parser("export", help="one entity's state as JSON, from the newest checkpoints")
    q.add_argument("-c", "--config", required=True)
    q.add_argument("--detector", required=True)
    q.add_argument("--entity", required=True)
    q.add_argument("--partition", help="only search TOPIC-PARTITION, e.g. metrics.hosts-0")
    q.add_argument("--from-kafka", action="store_true",
                   help="read the detector's changelog topic (processing.changelog) instead of state_dir")
    q.set_defaults(func=cmd_state_export)
    q = ssub.add_parser("reset", help="move checkpoints aside (nothing deleted); the daemon must be stopped")
    q.add_argument("-c", "--config", required=True)
    q.add_argument("--detector", help="only this detector (default: all)")
    q.add_argument("--partition", help="only TOPIC-PARTITION, e.g. metrics.hosts-0")
    q.add_argument("--yes", action="store_true", help="really do it (without: print what would be reset)")
    q.add_argument("--min-age", type=float, default=0.0,
                   help="refuse if a newest checkpoint is younger than this many seconds (default 0)")
    q.add_argument("--force", action="store_true", help="reset even checkpoints younger than --min-age")
    q.set_defaults(func=cmd_state_reset)

    p = sub.add_parser("plot", help="PNG of one entity from a replay scores CSV or the anomalies topic")
    p.add_argument("--out", required=True, help="PNG file to write")
    p.add_argument("--entity", required=True)
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--scores", help="CSV written by `rnnstream replay --output`")
    src.add_argument("--anomalies", action="store_true", help="read the detector's anomalies topic (needs -c, --detector)")
    p.add_argument("-c", "--config")
    p.add_argument("--detector")
    p.add_argument("--since", help="ISO-8601 time; only anomalies at or after it")
    p.add_argument("--max-records", type=int, default=100_000, help="most records read from the topic (default 100000)")
    p.add_argument("--timeout", type=float, default=30.0, help="seconds to spend reading the topic (default 30)")
    p.set_defaults(func=cmd_plot)
