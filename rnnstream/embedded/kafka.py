"""``python -m rnnstream.embedded.kafka``: run an embedded Apache Kafka broker in the foreground.

Prints ``Apache Kafka <version> ready at 127.0.0.1:PORT ...`` once it serves, then runs until Ctrl-C
or SIGTERM and removes its data. ``--fetch-only`` only fills the jar cache (e.g. in CI before the
tests) and prints where. Exit codes: 0 stopped on request, 1 the broker died, 2 it could not start.
"""

from __future__ import annotations

import argparse
import signal
import sys
import time

from rnnstream.embedded.broker import EmbeddedKafka
from rnnstream.embedded.jars import KAFKA_VERSION, ensure_jars
from rnnstream.errors import BrokerError

__all__ = ["EmbeddedKafka", "main"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m rnnstream.embedded.kafka", description=__doc__.split("\n")[0].split(": ", 1)[1])
    parser.add_argument("--version", default=KAFKA_VERSION, help="Apache Kafka version (default %(default)s)")
    parser.add_argument("--port", type=int, default=0, help="PLAINTEXT port on 127.0.0.1 (default: a free one)")
    parser.add_argument("--topic", action="append", default=[], metavar="NAME[:PARTITIONS]", help="create topic")
    parser.add_argument("--fetch-only", action="store_true", help="only fetch the jars into the cache and exit")
    args = parser.parse_args(argv)
    if args.fetch_only:
        try:
            t0 = time.monotonic()
            jars = ensure_jars(args.version)
        except BrokerError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        print(f"Apache Kafka {args.version}: {len(jars)} jars in {jars[0].parent} ({time.monotonic() - t0:.1f} s)")
        return 0
    signal.signal(signal.SIGTERM, _interrupt)
    broker = EmbeddedKafka(args.version, port=args.port)
    try:
        broker.start()
        for spec in args.topic:
            name, _, n = spec.partition(":")
            broker.create_topics([(name, int(n or 1))])
        print(f"Apache Kafka {args.version} ready at {broker.bootstrap} in {broker.startup_seconds:.1f} s "
              f"(log: {broker.log_path}); Ctrl-C stops it", flush=True)
        while broker.running:
            time.sleep(0.5)
        print(f"the broker exited by itself:\n{broker.log_tail()}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 0
    except BrokerError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    finally:
        # A second Ctrl-C or SIGTERM must not cut the clean shutdown and the directory removal short.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        broker.stop()


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


if __name__ == "__main__":
    sys.exit(main())
