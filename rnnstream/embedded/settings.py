"""The files an embedded single-node KRaft broker starts from: server.properties and a log4j2 config.

Only what a single node on loopback needs is set; anything in ``extra`` overrides a default.
Nothing here starts a process or touches the network, except ``free_port`` which binds briefly.
"""

from __future__ import annotations

import socket
from pathlib import Path


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago (another process may still take it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def server_properties(
    data_dir: Path, port: int, controller_port: int, extra: dict[str, str] | None = None
) -> dict[str, str]:
    """Settings of a combined broker+controller node 1 whose only voter is itself."""
    props = {
        "process.roles": "broker,controller",
        "node.id": "1",
        "controller.quorum.bootstrap.servers": f"127.0.0.1:{controller_port}",
        "listeners": f"PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller_port}",
        "advertised.listeners": f"PLAINTEXT://127.0.0.1:{port}",
        "controller.listener.names": "CONTROLLER",
        "inter.broker.listener.name": "PLAINTEXT",
        "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
        "log.dirs": str(data_dir),
        "num.partitions": "1",
        "default.replication.factor": "1",
        "min.insync.replicas": "1",
        "auto.create.topics.enable": "false",
        "offsets.topic.replication.factor": "1",
        "offsets.topic.num.partitions": "4",
        "transaction.state.log.replication.factor": "1",
        "transaction.state.log.min.isr": "1",
        "transaction.state.log.num.partitions": "4",
        "share.coordinator.state.topic.replication.factor": "1",
        "share.coordinator.state.topic.min.isr": "1",
        "group.initial.rebalance.delay.ms": "0",
        "log.segment.bytes": str(8 * 1024 * 1024),
        "log.index.size.max.bytes": str(1024 * 1024),
        "log.retention.check.interval.ms": "60000",
        "num.network.threads": "2",
        "num.io.threads": "2",
        "num.recovery.threads.per.data.dir": "1",
    }
    props.update({k: str(v) for k, v in (extra or {}).items()})
    return props


def write_properties(path: Path, props: dict[str, str]) -> None:
    """Write ``props`` as a Java properties file (values here never need escaping beyond backslashes)."""
    lines = [f"{k}={str(v).replace(chr(92), chr(92) * 2)}" for k, v in props.items()]
    path.write_text("# Written by rnnstream.embedded\n" + "\n".join(lines) + "\n")


LOG4J2_PROPERTIES = """\
# Written by rnnstream.embedded: everything to the console, which the launcher sends to broker.log.
rootLogger.level = INFO
rootLogger.appenderRef.out.ref = OUT
appender.out.type = Console
appender.out.name = OUT
appender.out.layout.type = PatternLayout
appender.out.layout.pattern = [%d] %p %m (%c)%n
logger.config.name = org.apache.kafka.common.config.AbstractConfig
logger.config.level = WARN
logger.kafkaconfig.name = kafka.server.KafkaConfig
logger.kafkaconfig.level = WARN
"""
