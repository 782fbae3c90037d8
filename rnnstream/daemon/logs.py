"""JSON-lines logging to stdout: one object per record with ts, level, logger, msg and the extra fields.

``setup_logging(level, log_payloads)`` installs the formatter on the root logger, with the per-logger
levels of ``logging.loggers``. Fields passed with ``extra={...}`` appear as top-level keys. Guaranteed:

* kafka-python's own lines (logger ``kafka.*``) are DEBUG, shown only when ``kafka=DEBUG`` is set,
  except at a change of state (``KafkaClientGate``): its first WARNING or ERROR becomes one WARNING
  line "kafka client problem", repeated at most every ``remind_seconds`` while problems last, and the
  next successful connection or group join one WARNING "kafka client recovered" with the number of
  lines held back;
* ``RateLimitedLog`` caps a recurring INFO line (one per published anomaly) at ``burst`` lines per
  ``period`` seconds, then logs how many were skipped;
* payloads stay out of the log unless ``log_payloads`` is true: extra fields named in
  ``PAYLOAD_FIELDS`` are replaced by ``"<omitted>"`` (log event bodies only under those names);
* secrets: config objects mask ``Secret`` values in their repr, and ``Secret`` values passed as
  extra fields are rendered by their masked repr, never revealed;
* every line is valid JSON (values JSON cannot hold are rendered with ``repr``), exceptions go to
  ``exc`` as the formatted traceback.
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from datetime import datetime, timezone
from typing import Any, TextIO

import orjson

PAYLOAD_FIELDS = frozenset({"payload", "value", "record_value", "key", "record_key"})
OMITTED = "<omitted>"

# Attributes every LogRecord has; anything else on a record came from ``extra``.
_STANDARD = frozenset(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime", "taskName"}


def _default(obj: Any) -> Any:
    if isinstance(obj, (bytes, bytearray, memoryview)):
        return bytes(obj).decode("utf-8", "replace")
    if hasattr(obj, "tolist"):         # numpy scalars and arrays
        return obj.tolist()
    if isinstance(obj, (set, frozenset, tuple)):
        return list(obj)
    return repr(obj)


class JsonFormatter(logging.Formatter):
    def __init__(self, log_payloads: bool = False):
        super().__init__()
        self.log_payloads = log_payloads

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, timezone.utc).isoformat(timespec="milliseconds")
            .replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key in _STANDARD or key.startswith("_") or key in out:
                continue
            if key in PAYLOAD_FIELDS and not self.log_payloads:
                value = OMITTED
            out[key] = value
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        if record.stack_info:
            out["stack"] = self.formatStack(record.stack_info)
        opts = orjson.OPT_NON_STR_KEYS | orjson.OPT_SERIALIZE_NUMPY
        try:
            return orjson.dumps(out, default=_default, option=opts).decode()
        except TypeError:   # e.g. an int beyond 64 bits
            return orjson.dumps({k: v if isinstance(v, (str, int, float, bool, type(None))) and
                                 not (isinstance(v, int) and abs(v) >= 1 << 63) else repr(v)
                                 for k, v in out.items()}).decode()


KAFKA_LOGGER = "kafka"
_RECOVERED = (": connected to ", "Successfully joined group")


class KafkaClientGate(logging.Filter):
    """A handler filter for kafka-python's records: one WARNING per change of state, the rest DEBUG.

    Records not from ``kafka.*`` pass untouched. ``show_debug``: whether demoted records are shown
    (the configured level of the ``kafka`` logger is DEBUG).
    """

    def __init__(self, show_debug: bool = False, remind_seconds: float = 600.0, clock=time.monotonic):
        super().__init__()
        self.show_debug = show_debug
        self.remind_seconds = remind_seconds
        self.clock = clock
        self.failing = False
        self.held_back = 0
        self._warned_at = float("-inf")
        self._lock = threading.Lock()

    def filter(self, record: logging.LogRecord) -> bool:
        if not (record.name == KAFKA_LOGGER or record.name.startswith(KAFKA_LOGGER + ".")):
            return True
        with self._lock:
            now = self.clock()
            if record.levelno >= logging.WARNING:
                if not self.failing or now - self._warned_at >= self.remind_seconds:
                    first = not self.failing
                    self.failing, self._warned_at = True, now
                    self._rewrite(record, logging.WARNING,
                                  "kafka client problem" if first else "kafka client problem continues",
                                  held_back=self.held_back)
                    self.held_back = 0
                    return True
                self.held_back += 1
            elif self.failing and any(marker in record.getMessage() for marker in _RECOVERED):
                self._rewrite(record, logging.WARNING, "kafka client recovered", held_back=self.held_back)
                self.failing, self.held_back = False, 0
                return True
        if not self.show_debug:
            return False
        record.levelno, record.levelname = logging.DEBUG, "DEBUG"
        return True

    @staticmethod
    def _rewrite(record: logging.LogRecord, level: int, summary: str, held_back: int) -> None:
        detail = record.getMessage()
        record.msg, record.args = summary, ()
        record.levelno, record.levelname = level, logging.getLevelName(level)
        record.detail = detail
        record.kafka_logger = record.name
        if held_back:
            record.kafka_lines_held_back = held_back
        if level > logging.DEBUG:
            record.exc_info = record.exc_text = None   # the detail says it; tracebacks stay at DEBUG


class RateLimitedLog:
    """Log a recurring line at most ``burst`` times per ``period`` seconds; the skipped count is
    added (``skipped``) to the next line that is logged. Thread-safe."""

    def __init__(self, logger: logging.Logger, burst: int = 10, period: float = 60.0, clock=time.monotonic):
        self.logger, self.burst, self.period, self.clock = logger, burst, period, clock
        self._window_start = float("-inf")
        self._count = 0
        self.skipped = 0
        self._lock = threading.Lock()

    def info(self, msg: str, **fields: Any) -> bool:
        """Log ``msg`` with ``fields`` at INFO unless over the limit; True when it was logged."""
        with self._lock:
            now = self.clock()
            if now - self._window_start >= self.period:
                self._window_start, self._count = now, 0
            if self._count >= self.burst:
                self.skipped += 1
                return False
            self._count += 1
            if self.skipped:
                fields["skipped"], self.skipped = self.skipped, 0
        self.logger.info(msg, extra=fields)
        return True


def parse_logger_levels(entries: Any) -> dict[str, str]:
    """``["kafka=DEBUG", ...]`` -> ``{"kafka": "DEBUG"}`` (validated by the config schema)."""
    out = {}
    for entry in entries or ():
        name, _, level = str(entry).partition("=")
        out[name.strip()] = level.strip().upper()
    return out


def setup_logging(level: Any = "INFO", log_payloads: bool = False, stream: TextIO | None = None,
                  loggers: dict[str, str] | None = None) -> logging.Handler:
    """Replace the root logger's handlers with one JSON-lines handler on ``stream`` (default stdout).

    ``level`` is a level name/number, or a ``LoggingConfig`` (its ``level``, ``log_payloads`` and
    ``loggers`` win). ``loggers`` maps logger names to levels.
    """
    levels: dict[str, str] = {}
    if hasattr(level, "level"):
        log_payloads = bool(getattr(level, "log_payloads", log_payloads))
        levels = parse_logger_levels(getattr(level, "loggers", ()))
        level = level.level
    levels.update(loggers or {})
    for name, lvl in levels.items():
        logging.getLogger(name).setLevel(lvl)
    kafka_level = levels.get(KAFKA_LOGGER)
    show_kafka_debug = kafka_level is not None and logging.getLevelName(kafka_level) <= logging.DEBUG
    if kafka_level is None:
        # kafka-python's INFO lines still reach the gate (which turns them into DEBUG); its DEBUG
        # lines, one per fetch, are never even formatted.
        logging.getLogger(KAFKA_LOGGER).setLevel(logging.INFO)
    handler = logging.StreamHandler(sys.stdout if stream is None else stream)
    handler.setFormatter(JsonFormatter(log_payloads))
    handler.addFilter(KafkaClientGate(show_debug=show_kafka_debug))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    logging.captureWarnings(True)
    return handler
