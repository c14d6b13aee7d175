"""Logging that never writes secrets: bearer tokens, JWTs and assertions are masked."""

from __future__ import annotations

import logging
import re

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
