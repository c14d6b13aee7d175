"""The request id of the work in progress, carried through logs, outbox jobs and registry calls.

An API request binds its id (the caller's `X-Request-ID` when sane, else a
fresh one) for everything it does; the write listeners store it with the
outbox rows they queue, and a worker binds the stored id while it processes
that job, so one id follows a record from the hospital's request to the
registry's logs. The id lives in a context variable: asyncio tasks and the
thread pool Starlette runs sync routes in inherit it, and worker threads bind
it explicitly.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

REQUEST_ID_HEADER = "X-Request-ID"
# Ids from callers end up in log lines, database rows and other services'
# headers: bounded length and a charset with no spaces, quotes or control
# characters (UUIDs, W3C trace ids, ULIDs and the like all fit).
MAX_REQUEST_ID_LENGTH = 64
_SANE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:@+/=-]{0,%d}" % (MAX_REQUEST_ID_LENGTH - 1))

_current: ContextVar[str | None] = ContextVar("vaxhub_request_id", default=None)


def new_request_id() -> str:
    return uuid.uuid4().hex


def sane_request_id(value: str | None) -> str | None:
    """The caller's id if it is safe to reuse, else None (a fresh one is made instead)."""
    if value and _SANE.fullmatch(value):
        return value
    return None


def current_request_id() -> str | None:
    return _current.get()


@contextmanager
def bound_request_id(request_id: str | None) -> Iterator[str | None]:
    """Bind `request_id` for the code inside (None unbinds), restoring the outer one after."""
    token = _current.set(request_id)
    try:
        yield request_id
    finally:
        _current.reset(token)


def outgoing_headers() -> dict[str, str]:
    """HTTP headers that carry the current request id to another service."""
    request_id = _current.get()
    return {REQUEST_ID_HEADER: request_id} if request_id else {}
