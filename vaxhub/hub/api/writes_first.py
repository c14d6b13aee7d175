"""Writes first: when an API process has more requests than places to work on
them (`api_threads`), a waiting write gets the next free place before the
reads that came earlier.

A vaccination site's system holds the person at the desk until the hub
answers its Bundle or HL7 v2 message; the health book's pages, certificate
downloads and QR checks can wait a moment longer. When the machine is busy,
requests queue in each process's event loop, and in arrival order a write
would wait behind every read ahead of it. It adds no capacity: it moves the
waiting from writes to reads. Reads are not starved while writes keep coming:
`reads_floor` places (a quarter, at least one) go to a waiting read whenever
fewer reads than that are being worked on.

A write is a POST, PUT, PATCH or DELETE to `/fhir` or `/hl7v2`, except
searches (`_search`) and operations (`$match`, `$export`). Load balancers'
probes (`/healthz`, `/readyz`) and `/metrics` never wait.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque

from starlette.types import ASGIApp, Receive, Scope, Send

from vaxhub.hub.observability.metrics import API_QUEUE_WAIT

_WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
_NEVER_WAIT = frozenset({"/healthz", "/readyz", "/metrics"})


def is_write(method: str, path: str) -> bool:
    """A request that records health data at a site's request."""
    if method not in _WRITE_METHODS:
        return False
    if path == "/hl7v2" or path.startswith("/hl7v2/"):
        return True
    if path == "/fhir" or path.startswith("/fhir/"):
        last = path.rstrip("/").rsplit("/", 1)[-1]
        return last != "_search" and not last.startswith("$")
    return False


class PriorityGate:
    """`places` requests at once; waiting writes are let in before waiting reads,
    except that a waiting read is let in while fewer than `reads_floor` reads are in.

    Not thread-safe: one per event loop, used from that loop only."""

    def __init__(self, places: int, reads_floor: int | None = None):
        if places < 1:
            raise ValueError("a gate needs at least one place")
        self.places = places
        self.reads_floor = max(1, places // 4) if reads_floor is None else reads_floor
        self.busy = 0
        self.reads_busy = 0
        self._writes: deque[asyncio.Future[None]] = deque()
        self._reads: deque[asyncio.Future[None]] = deque()

    @property
    def waiting(self) -> tuple[int, int]:
        """(writes, reads) waiting for a place."""
        return len(self._writes), len(self._reads)

    async def enter(self, write: bool) -> None:
        if self.busy < self.places:  # a free place means nobody waits (`_wake` fills them)
            self._take(write)
            return
        queue = self._writes if write else self._reads
        place: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        queue.append(place)
        try:
            await place
        except asyncio.CancelledError:
            if place.done() and not place.cancelled():
                self.leave(write)  # given a place, then cancelled (the client left): pass it on
            elif place in queue:  # `_wake` may have dropped it already
                queue.remove(place)
            raise

    def leave(self, write: bool) -> None:
        self.busy -= 1
        if not write:
            self.reads_busy -= 1
        self._wake()

    def _take(self, write: bool) -> None:
        self.busy += 1
        if not write:
            self.reads_busy += 1

    def _wake(self) -> None:
        while self.busy < self.places:
            if self._reads and (self.reads_busy < self.reads_floor or not self._writes):
                queue, write = self._reads, False
            elif self._writes:
                queue, write = self._writes, True
            else:
                return
            place = queue.popleft()
            if place.done():  # cancelled while waiting
                continue
            self._take(write)
            place.set_result(None)


class WritesFirst:
    """ASGI middleware: each HTTP request holds a place of the process's gate while it is handled."""

    def __init__(self, app: ASGIApp, places: int, reads_floor: int | None = None):
        self.app = app
        self.places = places
        self.reads_floor = reads_floor
        self._gate: PriorityGate | None = None  # made on the first request; its waiters' futures belong to the loop serving them

    @property
    def gate(self) -> PriorityGate:
        if self._gate is None:
            self._gate = PriorityGate(self.places, self.reads_floor)
        return self._gate

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path, root = scope["path"], scope.get("root_path") or ""
        if root and path.startswith(root):  # served under a prefix (uvicorn --root-path)
            path = path[len(root):]
        if path in _NEVER_WAIT:
            await self.app(scope, receive, send)
            return
        write = is_write(scope["method"], path)
        gate = self.gate
        asked = time.perf_counter()
        await gate.enter(write)
        API_QUEUE_WAIT.labels("write" if write else "read").observe(time.perf_counter() - asked)
        try:
            await self.app(scope, receive, send)
        finally:
            gate.leave(write)
