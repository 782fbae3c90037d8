"""``rnnstream check-connection``: can the daemon reach its brokers, and do its topics exist?

Connects with exactly the security settings of the config (``KafkaConfig.client_kwargs()``), asks the
cluster for its brokers and for the metadata of every detector's input and output topics (without
auto-creating them), and reports each topic's partitions and their leaders.

Verdict: OK when the cluster answered and every input topic exists with a leader for each partition.
A missing output topic is a warning only (a broker with ``auto.create.topics.enable`` creates it on
first write). Every network wait is bounded by ``timeout_s``.

Not guaranteed: that the daemon's consumer group may read (group ACLs are not checked), nor that writes
to the output topics are authorised.
"""

from __future__ import annotations

import errno
import socket
import sys
from dataclasses import dataclass, field
from typing import Any, TextIO

from kafka import errors as kerr
from kafka.admin import KafkaAdminClient

from ..config import Config, load_config_file

UNKNOWN_TOPIC = kerr.UnknownTopicOrPartitionError.errno
AUTH_ERRORS = (kerr.SaslAuthenticationFailedError, kerr.AuthorizationError,
               kerr.ClusterAuthorizationFailedError, kerr.TopicAuthorizationFailedError)


@dataclass
class TopicCheck:
    """One topic as the cluster sees it. ``partitions`` maps partition -> leader ("host:port" or None)."""

    topic: str
    detector: str
    role: str                       # "input", "anomalies", "scores" or "dead_letter"
    exists: bool = False
    partitions: dict[int, str | None] = field(default_factory=dict)
    error: str | None = None


@dataclass
class ConnectionReport:
    ok: bool
    brokers: list[str] = field(default_factory=list)
    topics: list[TopicCheck] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


ACCEPTS = "accepts TCP connections"


def _describe(exc: BaseException) -> str:
    """``Type: message`` once (kafka-python's errors already start their text with the type name)."""
    name, text = type(exc).__name__, str(exc).strip()
    if text.startswith(name):
        text = text[len(name):].lstrip(": ").strip()
    return f"{name}: {text}" if text and text != name else name


def _probe_tcp(server: str, timeout_s: float) -> str:
    """What a plain TCP connect to ``host:port`` does: ACCEPTS or the reason it fails."""
    host, _, port = server.rpartition(":")
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout_s):
            return ACCEPTS
    except ValueError:
        return "is not host:port"
    except socket.gaierror as exc:
        return f"does not resolve ({exc.strerror})"
    except TimeoutError:
        return f"gives no answer within {timeout_s:g}s (firewall or wrong address?)"
    except OSError as exc:
        return f"refuses connections ({exc.strerror})" if exc.errno == errno.ECONNREFUSED else (exc.strerror or repr(exc))


def _topic_list(cfg: Config) -> list[TopicCheck]:
    checks = []
    for det in cfg.detectors:
        checks += [TopicCheck(t, det.name, "input") for t in det.topics]
        for role in ("anomalies", "scores", "dead_letter"):
            topic = getattr(det.outputs, f"{role}_topic")
            if topic:
                checks.append(TopicCheck(topic, det.name, role))
    return checks


