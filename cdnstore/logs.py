"""Log set-up: text or JSON lines on stderr, each carrying the request or job it belongs to.

Context comes from `extra=` (jobs pass job_id; the request line passes method, path, status,
duration_ms) and, for any line logged while a request is handled, from the REQUEST_ID context
variable that the observing middleware (api/observe.py) sets.

The request line is the one line nearly every request writes. Through `Logger.info` it cost about as
much as the rest of a download link (a LogRecord, the formatter, a write and a flush per line: see
docs/performance.md), so `log_request` writes it straight into the daemon's stderr handler, as the very
text the formatter would give, batched into one write per event-loop turn. Where logging is set up any
other way (tests capturing records, an embedding program's handlers, filters), it goes through
`Logger.info` as every other line does.

Every line is one line: control characters in what a line carries (a request path with CR/LF, a username,
a header) are written as escapes (`escape`), so that nobody can append lines that look like cdnstore's own
(log forging); in the text format, the lines of a traceback that follow a record are indented, so only a
record's first line starts with a time. JSON lines escape them by JSON's own rules.
"""

from __future__ import annotations

import asyncio
import contextvars
import json
import logging
import sys
import time
from pathlib import Path
from typing import Any, TextIO

from .config import LogConfig
from .times import iso

REQUEST_ID: contextvars.ContextVar[str | None] = contextvars.ContextVar("request_id", default=None)

# C0 controls, DEL, C1 controls and Unicode's line and paragraph separators: each written as an escape.
_CONTROLS: dict[int, str] = {
    **{c: f"\\x{c:02x}" for c in (*range(0x20), *range(0x7F, 0xA0))},
    ord("\t"): "\\t",
    ord("\n"): "\\n",
    ord("\r"): "\\r",
    0x2028: "\\u2028",
    0x2029: "\\u2029",
}
# The same but the line feed: a traceback's lines stay lines (indented: TextFormatter).
_CONTROLS_BUT_NEWLINE = {c: text for c, text in _CONTROLS.items() if c != ord("\n")}


def escape(text: str) -> str:
    """`text` with every control character written as an escape (`\\r`, `\\n`, `\\x1b` ...): one line,
    however it was made. Text that is all printable (nearly every line) is returned as it is."""
    return text if text.isprintable() else text.translate(_CONTROLS)


def _indented(text: str) -> str:
    """A traceback (or stack) after a record's line: each of its lines indented, controls but the line
    feeds escaped, so none of them can pass for a record of its own."""
    return "  " + text.translate(_CONTROLS_BUT_NEWLINE).replace("\n", "\n  ")


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
    """The classic line, with the request id (when inside a request) appended as key=value; one line per
    record (controls escaped), a traceback's lines indented below it."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def formatMessage(self, record: logging.LogRecord) -> str:
        text = escape(super().formatMessage(record))
        rid = getattr(record, "request_id", None) or REQUEST_ID.get()
        return f"{text} request_id={escape(str(rid))}" if rid is not None else text

    def formatException(self, ei: Any) -> str:
        return _indented(super().formatException(ei))

    def formatStack(self, stack_info: str) -> str:
        return _indented(super().formatStack(stack_info))


class StderrHandler(logging.StreamHandler[TextIO]):
    """The daemon's handler: lines on stderr, and request lines queued and written once per loop turn.

    A queued line waits at most until the event loop's current turn ends (or is written at once outside
    a loop); any other record, `flush()` and `close()` write the queue first, so lines keep their order."""

    def __init__(self, stream: TextIO, *, json_lines: bool) -> None:
        super().__init__(stream)
        self.json_lines = json_lines
        self.setFormatter(JsonFormatter() if json_lines else TextFormatter())
        self._queued: list[str] = []
        self._second = -1
        self._second_text = ""

    def request_line(self, logger: str, message: str, context: dict[str, object]) -> None:
        """Queues the line `logger.info(message, extra=context)` would write through this handler."""
        now = time.time()
        if self.json_lines:
            line = json.dumps(
                {"ts": iso(now), "level": "INFO", "logger": logger, "message": message, **context},
                default=str,
                ensure_ascii=False,
            )
        else:
            line = f"{self._asctime(now)} INFO {logger}: {escape(message)} request_id={context['request_id']}"
        with self.lock:  # type: ignore[union-attr]  # created by Handler.__init__
            self._queued.append(line + self.terminator)
            if len(self._queued) > 1:
                return
        try:
            asyncio.get_running_loop().call_soon(self.flush)
        except RuntimeError:  # not on a loop: nothing would batch it
            self.flush()

    def _asctime(self, now: float) -> str:
        # logging.Formatter.formatTime's default text ("%Y-%m-%d %H:%M:%S,mmm"), its strftime done once a second
        second = int(now)
        if second != self._second:
            self._second_text = time.strftime(logging.Formatter.default_time_format, time.localtime(second))
            self._second = second
        return f"{self._second_text},{int((now - second) * 1000):03d}"

    def flush(self) -> None:
        with self.lock:  # type: ignore[union-attr]
            if self._queued:
                text, self._queued = "".join(self._queued), []
                try:
                    self.stream.write(text)
                except (OSError, ValueError):  # stderr gone or closed: as handleError would, drop the lines
                    return
            super().flush()

    def emit(self, record: logging.LogRecord) -> None:
        self.flush()
        super().emit(record)


def log_request(logger: logging.Logger, message: str, context: dict[str, object]) -> None:
    """`logger.info(message, extra=context)`, cheaply where the daemon's own handler is the only one."""
    root = logging.getLogger()
    handlers = root.handlers
    if (
        len(handlers) == 1
        and type(handler := handlers[0]) is StderrHandler
        and logger.isEnabledFor(logging.INFO)
        and not logger.handlers
        and not logger.filters
        and not root.filters
        and not handler.filters
        and handler.level <= logging.INFO
        and logger.propagate
    ):
        handler.request_line(logger.name, message, context)
    else:
        logger.info(message, extra=context)


def setup_logging(cfg: LogConfig) -> None:
    """Configure the root logger once (replacing earlier handlers, so a second call does not double lines)."""
    handler = StderrHandler(sys.stderr, json_lines=cfg.format == "json")
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(cfg.level)


def log_to_file(path: Path, cfg: LogConfig, *, terminal_level: int) -> None:
    """Every line also appended to `path` (as `log.format` says); the terminal (the handler setup_logging made)
    keeps only lines of `terminal_level` and above. For the demo: its terminal shows its URL, not its traffic."""
    file_handler = logging.FileHandler(path, encoding="utf-8")
    file_handler.setFormatter(JsonFormatter() if cfg.format == "json" else TextFormatter())
    root = logging.getLogger()
    for handler in root.handlers:
        handler.setLevel(terminal_level)
    root.addHandler(file_handler)
