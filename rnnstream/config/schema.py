"""The configuration schema: frozen dataclasses, one per YAML section.

Each field is declared with :func:`~rnnstream.config.fields.setting` (default, doc, constraints);
adding a field is one line. Cross-field rules live in ``_cross_check`` methods returning
``(relative_path, message)`` pairs; the validator calls them only when every field of the
section converted cleanly, and prefixes the section's YAML path.

Instances are immutable (``FrozenInstanceError`` on assignment) and hold tuples, never lists.
Construct them through :func:`rnnstream.config.load_config`: direct construction skips validation.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from typing import Any, Literal

from .fields import setting
from .model_params import MODEL_PARAMS, ESNParams, GRUParams, ModelParams
from .secret import Secret

Problems = list[tuple[str, str]]

TOPIC = r"[A-Za-z0-9._-]{1,249}"
TOPIC_HINT = "Kafka topic names ([A-Za-z0-9._-], at most 249 characters)"
FIELD_PATH = r"[^.\s]+(\.[^.\s]+)*"
FIELD_PATH_HINT = "dotted field paths like 'cpu' or 'stats.cpu.user'"


@dataclass(frozen=True, kw_only=True)
class KafkaConfig:
    """Connection to the Kafka cluster the daemon consumes from and produces to."""

    bootstrap_servers: tuple[str, ...] = setting(doc="host:port of one or more brokers.", min_items=1, comma_separated=True)
    client_id: str = setting("rnnstream", doc="Client id shown in broker logs and quotas.")
    group_id: str = setting("rnnstream", doc="Consumer group; replicas sharing it split the partitions.")
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = setting("PLAINTEXT", doc="How to talk to the brokers.")
    sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] | None = setting(None, doc="SASL mechanism; required with SASL_PLAINTEXT/SASL_SSL.")
    sasl_username: str | None = setting(None, doc="SASL user; required with SASL_PLAINTEXT/SASL_SSL.")
    sasl_password: Secret | None = setting(None, doc="SASL password (use ${ENV_VAR}); never logged.")
    ssl_cafile: str | None = setting(None, doc="PEM file of the CA that signed the brokers' certificates (SSL/SASL_SSL).")
    ssl_certfile: str | None = setting(None, doc="PEM client certificate for mutual TLS (SSL/SASL_SSL).")
    ssl_keyfile: Secret | None = setting(None, doc="PEM private key of the client certificate (SSL/SASL_SSL); never logged.")
    ssl_password: Secret | None = setting(None, doc="Password of ssl_keyfile; never logged.")
    max_poll_records: int = setting(5000, doc="Most records one poll returns (the batch size of the hot loop).", min=1)
    poll_timeout_ms: int = setting(200, doc="How long one poll waits for records, in milliseconds.", min=0)
    fetch_min_bytes: int = setting(65536, doc="Input bytes the broker gathers before it answers a fetch, unless fetch_max_wait_ms passes first: at a low event rate, one poll of a few milliseconds' events instead of a poll per event or two, each paying the loop's and the outputs' fixed cost (1 = answer as soon as anything arrives).", min=1)
    fetch_max_wait_ms: int = setting(5, doc="Longest the broker holds a fetch to gather fetch_min_bytes, in milliseconds: at most this is added to an event's latency when the input is slow. After a poll without records the daemon fetches as kafka-python does by default (answered at the first record, else after 500 ms) until records flow again, so an idle input costs two fetches a second.", min=0, max=10000)
    session_timeout_ms: int = setting(30000, doc="Consumer session timeout; the group rebalances after this silence.", min=1000)
    auto_offset_reset: Literal["latest", "earliest"] = setting("latest", doc="Where a partition without a committed offset or checkpoint starts: 'latest' (new events only) or 'earliest' (backfill the topic's whole retention).")
    reconnect_backoff_max_ms: int = setting(1000, doc="Longest wait between two attempts to reconnect to a broker (kafka-python's default, 30 s, delays the recovery from an outage by as much).", min=10)
    linger_ms: int = setting(5, doc="How long the producer waits to fill a batch of output records, in milliseconds: at most this is added to an output's latency; more fills larger batches.", min=0, max=10000)
    producer_batch_bytes: int = setting(524288, doc="Largest batch of output records the producer builds per partition, in bytes (kafka-python's batch_size; its 16 KB default made every-event scores cost twice as much per record).", min=1024, max=16777216)
    compression_type: Literal["none", "gzip", "snappy", "lz4", "zstd"] = setting("none", doc="Compression of output batches; snappy, lz4 and zstd need their Python package installed (python-snappy, lz4, zstandard).")

    def _cross_check(self) -> Problems:
        problems: Problems = []
        sasl = self.security_protocol.startswith("SASL_")
        for name in ("sasl_mechanism", "sasl_username", "sasl_password"):
            given = getattr(self, name) is not None
            if sasl and not given:
                problems.append((name, f"required when security_protocol is {self.security_protocol}"))
            elif given and not sasl:
                problems.append((name, f"only used with SASL_PLAINTEXT or SASL_SSL, but security_protocol is {self.security_protocol}"))
        if not self.security_protocol.endswith("SSL"):
            for name in ("ssl_cafile", "ssl_certfile", "ssl_keyfile", "ssl_password"):
                if getattr(self, name) is not None:
                    problems.append((name, f"only used with SSL or SASL_SSL, but security_protocol is {self.security_protocol}"))
        missing = _missing_codec(self.compression_type)
        if missing:
            problems.append(("compression_type", f"{self.compression_type!r} needs the Python package {missing}, which is not installed"))
        return problems

    def client_kwargs(self) -> dict[str, Any]:
        """Keyword arguments common to kafka-python's KafkaConsumer, KafkaProducer and KafkaAdminClient.

        Secrets are revealed here and only here; do not log the result. Unset options are omitted
        so kafka-python keeps its own defaults.
        """
        kwargs: dict[str, Any] = {
            "bootstrap_servers": list(self.bootstrap_servers),
            "client_id": self.client_id,
            "security_protocol": self.security_protocol,
            "reconnect_backoff_max_ms": self.reconnect_backoff_max_ms,
        }
        optional = {
            "sasl_mechanism": self.sasl_mechanism,
            "sasl_plain_username": self.sasl_username,
            "sasl_plain_password": self.sasl_password,
            "ssl_cafile": self.ssl_cafile,
            "ssl_certfile": self.ssl_certfile,
            "ssl_keyfile": self.ssl_keyfile,
            "ssl_password": self.ssl_password,
        }
        for key, value in optional.items():
            if value is not None:
                kwargs[key] = value.reveal() if isinstance(value, Secret) else value
        return kwargs

    def consumer_kwargs(self) -> dict[str, Any]:
        """:meth:`client_kwargs` plus the KafkaConsumer-only options (group, batch size, session)."""
        return {
            **self.client_kwargs(),
            "group_id": self.group_id,
            "max_poll_records": self.max_poll_records,
            "fetch_min_bytes": self.fetch_min_bytes,
            "fetch_max_wait_ms": self.fetch_max_wait_ms,
            "session_timeout_ms": self.session_timeout_ms,
            "auto_offset_reset": self.auto_offset_reset,
        }

    def producer_kwargs(self) -> dict[str, Any]:
        """:meth:`client_kwargs` plus the KafkaProducer batching options (linger, batch size, compression)."""
        return {
            **self.client_kwargs(),
            "linger_ms": self.linger_ms,
            "batch_size": self.producer_batch_bytes,
            "compression_type": None if self.compression_type == "none" else self.compression_type,
        }


_CODEC_PACKAGES = {"snappy": ("has_snappy", "python-snappy"), "lz4": ("has_lz4", "lz4"), "zstd": ("has_zstd", "zstandard")}


def _missing_codec(compression: str) -> str | None:
    """The package ``compression`` needs when kafka-python cannot find it (None: usable)."""
    if compression not in _CODEC_PACKAGES:
        return None
    from kafka import codec

    check, package = _CODEC_PACKAGES[compression]
    return None if getattr(codec, check)() else package


@dataclass(frozen=True, kw_only=True)
class CheckpointConfig:
    """Periodic snapshots of every detector's per-entity state under state_dir."""

    interval_seconds: float = setting(30.0, doc="Seconds between checkpoints.", gt=0)
    keep_generations: int = setting(2, doc="Checkpoint generations kept on disk (>= 2 so one survives a crash mid-write).", min=2)


