"""argparse wiring of the operator subcommands: ``register(sub)`` adds check-connection, state,
reproduce and plot.

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

    return inspect_main(args.config, detector=args.detector, as_json=args.json, from_kafka=args.from_kafka)


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
                     max_records=args.max_records, timeout_s=args.timeout, context_s=args.context * 3600.0)


def cmd_reproduce(args: argparse.Namespace) -> int:
    from .reproduce import reproduce_main

    return reproduce_main(args.config, args.detector, args.partition, args.output, until_offset=args.until_offset,
                          from_beginning=args.from_beginning, plot=args.plot, entity=args.entity,
                          timeout_s=args.timeout)


def register(sub: Any) -> None:
    """Add the operator subcommands to ``sub`` (the result of ``parser.add_subparsers``)."""
    from ..cli import add_command, add_config

    p = add_command(sub, "check-connection", "reach the brokers and check every detector's topics",
                    "Connect with the config's exact security settings, list the brokers, and check that\n"
                    "every input topic exists with a leader per partition (output topics: warnings only).\n"
                    "An address that refuses connections fails at once. Exit 0 when OK, 1 otherwise.",
                    ["rnnstream check-connection -c /etc/rnnstream/config.yaml --timeout 5"])
    add_config(p)
    p.add_argument("--timeout", type=float, default=10.0, metavar="SECONDS",
                   help="seconds to wait for the brokers (default 10)")
    p.set_defaults(func=cmd_check_connection)

    p = add_command(sub, "state", "inspect, export or reset the checkpoints under state_dir",
                    "Look into the daemon's checkpoints (<state_dir>/<detector>/<topic>-<partition>/).",
                    ["rnnstream state inspect -c cfg.yaml", "rnnstream state export -c cfg.yaml --detector cpu --entity web-1",
                     "rnnstream state reset -c cfg.yaml --detector cpu --yes"])
    ssub = p.add_subparsers(dest="state_command", required=True, metavar="ACTION")
    q = add_command(ssub, "inspect", "per detector and partition: generations, entities, model, offset, age, validity",
                    "Read and checksum every checkpoint generation. Exit 0 when every newest generation is\n"
                    "valid (also when there is no checkpoint yet), 1 when one is unreadable.",
                    ["rnnstream state inspect -c cfg.yaml", "rnnstream state inspect -c cfg.yaml --json | jq '.[0]'"])
    add_config(q)
    q.add_argument("--detector", help="only this detector")
    q.add_argument("--json", action="store_true", help="machine-readable output (a JSON list, one object per partition)")
    q.add_argument("--from-kafka", action="store_true",
                   help="read the detectors' changelog topics (processing.changelog) instead of state_dir")
    q.set_defaults(func=cmd_state_inspect)
    q = add_command(ssub, "export", "one entity's state as JSON, from the newest checkpoints",
                    "Print one entity's state (normaliser, error statistics, history ring, model version and\n"
                    "the offset the checkpoint covers) from the newest readable checkpoint holding it.",
                    ["rnnstream state export -c cfg.yaml --detector cpu --entity web-1 --partition metrics.hosts-3"])
    add_config(q)
    q.add_argument("--detector", required=True, help="the detector whose state to read")
    q.add_argument("--entity", required=True, help="the entity (as it appears in anomaly events)")
    q.add_argument("--partition", metavar="TOPIC-PARTITION", help="only search TOPIC-PARTITION, e.g. metrics.hosts-0")
    q.add_argument("--from-kafka", action="store_true",
                   help="read the detector's changelog topic (processing.changelog) instead of state_dir")
    q.set_defaults(func=cmd_state_export)
    q = add_command(ssub, "reset", "move checkpoints aside (nothing deleted); the daemon must be stopped",
                    "Move unit directories into <state_dir>/reset-<time>/ (undo by moving them back). Refused\n"
                    "without --yes, and while a running daemon holds the state_dir lock or a checkpoint is\n"
                    "younger than --min-age, unless --force.",
                    ["rnnstream state reset -c cfg.yaml                 # shows what would be reset",
                     "rnnstream state reset -c cfg.yaml --partition metrics.hosts-0 --yes"])
    add_config(q)
    q.add_argument("--detector", help="only this detector (default: all)")
    q.add_argument("--partition", metavar="TOPIC-PARTITION", help="only TOPIC-PARTITION, e.g. metrics.hosts-0")
    q.add_argument("--yes", action="store_true", help="really do it (without: print what would be reset)")
    q.add_argument("--min-age", type=float, default=0.0, metavar="SECONDS",
                   help="refuse if a newest checkpoint is younger than this many seconds (default 0)")
    q.add_argument("--force", action="store_true",
                   help="reset even while a daemon holds the lock or checkpoints are younger than --min-age")
    q.set_defaults(func=cmd_state_reset)

    p = add_command(sub, "reproduce", "the daemon's exact scores of one partition, from its checkpoint",
                    "Restore a partition's checkpoint from state_dir (the newest at or before --until-offset),\n"
                    "read the partition's records from there without a consumer group, and score them as the\n"
                    "daemon did: one model per partition, the same decoder, the same results.",
                    ["rnnstream reproduce -c cfg.yaml --detector cpu --partition metrics.hosts-3 "
                     "--until-offset 81723 --output p3.csv --plot web-17.png --entity web-17"])
    add_config(p)
    p.add_argument("--detector", required=True, help="the detector whose partition to reproduce")
    p.add_argument("--partition", required=True, metavar="TOPIC-PARTITION",
                   help="the partition, e.g. metrics.hosts-3 (an anomaly event's source)")
    p.add_argument("--until-offset", type=int, metavar="OFFSET",
                   help="last offset to score, e.g. the anomaly's (default: the end of the partition)")
    p.add_argument("--from-beginning", action="store_true",
                   help="start a fresh detector at the partition's first record instead of a checkpoint")
    p.add_argument("--output", required=True, metavar="CSV", help="one row per record: replay's columns plus offset")
    p.add_argument("--plot", metavar="PNG", help="also draw --entity")
    p.add_argument("--entity", help="the entity --plot draws")
    p.add_argument("--timeout", type=float, default=60.0, metavar="SECONDS",
                   help="most seconds to spend reading the partition (default 60)")
    p.set_defaults(func=cmd_reproduce)

    p = add_command(sub, "plot", "PNG of one entity from a replay scores CSV or the anomalies topic",
                    "Draw one entity: observed and predicted values per feature, the score and the anomalies.\n"
                    "From a `replay --output` CSV, or from the detector's anomalies topic (read without a\n"
                    "consumer group; nothing is committed), with --context hours around the anomalies and\n"
                    "every score in that range when the detector writes a scores topic.",
                    ["rnnstream plot --scores scores.csv --entity web-1 --out web-1.png",
                     "rnnstream plot -c cfg.yaml --anomalies --detector cpu --entity web-1 --since 2026-11-25T00:00Z --out a.png"])
    p.add_argument("--out", required=True, metavar="PNG", help="PNG file to write")
    p.add_argument("--entity", required=True, help="the entity to draw")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--scores", metavar="CSV", help="CSV written by `rnnstream replay --output`")
    src.add_argument("--anomalies", action="store_true", help="read the detector's anomalies topic (needs -c, --detector)")
    add_config(p, required=False)
    p.add_argument("--detector", help="the detector whose anomalies topic to read (with --anomalies)")
    p.add_argument("--since", metavar="ISO-TIME", help="ISO-8601 time; only events at or after it")
    p.add_argument("--max-records", type=int, default=100_000, metavar="N",
                   help="most records read from the topic (default 100000)")
    p.add_argument("--timeout", type=float, default=30.0, metavar="SECONDS",
                   help="seconds to spend reading the topic (default 30)")
    p.add_argument("--context", type=float, default=6.0, metavar="HOURS",
                   help="with --anomalies: hours drawn either side of the anomalies, with every score "
                        "from the scores topic when the detector has one (default 6)")
    p.set_defaults(func=cmd_plot)
