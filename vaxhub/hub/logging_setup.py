"""Logging that never writes secrets, as JSON lines or text, with the request id on every line.

- Redaction: every log record is passed through a record factory that masks
  bearer tokens, JWTs and assertion/code form fields, whatever logger or
  handler it goes to; the hub's formatters mask once more what the factory
  cannot see (exception text, `extra` values).
- `configure_logging(fmt, level)`: one handler on the root logger. `json`
  writes one object per line (timestamp, level, logger, message,
  request_id, then any `extra` fields), for log collectors in production;
  `text` writes a readable line for the demo and a terminal. In JSON mode
  uvicorn's own loggers are routed through the same handler, and the hub's
  access lines (`vaxhub.access`, one per request) are written; in text mode
  they are written only at DEBUG, as uvicorn's own access log is.
- The request id comes from `vaxhub.hub.observability.request_context`, so a
  line logged while a request or an outbox job is being handled names it.
"""

from __future__ import annotations

import logging
import re
import sys
from typing import Any, TextIO

from pythonjsonlogger.json import JsonFormatter

from vaxhub.hub.observability.request_context import current_request_id

_SECRET = re.compile(
    r"(?i)(bearer\s+)[A-Za-z0-9._~+/=-]+"
    r"|eyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*"
    r"|((?:client_assertion|subject_token|access_token|code)=)[^&\s]+"
)


def _mask(match: re.Match) -> str:
    if match.group(1):
        return match.group(1) + "[redacted]"
    if match.group(2):
        return match.group(2) + "[redacted]"
    return "[redacted-jwt]"


def redact(text: str) -> str:
    return _SECRET.sub(_mask, text)


_installed = False


def install_redaction() -> None:
    """Mask secrets in every log record this process creates, whatever logger or handler.

    Done in the record factory rather than in handler filters, so that handlers
    added later (uvicorn's, a test's) cannot miss it. Idempotent.
    """
    global _installed
    if _installed:
        return
    previous = logging.getLogRecordFactory()

    def factory(*args, **kwargs) -> logging.LogRecord:
        record = previous(*args, **kwargs)
        try:
            message = record.getMessage()
        except (TypeError, ValueError):
            return record
        cleaned = redact(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        return record

    logging.setLogRecordFactory(factory)
    _installed = True


def _with_request_id(record: logging.LogRecord) -> None:
    # Formatting runs in the thread (and context) that logged, so the bound id is the record's.
    if getattr(record, "request_id", None) is None:
        record.request_id = current_request_id()


class JsonLineFormatter(JsonFormatter):
    """One JSON object per line: timestamp (UTC, ISO 8601), level, logger, message, request_id, extras."""

    def __init__(self) -> None:
        super().__init__(
            "{levelname}{name}{message}{request_id}",
            style="{",
            rename_fields={"levelname": "level", "name": "logger"},
            timestamp=True,
        )

    def format(self, record: logging.LogRecord) -> str:
        _with_request_id(record)
        return super().format(record)

    def process_log_record(self, log_data: dict[str, Any]) -> dict[str, Any]:
        # Masked field by field, before serialising: masking the JSON text could eat its quotes.
        return {key: redact(value) if isinstance(value, str) else value for key, value in log_data.items()}


class TextLineFormatter(logging.Formatter):
    """`2026-11-26 10:00:00,123 INFO vaxhub.hub.x [request-id] message`, masked."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        _with_request_id(record)
        if record.request_id is None:
            record.request_id = "-"
        return redact(super().format(record))


LOG_FORMATS = {"json": JsonLineFormatter, "text": TextLineFormatter}
_UVICORN_LOGGERS = ("uvicorn", "uvicorn.error", "uvicorn.access")


class _HubHandler(logging.StreamHandler):
    """The root handler `configure_logging` installs (and replaces when called again).

    Given no stream, it writes to whatever `sys.stderr` is when a line is
    emitted, not to the one of the moment it was installed: a command run
    in-process (a test's `CliRunner`) swaps `sys.stderr` for its own and
    closes it afterwards."""

    def __init__(self, stream: TextIO | None = None):
        super().__init__(stream or sys.stderr)
        self._follow_stderr = stream is None

    def emit(self, record: logging.LogRecord) -> None:
        if self._follow_stderr:
            self.stream = sys.stderr  # under the handler's lock (Handler.handle)
        super().emit(record)


def make_handler(fmt: str, stream: TextIO | None = None) -> logging.Handler:
    """A stream handler writing the hub's lines in `fmt` (for a second destination, or tests)."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(LOG_FORMATS[fmt]())
    return handler


def configure_logging(fmt: str = "text", level: str = "INFO", *, stream: TextIO | None = None) -> logging.Handler:
    """Install the hub's one root handler in `fmt` ("json" or "text"); idempotent per process."""
    install_redaction()
    root = logging.getLogger()
    for old in [h for h in root.handlers if isinstance(h, _HubHandler)]:
        root.removeHandler(old)
    handler = _HubHandler(stream)
    handler.setFormatter(LOG_FORMATS[fmt]())
    root.addHandler(handler)
    root.setLevel(level.upper())
    logging.getLogger("vaxhub.access").setLevel(logging.INFO if fmt == "json" or level.upper() == "DEBUG" else logging.WARNING)
    # The HTTP client logs every registry call at INFO (with the person's number
    # in the URL); the hub's own metrics and logs already count those calls.
    # fontTools logs every table and glyph name it cuts at INFO: 130 kB when a
    # process cuts the certificate fonts, 15 kB for each PDF drawn.
    for name in ("httpx", "httpcore", "fontTools"):
        logging.getLogger(name).setLevel(logging.DEBUG if level.upper() == "DEBUG" else logging.WARNING)
    if fmt == "json":
        # uvicorn installs its own text handlers; in JSON mode its lines go through ours.
        for name in _UVICORN_LOGGERS:
            logger = logging.getLogger(name)
            logger.handlers.clear()
            logger.propagate = True
    return handler