@dataclass(frozen=True, kw_only=True)
class ProcessingConfig:
    """Where partition state lives and what delivery the daemon guarantees (README: Delivery)."""

    guarantee: Literal["at_least_once", "exactly_once"] = setting("at_least_once", doc="exactly_once: each commit interval's outputs, changelog records and input offsets go in one Kafka transaction, so read_committed consumers see every output once across crashes and rebalances (needs changelog: true; costs a transaction per interval). at_least_once: a restart may publish outputs again, with the same event_id.")
    changelog: bool = setting(False, doc="Keep each partition's state in a compacted changelog topic, so any replica can take a partition over with its full state; state_dir is then only a cache.")
    changelog_topic: str = setting("{group_id}.{detector}.changelog", doc="Name of a detector's changelog topic; {group_id} and {detector} are replaced. Created (compacted, as many partitions as the input) when missing.")
    transactional_id: str | None = setting(None, doc="exactly_once: this replica's transactional.id, stable across its restarts and unique among replicas (default '{group_id}.<hostname>', right for a StatefulSet); {group_id} is replaced.")
    standby_replicas: int = setting(0, doc="Keep a warm copy of each partition's state on this many other replicas (tailing its changelog), so a replica that takes a partition over reads only the changelog's tail. Needs changelog: true and the same value on every replica; decided in the group's assignment (rnnstream.daemon.standby).", min=0)
    transaction_timeout_ms: int = setting(10000, doc="exactly_once: the broker aborts a transaction left open this long by a dead replica; partitions it wrote stay unreadable until then.", min=1000)

    def _cross_check(self) -> Problems:
        problems: Problems = []
        if self.guarantee == "exactly_once" and not self.changelog:
            problems.append(("changelog", "must be true with guarantee: exactly_once (the state is committed with the outputs)"))
        if self.standby_replicas and not self.changelog:
            problems.append(("standby_replicas", "needs changelog: true (standby copies tail the changelog)"))
        probe = self.changelog_topic.replace("{group_id}", "g").replace("{detector}", "d")
        if not re.fullmatch(TOPIC, probe):
            problems.append(("changelog_topic", f"must give {TOPIC_HINT} once {{group_id}} and {{detector}} are replaced"))
        return problems

    def changelog_topic_for(self, group_id: str, detector: str) -> str:
        """The changelog topic name of ``detector`` in consumer group ``group_id``."""
        return self.changelog_topic.replace("{group_id}", group_id).replace("{detector}", detector)