def check_connection(cfg: Config, timeout_s: float = 10.0) -> ConnectionReport:
    """Contact the cluster of ``cfg.kafka`` and check every configured topic; never raises for
    network or authorisation failures (they become ``problems``)."""
    if cfg.kafka is None:
        return ConnectionReport(False, problems=["the config has no 'kafka' section: nothing to connect to"])
    servers = list(cfg.kafka.bootstrap_servers)
    timeout_ms = max(1, int(timeout_s * 1000))
    kwargs: dict[str, Any] = {**cfg.kafka.client_kwargs(), "request_timeout_ms": timeout_ms,
                              "bootstrap_timeout_ms": timeout_ms, "reconnect_backoff_max_ms": 1000}
    report = ConnectionReport(False, topics=_topic_list(cfg))
    proto = cfg.kafka.security_protocol
    # A refused or unresolvable address fails in milliseconds; without this, the client would retry
    # it for the whole timeout and report only a timeout.
    probes = {server: _probe_tcp(server, min(timeout_s, 3.0)) for server in servers}
    if not any(p == ACCEPTS for p in probes.values()):
        report.problems.append(f"could not bootstrap from {', '.join(servers)}: "
                               + "; ".join(f"{s} {p}" for s, p in probes.items()))
        return report
    try:
        admin = KafkaAdminClient(**kwargs)
    except AUTH_ERRORS as exc:
        report.problems.append(f"authentication to {', '.join(servers)} failed ({proto}, "
                               f"mechanism {cfg.kafka.sasl_mechanism}, user {cfg.kafka.sasl_username}): {exc}")
        return report
    except (kerr.KafkaError, OSError) as exc:
        report.problems.append(f"could not bootstrap from {', '.join(servers)} with {proto} within "
                               f"{timeout_s:g}s: {_describe(exc)}")
        for server in servers:
            report.problems.append(f"  {server}: {probes[server]}")
        if proto != "PLAINTEXT":
            report.problems.append(f"  if a server accepts TCP connections, check that it speaks {proto} on "
                                   "that port and the credentials/certificates are right")
        return report
    try:
        cluster = admin.describe_cluster()
        where = {b["broker_id"]: f"{b['host']}:{b['port']}" for b in cluster["brokers"]}
        report.brokers = [f"{where[i]} (id {i})" for i in sorted(where)]
        names = sorted({c.topic for c in report.topics})
        meta = {t["name"]: t for t in admin.describe_topics(names)} if names else {}
    except AUTH_ERRORS as exc:
        report.problems.append(f"connected to {', '.join(servers)} but not authorised to describe the "
                               f"cluster/topics: {type(exc).__name__}: {exc}")
        return report
    except (kerr.KafkaError, OSError) as exc:
        report.problems.append(f"connected to {', '.join(servers)} but a metadata request failed: "
                               f"{type(exc).__name__}: {exc}")
        return report
    finally:
        admin.close()
    for check in report.topics:
        _fill(check, meta.get(check.topic), where)
        if check.error is None:
            continue
        if check.role == "input":
            report.problems.append(f"detector {check.detector}: input topic {check.topic!r}: {check.error}")
        else:
            report.warnings.append(f"detector {check.detector}: {check.role} topic {check.topic!r}: {check.error}")
    report.ok = not report.problems
    return report


def _fill(check: TopicCheck, meta: dict | None, where: dict[int, str]) -> None:
    if meta is None:
        check.error = "not in the metadata answer"
        return
    code = meta.get("error_code", 0)
    if code == UNKNOWN_TOPIC:
        check.error = "does not exist"
        return
    if code:
        err = kerr.for_code(code)
        check.error = f"{err.__name__} (error code {code})"
        return
    check.exists = True
    for p in meta["partitions"]:
        leader = p.get("leader_id", -1)
        check.partitions[int(p["partition_index"])] = where.get(leader, f"broker id {leader}") if leader >= 0 else None
    leaderless = sorted(p for p, leader in check.partitions.items() if leader is None)
    if leaderless:
        check.error = f"partitions {leaderless} have no leader"


def format_report(report: ConnectionReport) -> str:
    """The report as text for a person."""
    lines = []
    if report.brokers:
        lines.append("brokers: " + ", ".join(report.brokers))
    for c in report.topics:
        if not c.exists and not report.brokers:
            continue
        head = f"  {c.detector:<16} {c.role:<11} {c.topic}"
        if c.exists:
            parts = ", ".join(f"{p}@{leader or 'NO LEADER'}" for p, leader in sorted(c.partitions.items()))
            lines.append(f"{head}: {len(c.partitions)} partition(s) [{parts}]")
        else:
            lines.append(f"{head}: {c.error}")
    lines += [f"warning: {w}" for w in report.warnings]
    lines += [f"problem: {p}" if not p.startswith("  ") else p for p in report.problems]
    lines.append("OK" if report.ok else "FAILED")
    return "\n".join(lines)


def check_connection_main(config_path: str, timeout_s: float = 10.0, out: TextIO | None = None) -> int:
    """``rnnstream check-connection``: print the report; 0 when OK, 1 otherwise."""
    out = out or sys.stdout
    report = check_connection(load_config_file(config_path), timeout_s)
    print(format_report(report), file=out)
    return 0 if report.ok else 1
