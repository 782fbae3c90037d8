"""Every Prometheus metric the daemon exports, defined once.

``METRIC_SPECS`` is the single list of definitions: ``Metrics`` builds the prometheus_client objects
from it, ``render_metrics_table`` turns it into the README's reference table, and the deploy tests
check that dashboards and alert rules use only names it defines.

Hot-path callers should not call ``.labels()`` per event (a labelled child lookup costs a few µs):
``Metrics.for_detector`` / ``for_topic`` / ``lag`` return pre-resolved children, cached for the life of
the ``Metrics`` object. Those caches are plain dicts: call them from one thread (the processing loop);
the metric objects themselves are thread-safe, so the HTTP exporter may scrape concurrently.

No metric carries an entity label, except the opt-in ``rnnstream_entity_score`` whose series count is
capped at ``top_k_entities`` per detector.

Histograms are ``BulkHistogram`` collectors: the daemon keeps the bucket counts itself (numpy, filled a
whole batch at a time) and the collector yields them as a ``HistogramMetricFamily`` at each scrape, the
supported way to export counts prometheus_client did not observe. No ``*_created`` series are
exported; the registry also carries the standard ``process_*`` metrics (RSS, CPU, open fds).
"""

from __future__ import annotations

import heapq
import threading
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from prometheus_client import CollectorRegistry, Counter, Gauge, ProcessCollector, disable_created_metrics
from prometheus_client.core import HistogramMetricFamily
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

from rnnstream import __version__

disable_created_metrics()   # no *_created series: they double the series count and nobody queries them

UNROUTED = "_unrouted"
"""Detector label used for events that no detector's stream matched."""

SCORE_BUCKETS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99, 0.999, 1.0)
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
BATCH_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
TRAINING_BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0)
CHECKPOINT_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)


@dataclass(frozen=True)
class MetricSpec:
    """One metric definition. ``name`` is the exported name (counters include ``_total``)."""

    attr: str
    name: str
    kind: str  # "counter" | "gauge" | "histogram"
    labels: tuple[str, ...]
    help: str
    buckets: tuple[float, ...] | None = None
    optional: bool = False  # registered only when enabled (the top-K entity gauge)

    def series_names(self) -> tuple[str, ...]:
        """Names of the sample series this metric produces in the exposition format."""
        if self.kind == "histogram":
            return (self.name + "_bucket", self.name + "_sum", self.name + "_count")
        return (self.name,)


def _c(attr: str, name: str, labels: tuple[str, ...], doc: str) -> MetricSpec:
    return MetricSpec(attr, name, "counter", labels, doc)


def _g(attr: str, name: str, labels: tuple[str, ...], doc: str, optional: bool = False) -> MetricSpec:
    return MetricSpec(attr, name, "gauge", labels, doc, optional=optional)


def _h(attr: str, name: str, labels: tuple[str, ...], doc: str, buckets: tuple[float, ...]) -> MetricSpec:
    return MetricSpec(attr, name, "histogram", labels, doc, buckets=buckets)