@dataclass(frozen=True, kw_only=True)
class MetricsConfig:
    """The Prometheus /metrics endpoint."""

    host: str = setting("0.0.0.0", doc="Address the metrics HTTP server binds.")
    port: int = setting(9108, doc="Port of the metrics HTTP server (0 lets the OS pick one).", min=0, max=65535)
    top_k_entities: int = setting(0, doc="Export per-entity scores for this many highest-scoring entities (0 = off).", min=0)


@dataclass(frozen=True, kw_only=True)
class DaemonConfig:
    """Deadlines, liveness and output retries of ``rnnstream run``."""

    shutdown_timeout_seconds: float = setting(8.0, doc="SIGTERM/SIGINT: the final checkpoint, commit and close get this long in all; past it, what is not committed is replayed after the restart, and the process exits anyway at this plus 1.5 s.", gt=0, max=60)
    loop_stall_seconds: float = setting(60.0, doc="/healthz fails (and the systemd watchdog is no longer fed) when the poll loop has not completed an iteration for this long.", gt=0)
    progress_stall_seconds: float = setting(300.0, doc="/healthz fails when, for this long, a rebalance has not completed, or records waited on owned partitions and none was processed (waiting for outputs to be delivered does not count).", gt=0)
    output_send_timeout_ms: int = setting(2000, doc="Longest a send to an output topic may block the loop (metadata of a missing topic, a full buffer); the record is then retried.", min=10)
    output_retry_backoff_ms: int = setting(500, doc="First wait before retrying output records that could not be delivered; doubles on each failure.", min=1)
    output_retry_backoff_max_ms: int = setting(30000, doc="Longest wait between two retries of undeliverable output records.", min=1)
    flush_timeout_seconds: float = setting(5.0, doc="Longest a checkpoint waits for the producer to deliver outputs; a checkpoint that cannot is skipped and retried.", gt=0)


