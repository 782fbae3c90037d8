"""JSON-lines logging to stdout: one object per record with ts, level, logger, msg and the extra fields.

``setup_logging(level, log_payloads)`` installs the formatter on the root logger. Fields passed with
``extra={...}`` appear as top-level keys. Guaranteed:

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


def setup_logging(level: Any = "INFO", log_payloads: bool = False, stream: TextIO | None = None) -> logging.Handler:
    """Replace the root logger's handlers with one JSON-lines handler on ``stream`` (default stdout).

    ``level`` is a level name/number, or a ``LoggingConfig`` (its ``level`` and ``log_payloads`` win).
    """
    if hasattr(level, "level"):
        log_payloads = bool(getattr(level, "log_payloads", log_payloads))
        level = level.level
    handler = logging.StreamHandler(sys.stdout if stream is None else stream)
    handler.setFormatter(JsonFormatter(log_payloads))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    logging.captureWarnings(True)
    return handler