D = ("detector",)
METRIC_SPECS: tuple[MetricSpec, ...] = (
    _c("events_consumed", "rnnstream_events_consumed_total", ("topic",),
       "Records read from Kafka, before routing or validation."),
    _c("events_processed", "rnnstream_events_processed_total", D,
       "Events scored by a detector."),
    _c("events_rejected", "rnnstream_events_rejected_total", ("detector", "reason"),
       f"Events refused (bad payload, missing field, non-finite value...); detector=\"{UNROUTED}\" "
       "when no detector's stream matched."),
    _c("anomalies", "rnnstream_anomalies_total", D,
       "Events whose anomaly score crossed the detector's threshold (each one is published)."),
    _h("score", "rnnstream_score", D,
       "Distribution of anomaly scores (calibrated probability, 0..1).", SCORE_BUCKETS),
    _h("event_to_score_latency", "rnnstream_event_to_score_latency_seconds", D,
       "Seconds from the Kafka record timestamp to the score being computed (processing latency; a "
       "producer that sets old record timestamps inflates it).", LATENCY_BUCKETS),
    _g("event_time_lag", "rnnstream_event_time_lag_seconds", D,
       "Seconds between now and the newest event time the detector scored (how far behind the "
       "data is, including any delay before Kafka; large during a backfill)."),
    _h("batch_duration", "rnnstream_batch_duration_seconds", D,
       "Seconds spent scoring one batch of events in a detector.", BATCH_BUCKETS),
    _g("consumer_lag", "rnnstream_consumer_lag", ("topic", "partition"),
       "Records between the consumer's position and the partition's high watermark."),
    _g("entities", "rnnstream_entities", D,
       "Entities whose hidden state the detector currently holds."),
    _c("entities_evicted", "rnnstream_entities_evicted_total", D,
       "Entities dropped from the detector's state (idle or over capacity)."),
    _c("training_runs", "rnnstream_training_runs_total", ("detector", "outcome"),
       "Retraining runs, by outcome: ok|failed (finished), skipped (came due while the previous background fit still ran, see training.skip_when_busy)."),
    _h("training_duration", "rnnstream_training_duration_seconds", D,
       "Seconds one retraining run took.", TRAINING_BUCKETS),
    _g("training_loss", "rnnstream_training_loss", ("detector", "topic", "partition"),
       "Final training loss of the last successful retraining run of each partition's model (a partition's "
       "series appears with its first retraining in this process: no NaN placeholder)."),
    _g("model_version", "rnnstream_model_version", ("detector", "topic", "partition"),
       "Version number of the weights scoring each partition (each partition has its own model; "
       "increments on each successful retrain)."),
    _h("checkpoint_duration", "rnnstream_checkpoint_duration_seconds", (),
       "Seconds one state checkpoint took to write.", CHECKPOINT_BUCKETS),
    _g("checkpoint_last_success", "rnnstream_checkpoint_last_success_timestamp_seconds", (),
       "Unix time of the last checkpoint written successfully (0 = none yet)."),
    _c("checkpoint_failures", "rnnstream_checkpoint_failures_total", (),
       "Checkpoint writes that failed."),
    _c("checkpoint_corrupt", "rnnstream_checkpoint_corrupt_total", (),
       "Checkpoints found unreadable at restore (bad magic, checksum mismatch, truncation)."),
    _c("output_send_failures", "rnnstream_output_send_failures_total", ("detector", "topic"),
       "Output records (anomalies, scores, dead letters) whose send failed; they are kept and retried."),
    _g("outputs_pending", "rnnstream_outputs_pending", D,
       "Output records waiting to be sent again; while > 0 the detector's partitions are paused and not committed."),
    _c("outputs_truncated", "rnnstream_outputs_truncated_total", D,
       "Output records too large for Kafka, sent as a reference to their source record instead."),
    _c("outputs_dropped", "rnnstream_outputs_dropped_total", D,
       "Output records that could never be sent (logged with their source record)."),
    _g("broker_connected", "rnnstream_broker_connected", (),
       "1 while the consumer is connected to its group coordinator, else 0 (also shown by /readyz)."),
    _g("ready", "rnnstream_ready", (),
       "1 once state is restored and the consumer is assigned, else 0 (mirrors /readyz)."),
    _g("build_info", "rnnstream_build_info", ("version",),
       "Always 1; the label carries the running rnnstream version."),
    _g("entity_score", "rnnstream_entity_score", ("detector", "entity"),
       "Latest score of each detector's top-K entities (only when top_k_entities > 0).", optional=True),
    _g("entity_last_anomaly", "rnnstream_entity_last_anomaly_timestamp_seconds", ("detector", "entity"),
       "Unix time each of the detector's top-K most recently anomalous entities last had an anomaly "
       "published (only when top_k_entities > 0; the per-entity alert reads it).", optional=True),
    _g("restoring_partitions", "rnnstream_restoring_partitions", (),
       "Partitions whose state is being restored from the changelog now (/readyz says restoring meanwhile)."),
    _c("restore_records", "rnnstream_restore_records_total", D,
       "Changelog records read to restore partitions' state."),
    _c("restore_bytes", "rnnstream_restore_bytes_total", D,
       "Bytes of changelog records read to restore partitions' state."),
    _h("restore_duration", "rnnstream_restore_duration_seconds", D,
       "Seconds one partition's restore from the changelog took.", CHECKPOINT_BUCKETS),
    _c("changelog_records", "rnnstream_changelog_records_total", D,
       "Changelog records written (entity rows, tombstones, shard arrays, heads)."),
    _c("changelog_bytes", "rnnstream_changelog_bytes_total", D,
       "Bytes of changelog records written (keys and values)."),
    _g("standby_partitions", "rnnstream_standby_partitions", D,
       "Partitions of which this replica keeps a warm standby copy by tailing their changelog."),
    _g("standby_lag", "rnnstream_standby_lag_records", D,
       "Changelog records the standby copies have yet to read (sum over their partitions)."),
    _c("standby_takeovers", "rnnstream_standby_takeovers_total", D,
       "Partitions restored from this replica's standby copy (only the changelog's tail read)."),
    _c("transactions", "rnnstream_transactions_total", ("result",),
       "exactly_once: transactions by result (committed, aborted)."),
    _c("consumer_rejoins", "rnnstream_consumer_rejoins_total", (),
       "Times the daemon closed its consumer and joined the group again because it had been left "
       "without partitions the group did not give to anyone else (a kafka-python rejoin that never completed)."),
)
del D