@dataclass(frozen=True, kw_only=True)
class LoggingConfig:
    """Process logging."""

    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = setting("INFO", doc="Minimum level logged.")
    loggers: tuple[str, ...] = setting((), doc="Per-logger levels as 'logger=LEVEL', e.g. ['rnnstream.daemon=DEBUG', 'kafka=DEBUG']. kafka-python's own lines are DEBUG unless a connection problem starts or ends (one WARNING each).", comma_separated=True, pattern=r"[A-Za-z0-9_.]+=(DEBUG|INFO|WARNING|ERROR)", pattern_hint="logger=LEVEL with LEVEL one of DEBUG, INFO, WARNING, ERROR")
    log_payloads: bool = setting(False, doc="Include event payloads in rejection/anomaly logs (may contain sensitive data).")


@dataclass(frozen=True, kw_only=True)
class EntityConfig:
    """Which entity (host, sensor, user...) an event belongs to; each entity has its own hidden state.

    YAML may write ``entity: host`` as shorthand for ``entity: {field: host}``.
    """

    field: str | None = setting(None, doc="Dotted path of the payload field naming the entity.", pattern=FIELD_PATH, pattern_hint=FIELD_PATH_HINT)
    from_key: bool = setting(False, doc="Use the Kafka record key as the entity instead of a payload field.")

    _shorthand_doc = "a field name (shorthand for {field: <name>})"

    @classmethod
    def _from_shorthand(cls, raw: object) -> dict | None:
        return {"field": raw} if isinstance(raw, str) else None

    def _cross_check(self) -> Problems:
        if (self.field is None) == (not self.from_key):
            return [("", "set exactly one of 'field' or 'from_key: true'")]
        return []


@dataclass(frozen=True, kw_only=True)
class TimestampConfig:
    """Where an event's time comes from."""

    field: str | None = setting(None, doc="Dotted path of the payload field holding the event time.", pattern=FIELD_PATH, pattern_hint=FIELD_PATH_HINT)
    unit: Literal["s", "ms", "us", "ns", "iso"] = setting("s", doc="Unit of a numeric timestamp field, or 'iso' for ISO-8601 text.")
    from_record: bool = setting(False, doc="Use the Kafka record timestamp instead of a payload field.")

    def _cross_check(self) -> Problems:
        if (self.field is None) == (not self.from_record):
            return [("", "set exactly one of 'field' or 'from_record: true'")]
        return []


@dataclass(frozen=True, kw_only=True)
class TimeFeaturesConfig:
    """Calendar inputs appended to the features."""

    time_of_day: bool = setting(True, doc="Add sin/cos of the time of day.")
    day_of_week: bool = setting(True, doc="Add sin/cos of the day of the week.")
    log_gap: bool = setting(True, doc="Add log(1 + seconds since the entity's previous event).")
    daily_profile_bins: int = setting(24, doc="Add, per feature, the entity's mean value at this time of day and at the expected next event's, learnt in this many time-of-day bins (0 = off).", min=0, max=1440)


@dataclass(frozen=True, kw_only=True)
class ModelConfig:
    """The recurrent network. ``type`` picks the parameter class; its parameters sit beside ``type``."""

    type: str = setting("gru", doc="Model type; the other keys of this mapping are that type's parameters.", choices=MODEL_PARAMS)
    params: ModelParams = setting(doc="Parameters of the chosen type.", factory=GRUParams, choices=MODEL_PARAMS, selects="type")

    def __post_init__(self) -> None:
        expected = MODEL_PARAMS.get(self.type)
        if expected is None or not isinstance(self.params, expected):
            raise TypeError(f"ModelConfig(type={self.type!r}) needs params of {getattr(expected, '__name__', 'a registered type')}, got {type(self.params).__name__}")


