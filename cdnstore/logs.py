"""Log set-up: text or JSON lines on stderr, each carrying the request or job it belongs to.

Context comes from `extra=` (jobs pass job_id; the request line passes method, path, status,
duration_ms) and, for any line logged while a request is handled, from the REQUEST_ID context
variable that the observing middleware (api/observe.py) sets.
"""

from __future__ import annotations

import contextvars
import json
import logging
import sys

from .config import LogConfig
from .times import iso

REQUEST_ID: contextvars.ContextVar[str | None] = contextvars.ContextVar("request_id", default=None)

# The extra fields a line may carry, in the order they are shown.
CONTEXT_FIELDS = ("request_id", "job_id", "method", "path", "status", "duration_ms")


def _context(record: logging.LogRecord) -> dict[str, object]:
    found = {name: value for name in CONTEXT_FIELDS if (value := getattr(record, name, None)) is not None}
    if "request_id" not in found and (rid := REQUEST_ID.get()) is not None:
        found["request_id"] = rid
    return found


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ts, level, logger, message, the context fields, and exc on errors."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, object] = {
            "ts": iso(record.created),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            **_context(record),
        }
        if record.exc_info:
            line["exc"] = self.formatException(record.exc_info)
        elif record.exc_text:
            line["exc"] = record.exc_text
        if record.stack_info:
            line["stack"] = self.formatStack(record.stack_info)
        return json.dumps(line, default=str, ensure_ascii=False)


class TextFormatter(logging.Formatter):
    """The classic line, with the request id (when inside a request) appended as key=value."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def formatMessage(self, record: logging.LogRecord) -> str:
        text = super().formatMessage(record)
        rid = getattr(record, "request_id", None) or REQUEST_ID.get()
        return f"{text} request_id={rid}" if rid is not None else text


def setup_logging(cfg: LogConfig) -> None:
    """Configure the root logger once (replacing earlier handlers, so a second call does not double lines)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if cfg.format == "json" else TextFormatter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(cfg.level)