class _HistogramChild:
    """The counts of one label set; ``observe`` / ``observe_many`` under the parent's lock."""

    __slots__ = ("_parent", "_bounds", "counts", "sum")

    def __init__(self, parent: "BulkHistogram"):
        self._parent = parent
        self._bounds = parent.bounds
        self.counts = np.zeros(len(parent.bounds) + 1, dtype=np.int64)   # non-cumulative; last: +Inf
        self.sum = 0.0

    def observe(self, value: float) -> None:
        i = int(np.searchsorted(self._bounds, value, side="left"))
        with self._parent.lock:
            self.counts[i] += 1
            self.sum += float(value)

    def observe_many(self, values: Any) -> None:
        """Observe every value of ``values`` in O(buckets) numpy work."""
        values = np.asarray(values, dtype=np.float64).ravel()
        if values.size == 0:
            return
        add = np.bincount(np.searchsorted(self._bounds, values, side="left"), minlength=len(self.counts))
        total = float(values.sum())
        with self._parent.lock:
            self.counts += add
            self.sum += total


class BulkHistogram(Collector):
    """A histogram whose counts rnnstream keeps; exported through ``collect()`` as a HistogramMetricFamily.

    ``labels(*values)`` returns the child of a label set (created at zero on first use). Thread-safe:
    the processing loop observes while the HTTP thread collects.
    """

    def __init__(self, name: str, documentation: str, labelnames: tuple[str, ...] = (), *,
                 buckets: tuple[float, ...], registry: CollectorRegistry | None = None):
        self.name, self.documentation, self.labelnames = name, documentation, tuple(labelnames)
        self.bounds = np.asarray([b for b in buckets if b != float("inf")], dtype=np.float64)
        self.lock = threading.Lock()
        self._children: dict[tuple[str, ...], _HistogramChild] = {}
        if not self.labelnames:
            self._children[()] = _HistogramChild(self)
        if registry is not None:
            registry.register(self)

    def labels(self, *values: str) -> _HistogramChild:
        key = tuple(str(v) for v in values)
        if len(key) != len(self.labelnames):
            raise ValueError(f"{self.name}: expected labels {self.labelnames}, got {key}")
        child = self._children.get(key)
        if child is None:
            with self.lock:
                child = self._children.setdefault(key, _HistogramChild(self))
        return child

    def observe(self, value: float) -> None:
        self.labels().observe(value)

    def observe_many(self, values: Any) -> None:
        self.labels().observe_many(values)

    def describe(self) -> Iterator[HistogramMetricFamily]:
        yield HistogramMetricFamily(self.name, self.documentation, labels=self.labelnames)

    def collect(self) -> Iterator[HistogramMetricFamily]:
        family = HistogramMetricFamily(self.name, self.documentation, labels=self.labelnames)
        edges = [_le(b) for b in self.bounds.tolist()] + ["+Inf"]
        with self.lock:
            snapshot = [(key, np.cumsum(c.counts).tolist(), c.sum) for key, c in self._children.items()]
        for key, cumulative, total in snapshot:
            family.add_metric(list(key), list(zip(edges, cumulative)), total)
        yield family


def _le(bound: float) -> str:
    """A bucket bound as prometheus_client writes it (``floatToGoString``: 1.0, 0.005, 1e-05)."""
    return floatToGoString(bound)