@dataclass(frozen=True, kw_only=True)
class TrainingConfig:
    """Periodic retraining with truncated back-propagation through time."""

    enabled: bool = setting(True, doc="Retrain at all (false = keep the initial or checkpointed weights).")
    background: bool = setting(True, doc="Train in a background thread while scoring continues with the old weights.")
    skip_when_busy: bool = setting(True, doc="In background mode, a retraining that comes due while the previous fit still runs is skipped (counted in rnnstream_training_runs_total{outcome=\"skipped\"}) instead of stalling scoring until that fit ends. Outputs stay a function of the input stream alone only while no retraining is skipped; false always waits, keeping that guarantee at the cost of stalls.")
    every_events: int = setting(100000, doc="Retrain after this many new events of the detector (per partition in the daemon)... A fit at the defaults takes ~0.05 s of CPU (~0.5 µs per event at 100,000 events).", min=1)
    every_seconds: float = setting(300.0, doc="...or once event time has advanced this many seconds, whichever comes first (0 = off).", min=0)
    min_events: int = setting(256, doc="Events seen before the first training.", min=1)
    window: int = setting(64, doc="BPTT truncation length (events per training window).", min=4, max=1024)
    batch_windows: int = setting(32, doc="Windows per gradient step.", min=1)
    steps: int = setting(20, doc="Adam steps per retraining, each on batch_windows windows.", min=1)
    learning_rate: float = setting(3e-3, doc="Adam learning rate.", gt=0)
    clip_norm: float = setting(1.0, doc="Global gradient-norm clip.", gt=0)
    loss: Literal["absolute", "squared"] = setting("absolute", doc="GRU training objective: the mean absolute error of the next-event forecast (its median: bursts and jumps do not pull it off persistence) or the mean squared error.")
    budget: float = setting(50.0, doc="Most training work per event of an average entity, in window-steps (one event of a training window through one forward and backward pass): after a fit of steps x batch x window window-steps, the next retraining waits until the entities seen in the meantime have had cost / budget events each on average (never sooner than every_events). The model is shared, so the work per event shrinks as entities are added (0 = no limit).", min=0)
    exclude_anomalies: bool = setting(True, doc="Leave events scored above the threshold out of the training buffer.")
    buffer_windows: int = setting(256, doc="Capacity of the training buffer, in windows.", min=1)
    sample_entities: int = setting(4096, doc="Entities that keep a history ring (window events, ~1.3 KB each at the defaults) from which training windows are cut: the first to arrive while a ring is free (an evicted entity frees its ring for the next new one). The others are scored all the same and keep only their recurrent state and statistics. Per partition shard, like max_entities.", min=0)

    def _cross_check(self) -> Problems:
        if self.min_events < self.window:
            return [("min_events", f"must be >= window ({self.window}): one training window needs that many events")]
        return []


@dataclass(frozen=True, kw_only=True)
class ScoringConfig:
    """Turning prediction errors into an anomaly probability."""

    threshold: float = setting(0.5, doc="Score at or above which an event is reported as an anomaly; the score is log(p + 1e-10) / log(1e-10) of the event's p-value, so 0.5 means 1 in 100,000.", min=0, max=1)
    warmup_events: int = setting(50, doc="Events of an entity scored 0 before its scores count.", min=0)
    short_window: int = setting(10, doc="Events of the short mean of the signed residual that detects sustained deviations (level shifts); 1 = off.", min=1)
    long_window: int = setting(1000, doc="Memory, in events, of each entity's residual scale, tail fit and repeat rate.", min=2)
    suppress_events: int = setting(50, doc="After an anomaly, events of the same entity not reported again unless clearly stronger (p-value 10x smaller).", min=0)
    min_gap_seconds: float = setting(0.0, doc="Minimum seconds between two reported anomalies of one entity (a clearly stronger one is still reported).", min=0)
    normaliser_halflife: float = setting(1000.0, doc="Half-life, in events, of the running mean/variance that scales features.", gt=0)
    novelty_tolerance: float = setting(0.01, doc="A value beyond the entity's seen range by this share of the range scores 1 (0 = off; use 0 for counters that grow forever).", min=0)
    novelty_gate: float = setting(0.01, doc="A value beyond the seen range (novelty_tolerance) of a feature that often sets records (novelty_record_rate) is novel only where the feature's calibrated p-value (the smallest of its point, sustained-deviation and stuck-value tests) is at most this: a random walk reaching a new extreme by an ordinary step is not novel, a jump into new territory is (1 = every value beyond the range is novel).", gt=0, max=1)
    novelty_record_rate: float = setting(0.02, doc="A value beyond the seen range is novel whatever novelty_gate says where the feature's running rate of such records after the warm-up (over long_window events) is at most this: for an entity that rarely sets records (a stationary series) a record is news; for one whose edge keeps moving (a random walk, a counter setting burst records) only a surprising one is (0 = always gated, 1 = never). The features of an entity share it: with F features, a feature's rate must be at most this / F, since F stationary features set a record F times as often as one.", min=0, max=1)
    zclip: float = setting(10.0, doc="Normalised model inputs are clipped to [-zclip, zclip].", gt=0)
    scale_floor: float = setting(0.01, doc="Smallest residual scale, in series standard deviations: errors far below it never surprise.", gt=0)
    profile_cap: float = setting(0.75, doc="With time_features.daily_profile_bins, the scored error is at most this multiple of the value's distance from its time-of-day mean (0 = off).", min=0)
    flatline: bool = setting(True, doc="Score runs of identical values against the entity's own rate of repeats (a stuck sensor or dead exporter).")
    persistence_blend: int = setting(100, doc="Memory, in events, of each feature's running absolute error of the model's prediction and of persistence (the entity's previous value); the scored prediction blends the two, each weighted by the inverse square of its mean error, so where the model forecasts worse than persistence it is scored mostly as persistence (0 = the model's prediction alone).", min=0)

    def _cross_check(self) -> Problems:
        if self.short_window >= self.long_window:
            return [("short_window", f"must be smaller than long_window ({self.long_window})")]
        return []


@dataclass(frozen=True, kw_only=True)
class OutputsConfig:
    """Kafka topics written by a detector (null = not written)."""

    anomalies_topic: str | None = setting(None, doc="Anomaly reports (score >= threshold).", pattern=TOPIC, pattern_hint=TOPIC_HINT)
    scores_topic: str | None = setting(None, doc="Every event's score (high volume).", pattern=TOPIC, pattern_hint=TOPIC_HINT)
    scores_format: Literal["record", "batch"] = setting("record", doc="record: one Kafka record per scored event (key = entity). batch: one record per poll and source partition holding every score of it, a JSON header and binary columns (schema rnnstream.scores version 2, README: Outputs). At full speed per-record scores cost the daemon about a quarter of its throughput, batched ones a few percent (docs/performance.md).")
    dead_letter_topic: str | None = setting(None, doc="Rejected events, with the reason in a header.", pattern=TOPIC, pattern_hint=TOPIC_HINT)

    def topics(self) -> tuple[str, ...]:
        """The configured output topics."""
        return tuple(t for t in (self.anomalies_topic, self.scores_topic, self.dead_letter_topic) if t)


@dataclass(frozen=True, kw_only=True)
class DetectorConfig:
    """One stream: its topics, how to read its events, and its model."""

    name: str = setting(doc="Unique detector name (used in metrics and state files).", pattern=r"[a-z0-9_]+", pattern_hint="lowercase letters, digits and '_'")
    topics: tuple[str, ...] = setting(doc="Input topics; a topic belongs to one detector only.", min_items=1, unique=True, comma_separated=True, pattern=TOPIC, pattern_hint=TOPIC_HINT)
    format: Literal["json"] = setting("json", doc="Payload encoding.")
    entity: EntityConfig = setting(doc="Entity of an event (or shorthand `entity: <field>`).")
    timestamp: TimestampConfig = setting(doc="Event time.")
    features: tuple[str, ...] = setting(doc="Numeric payload fields fed to the model, in order.", min_items=1, max_items=16, unique=True, pattern=FIELD_PATH, pattern_hint=FIELD_PATH_HINT)
    log_features: tuple[str, ...] = setting((), doc="Features modelled and scored on a log scale, sign(x) log(1 + |x|): counters whose bursts and changes are multiplicative (requests, messages, bytes). Each must be one of features. Predictions are reported in the feature's own units; the normalised value (z) and the errors are in log units. Changing the list starts the state afresh (the state's units change).", unique=True, pattern=FIELD_PATH, pattern_hint=FIELD_PATH_HINT)
    time_features: TimeFeaturesConfig = setting(doc="Calendar inputs.", factory=TimeFeaturesConfig)
    model: ModelConfig = setting(doc="The recurrent network.", factory=ModelConfig)
    training: TrainingConfig = setting(doc="Retraining.", factory=TrainingConfig)
    scoring: ScoringConfig = setting(doc="Scoring.", factory=ScoringConfig)
    outputs: OutputsConfig = setting(doc="Output topics.", factory=OutputsConfig)
    max_entities: int = setting(100000, doc="Most entities tracked at once per partition shard (the daemon keeps one detector instance per assigned partition, so a process holding k partitions of this detector holds up to k times this); the least recently seen is evicted beyond.", min=1)
    idle_ttl_seconds: float = setting(86400.0, doc="Entities silent this long are evicted.", gt=0)
    max_message_bytes: int = setting(1048576, doc="Larger payloads are rejected to the dead-letter topic.", min=1)
    late_tolerance_seconds: float = setting(0.0, doc="Events older than the entity's last event by more than this are rejected.", min=0)
    future_tolerance_seconds: float = setting(3600.0, doc="Events dated more than this after their Kafka record timestamp are rejected as 'future' (daemon only; the record timestamp is the producer's or broker's clock, stored with the record).", gt=0)

    def _cross_check(self) -> Problems:
        return [(f"log_features[{i}]", f"{name!r} is not one of features {list(self.features)}")
                for i, name in enumerate(self.log_features) if name not in self.features]

    def with_features(self, features: tuple[str, ...]) -> DetectorConfig:
        """This detector reading ``features`` instead (an evaluation stream's columns): ``log_features``
        keeps the names among them."""
        return replace(self, features=tuple(features),
                       log_features=tuple(f for f in self.log_features if f in features))