_KINDS = {"counter": Counter, "gauge": Gauge, "histogram": BulkHistogram}


def metric_names(include_optional: bool = True) -> frozenset[str]:
    """Exported metric names as written in ``METRIC_SPECS``."""
    return frozenset(s.name for s in METRIC_SPECS if include_optional or not s.optional)


def series_names() -> frozenset[str]:
    """Every sample name a PromQL query may use (histograms add ``_bucket``/``_sum``/``_count``)."""
    return frozenset(n for s in METRIC_SPECS for n in s.series_names())


class DetectorMetrics:
    """Pre-resolved children of one detector's metrics. Obtain through ``Metrics.for_detector``."""

    __slots__ = ("name", "processed", "anomalies", "score", "latency", "batch_duration", "entities",
                 "evicted", "training_ok", "training_failed", "training_skipped", "training_duration", "event_time_lag",
                 "outputs_pending", "outputs_truncated", "outputs_dropped",
                 "_training_loss", "_model_version", "_rejected_parent", "_rejected", "_parent",
                 "_failed_parent", "_failed",
                 "restore_records", "restore_bytes", "restore_duration", "changelog_records", "changelog_bytes",
                 "standby_partitions", "standby_lag", "standby_takeovers")

    def __init__(self, m: Metrics, name: str):
        self.name = name
        self.processed = m.events_processed.labels(name)
        self.anomalies = m.anomalies.labels(name)
        self.score = m.score.labels(name)
        self.latency = m.event_to_score_latency.labels(name)
        self.batch_duration = m.batch_duration.labels(name)
        self.entities = m.entities.labels(name)
        self.evicted = m.entities_evicted.labels(name)
        self.training_ok = m.training_runs.labels(name, "ok")
        self.training_failed = m.training_runs.labels(name, "failed")
        self.training_skipped = m.training_runs.labels(name, "skipped")
        self.training_duration = m.training_duration.labels(name)
        self.event_time_lag = m.event_time_lag.labels(name)
        self.outputs_pending = m.outputs_pending.labels(name)
        self.outputs_truncated = m.outputs_truncated.labels(name)
        self.outputs_dropped = m.outputs_dropped.labels(name)
        self._training_loss = m.training_loss
        self._model_version = m.model_version
        self._rejected_parent = m.events_rejected
        self._rejected: dict[str, Counter] = {}
        self._failed_parent = m.output_send_failures
        self._failed: dict[str, Counter] = {}
        self.restore_records = m.restore_records.labels(name)
        self.restore_bytes = m.restore_bytes.labels(name)
        self.restore_duration = m.restore_duration.labels(name)
        self.changelog_records = m.changelog_records.labels(name)
        self.changelog_bytes = m.changelog_bytes.labels(name)
        self.standby_partitions = m.standby_partitions.labels(name)
        self.standby_lag = m.standby_lag.labels(name)
        self.standby_takeovers = m.standby_takeovers.labels(name)
        self._parent = m

    def note_anomaly(self, entity: str, when: float) -> None:
        """An anomaly of ``entity`` was published at Unix time ``when`` (see ``Metrics.note_anomaly``)."""
        self._parent.note_anomaly(self.name, entity, when)

    def output_failed(self, topic: str) -> Counter:
        """The ``rnnstream_output_send_failures_total{detector, topic}`` child (topics come from the config)."""
        child = self._failed.get(topic)
        if child is None:
            child = self._failed[topic] = self._failed_parent.labels(self.name, topic)
        return child

    def rejected(self, reason: str) -> Counter:
        """The ``rnnstream_events_rejected_total{detector, reason}`` child, resolved once per reason.

        ``reason`` must come from a small fixed set (``InputRejected.reason``), never from event data.
        """
        child = self._rejected.get(reason)
        if child is None:
            child = self._rejected[reason] = self._rejected_parent.labels(self.name, reason)
        return child

    def record_training(self, ok: bool, duration_s: float, loss: float | None = None,
                        model_version: int | None = None, *, partition: Any = None) -> None:
        """Account one finished retraining run of ``partition``'s model (a TopicPartition or a
        ``(topic, partition)`` pair); loss and version are set only on success, and only with a partition."""
        self.training_duration.observe(duration_s)
        if not ok:
            self.training_failed.inc()
            return
        self.training_ok.inc()
        if partition is None:
            return
        topic, part = _tp(partition)
        if loss is not None:
            self._training_loss.labels(self.name, topic, part).set(loss)
        if model_version is not None:
            self._model_version.labels(self.name, topic, part).set(model_version)

    def start_partition(self, partition: Any, version: int) -> None:
        """Export ``partition``'s model at assignment: its weights' version (from a checkpoint or a
        fresh model). Its training loss appears with its first retraining in this process (no NaN
        placeholder: no metric ever holds a non-finite value)."""
        topic, part = _tp(partition)
        self._model_version.labels(self.name, topic, part).set(version)