@dataclass(frozen=True, kw_only=True)
class Config:
    """The whole configuration file."""

    kafka: KafkaConfig | None = setting(None, doc="Kafka connection; omit for replay/NAB runs that read files.")
    state_dir: str = setting("/var/lib/rnnstream", doc="Directory of checkpoints and state files.")
    checkpoint: CheckpointConfig = setting(doc="Checkpointing.", factory=CheckpointConfig)
    processing: ProcessingConfig = setting(doc="Changelog topics and the delivery guarantee.", factory=ProcessingConfig)
    metrics: MetricsConfig = setting(doc="Prometheus endpoint.", factory=MetricsConfig)
    daemon: DaemonConfig = setting(doc="Deadlines, liveness and output retries of the daemon.", factory=DaemonConfig)
    logging: LoggingConfig = setting(doc="Logging.", factory=LoggingConfig)
    detectors: tuple[DetectorConfig, ...] = setting(doc="The detectors (at least one).", min_items=1)

    def _cross_check(self) -> Problems:
        problems: Problems = []
        seen_names: dict[str, int] = {}
        owner: dict[str, int] = {}
        for i, det in enumerate(self.detectors):
            if det.name in seen_names:
                problems.append((f"detectors[{i}].name", f"duplicate detector name {det.name!r} (also detectors[{seen_names[det.name]}])"))
            seen_names.setdefault(det.name, i)
            for j, topic in enumerate(det.topics):
                if topic in owner and owner[topic] != i:
                    problems.append((f"detectors[{i}].topics[{j}]", f"topic {topic!r} already belongs to detectors[{owner[topic]}] ({self.detectors[owner[topic]].name})"))
                owner.setdefault(topic, i)
        for i, det in enumerate(self.detectors):
            for key in ("anomalies_topic", "scores_topic", "dead_letter_topic"):
                topic = getattr(det.outputs, key)
                if topic is not None and topic in owner:
                    problems.append((f"detectors[{i}].outputs.{key}", f"topic {topic!r} is an input of detectors[{owner[topic]}]; writing to it would feed results back in"))
        return problems

    def detector(self, name: str | None = None) -> DetectorConfig:
        """The detector called ``name``, or the first one when ``name`` is None.

        Raises KeyError naming the detectors the config does have.
        """
        if name is None:
            return self.detectors[0]
        for det in self.detectors:
            if det.name == name:
                return det
        raise KeyError(f"no detector named {name!r}; the config has {[d.name for d in self.detectors]}")

    def topic_map(self) -> dict[str, DetectorConfig]:
        """Input topic -> the detector that owns it."""
        return {topic: det for det in self.detectors for topic in det.topics}


__all__ = [
    "Config", "KafkaConfig", "CheckpointConfig", "ProcessingConfig", "DaemonConfig", "MetricsConfig", "LoggingConfig", "DetectorConfig",
    "EntityConfig", "TimestampConfig", "TimeFeaturesConfig", "ModelConfig", "TrainingConfig",
    "ScoringConfig", "OutputsConfig", "MODEL_PARAMS", "GRUParams", "ESNParams", "ModelParams",
]