def _tp(partition: Any) -> tuple[str, str]:
    if hasattr(partition, "topic"):
        return partition.topic, str(partition.partition)
    topic, part = partition
    return str(topic), str(part)


class Metrics:
    """All metric objects of one daemon, registered in ``registry``.

    Attribute names are the ``attr`` fields of ``METRIC_SPECS``. ``top_k_entities`` > 0 registers
    ``rnnstream_entity_score``; with 0 it is not registered and ``set_entity_scores`` does nothing.
    Creating two ``Metrics`` on the same registry raises (prometheus_client refuses duplicates).
    """

    events_consumed: Counter
    events_processed: Counter
    events_rejected: Counter
    anomalies: Counter
    score: BulkHistogram
    event_to_score_latency: BulkHistogram
    event_time_lag: Gauge
    batch_duration: BulkHistogram
    consumer_lag: Gauge
    entities: Gauge
    entities_evicted: Counter
    training_runs: Counter
    training_duration: BulkHistogram
    training_loss: Gauge
    model_version: Gauge
    checkpoint_duration: BulkHistogram
    checkpoint_last_success: Gauge
    checkpoint_failures: Counter
    checkpoint_corrupt: Counter
    output_send_failures: Counter
    outputs_pending: Gauge
    outputs_truncated: Counter
    outputs_dropped: Counter
    broker_connected: Gauge
    ready: Gauge
    build_info: Gauge
    entity_score: Gauge | None
    entity_last_anomaly: Gauge | None
    restoring_partitions: Gauge
    restore_records: Counter
    restore_bytes: Counter
    restore_duration: Histogram
    changelog_records: Counter
    changelog_bytes: Counter
    standby_partitions: Gauge
    standby_lag: Gauge
    standby_takeovers: Counter
    transactions: Counter
    consumer_rejoins: Counter

    def __init__(self, registry: CollectorRegistry, *, top_k_entities: int = 0, version: str = __version__):
        if top_k_entities < 0:
            raise ValueError(f"top_k_entities must be >= 0, got {top_k_entities}")
        self.registry = registry
        self.top_k_entities = top_k_entities
        for spec in METRIC_SPECS:
            if spec.optional and top_k_entities == 0:
                setattr(self, spec.attr, None)
                continue
            kwargs = {"buckets": spec.buckets} if spec.buckets else {}
            setattr(self, spec.attr, _KINDS[spec.kind](spec.name, spec.help, spec.labels, registry=registry, **kwargs))
        self.build_info.labels(version).set(1)
        self.ready.set(0)
        ProcessCollector(registry=registry)   # process_* (Linux /proc): RSS, CPU seconds, open fds
        for result in ("committed", "aborted"):
            self.transactions.labels(result)
        self._detectors: dict[str, DetectorMetrics] = {}
        self._topics: dict[str, Counter] = {}
        self._unrouted: dict[str, Counter] = {}
        self._lag: dict[tuple[str, int], Gauge] = {}
        self._exported_entities: dict[str, set[str]] = {}
        self._recent_anomalies: dict[str, dict[str, float]] = {}

    def for_detector(self, name: str) -> DetectorMetrics:
        """Cached children of detector ``name``; the first call makes its series appear (at 0).

        Call it for every configured detector at start-up so rate() and absent() see zeros, not gaps.
        """
        dm = self._detectors.get(name)
        if dm is None:
            if name == UNROUTED:
                raise ValueError(f"detector name {UNROUTED!r} is reserved for unroutable events")
            dm = self._detectors[name] = DetectorMetrics(self, name)
        return dm

    def rejected_unrouted(self, reason: str) -> Counter:
        """The cached ``rnnstream_events_rejected_total{detector="_unrouted", reason}`` child.

        Kept apart from ``for_detector`` so unroutable events do not create score/latency series.
        """
        child = self._unrouted.get(reason)
        if child is None:
            child = self._unrouted[reason] = self.events_rejected.labels(UNROUTED, reason)
        return child

    def for_topic(self, topic: str) -> Counter:
        """The cached ``rnnstream_events_consumed_total{topic}`` child."""
        child = self._topics.get(topic)
        if child is None:
            child = self._topics[topic] = self.events_consumed.labels(topic)
        return child

    def lag(self, topic: str, partition: int) -> Gauge:
        """The cached ``rnnstream_consumer_lag{topic, partition}`` child."""
        key = (topic, partition)
        child = self._lag.get(key)
        if child is None:
            child = self._lag[key] = self.consumer_lag.labels(topic, str(partition))
        return child

    def forget_partition(self, topic: str, partition: int, detector: str | None = None) -> None:
        """Stop exporting lag (and ``detector``'s model gauges) for a partition this consumer no
        longer owns (after a rebalance)."""
        if self._lag.pop((topic, partition), None) is not None:
            self.consumer_lag.remove(topic, str(partition))
        if detector is not None:
            for gauge in (self.model_version, self.training_loss):
                try:
                    gauge.remove(detector, topic, str(partition))
                except KeyError:
                    pass

    def set_ready(self, ready: bool) -> None:
        self.ready.set(1 if ready else 0)

    def record_checkpoint(self, ok: bool, duration_s: float, finished_at: float) -> None:
        """Account one checkpoint attempt; ``finished_at`` is Unix time (``time.time()``)."""
        self.checkpoint_duration.observe(duration_s)
        if ok:
            self.checkpoint_last_success.set(finished_at)
        else:
            self.checkpoint_failures.inc()

    def set_entity_scores(self, detector: str, scores: Mapping[str, float] | Iterable[tuple[str, float]]) -> int:
        """Replace ``detector``'s exported entity scores with its ``top_k_entities`` highest ones.

        Entities exported before but not in the new top K are removed from the registry, so the
        series count per detector never exceeds K. Ties at the cut-off are broken arbitrarily.
        Returns the number of entities now exported (0 when the feature is off).
        """
        if self.entity_score is None:
            return 0
        items = scores.items() if isinstance(scores, Mapping) else scores
        top = heapq.nlargest(self.top_k_entities, items, key=lambda kv: kv[1])
        new = {entity for entity, _ in top}
        old = self._exported_entities.get(detector, set())
        for entity in old - new:
            self.entity_score.remove(detector, entity)
        for entity, value in top:
            self.entity_score.labels(detector, entity).set(value)
        self._exported_entities[detector] = new
        return len(new)


    def note_anomaly(self, detector: str, entity: str, when: float) -> None:
        """Export ``when`` as the entity's last anomaly time, keeping the ``top_k_entities`` most recent
        entities per detector (older ones are removed). Does nothing when the feature is off."""
        if self.entity_last_anomaly is None:
            return
        recent = self._recent_anomalies.setdefault(detector, {})
        recent.pop(entity, None)
        recent[entity] = when                       # dicts keep insertion order: oldest first
        self.entity_last_anomaly.labels(detector, entity).set(when)
        while len(recent) > self.top_k_entities:
            oldest = next(iter(recent))
            del recent[oldest]
            self.entity_last_anomaly.remove(detector, oldest)


def _fmt_buckets(b: tuple[float, ...]) -> str:
    return ", ".join(f"{x:g}" for x in b)


def render_metrics_table() -> str:
    """Markdown reference table (name, type, labels, meaning) of every exported metric."""
    rows = ["| Metric | Type | Labels | Meaning |", "| --- | --- | --- | --- |"]
    for s in METRIC_SPECS:
        meaning = s.help.replace("|", "\\|")
        if s.buckets:
            meaning += f" Buckets: {_fmt_buckets(s.buckets)}."
        labels = ", ".join(f"`{label}`" for label in s.labels) or "—"
        rows.append(f"| `{s.name}` | {s.kind} | {labels} | {meaning} |")
    return "\n".join(rows) + "\n"
