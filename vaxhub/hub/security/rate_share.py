"""A share of each caller's rate-limit budget that a process spends without asking.

Asking the shared counter (Redis, or the database) on every request costs
each request a round trip, and on the API's event loop a Redis round trip
also hands the interpreter lock to the request threads and queues for it
again. Far from the limit the answer is known before it is asked, so a
process allows a caller's request itself while

    what the shared counter last said (the previous window weighted as the
    limiter weighs it, plus this window) + the hits this process allowed and
    has not sent yet + this request

stays within half the burst, and while at most `burst // 20` of the caller's
hits wait unsent here. The unsent hits go to the shared counter together
every `flush_seconds` (one pipeline, from a thread of their own), and the
answers bring back what every process has counted. Nearer the limit each
request asks the shared counter, taking this process's unsent hits with it,
exactly as without a share.

What it costs in precision: a caller who spreads requests over N processes
can pass the burst by at most N × burst // 20 before the processes know; a
limit whose burst is under 20 has no share (every request asks), and callers
the hub throttles for security (logins, public pages) always ask.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

log = logging.getLogger(__name__)

SHARE_OF_BURST = 20  # at most burst // 20 unsent hits per caller and process
CEILING = 0.5  # of the burst: above it every request asks the shared counter
FLUSH_SECONDS = 0.5


class BatchCounter(Protocol):
    def hit_many(self, hits: list[tuple[str, int, int]], window_ms: int) -> list[tuple[int, int]]:
        """Add `count` hits to each (caller, window_start, count); each window's
        hits and its previous window's hits after the addition."""


@dataclass
class _Known:
    window_start: int
    current: int
    previous: int


class LocalShare:
    """The unsent hits and last-known counts of one process's callers."""

    def __init__(self, counter: BatchCounter, *, clock: Callable[[], float], unavailable: type[Exception],
                 flush_seconds: float | None = FLUSH_SECONDS):
        self.counter = counter
        self.window_ms = 1000  # the limiter's, as of its last request (it may be changed while running)
        self._clock = clock
        self._flush_seconds = flush_seconds  # None: flushed by the caller (tests)
        self._unavailable = unavailable  # the counter's "cannot be reached" error
        self._known: dict[str, _Known] = {}
        self._unsent: dict[tuple[str, int], int] = {}
        self._lock = threading.Lock()
        self._flusher: threading.Thread | None = None
        self._stop = threading.Event()
        self._complained_at = float("-inf")

    def allow(self, key: str, start: int, elapsed: float, burst: int, window_ms: int) -> bool:
        """Whether this request of `key` is allowed here, without asking; counted as unsent if so."""
        most = burst // SHARE_OF_BURST
        if most == 0:
            return False
        with self._lock:
            self.window_ms = window_ms
            unsent = self._unsent.get((key, start), 0)
            if unsent >= most:
                return False
            current, previous = self._estimate(key, start)
            if previous * (1 - elapsed) + current + unsent + 1 > burst * CEILING:
                return False
            self._unsent[(key, start)] = unsent + 1
        if self._flusher is None and self._flush_seconds is not None:
            self._start_flusher()
        return True

    def take_unsent(self, key: str, start: int) -> int:
        """This window's unsent hits of `key`, handed to a request that asks the counter itself."""
        with self._lock:
            return self._unsent.pop((key, start), 0)

    def unsent_before(self, key: str, start: int) -> int:
        """The previous window's hits of `key` this process has not sent yet."""
        with self._lock:
            return self._unsent.get((key, start - self.window_ms), 0)

    def learn(self, key: str, start: int, current: int, previous: int) -> None:
        with self._lock:
            self._learn(key, start, current, previous)

    def flush(self) -> None:
        """Send every unsent hit in one batch and learn the counts that come back."""
        with self._lock:
            batch, self._unsent = self._unsent, {}
        if batch:
            hits = [(key, start, count) for (key, start), count in batch.items()]
            try:
                answers = self.counter.hit_many(hits, self.window_ms)
            except self._unavailable as exc:
                # The limiter lets requests through while the counter is away; these are dropped alike.
                self._complain(exc)
                answers = []
            with self._lock:
                for (key, start, _count), (current, previous) in zip(hits, answers):
                    self._learn(key, start, current, previous)
        self._forget_old()

    def _estimate(self, key: str, start: int) -> tuple[int, int]:
        """(this window's hits, the previous window's) as far as this process knows."""
        known = self._known.get(key)
        previous_unsent = self._unsent.get((key, start - self.window_ms), 0)
        if known is None or known.window_start < start - self.window_ms:
            return 0, previous_unsent
        if known.window_start == start:
            return known.current, known.previous + previous_unsent
        return 0, known.current + previous_unsent  # what we knew of the window that is now the previous one

    def _learn(self, key: str, start: int, current: int, previous: int) -> None:
        known = self._known.get(key)
        if known is None or known.window_start < start or (known.window_start == start and current > known.current):
            self._known[key] = _Known(start, current, previous)

    def _forget_old(self) -> None:
        """Callers not seen for two windows: nothing known of them still counts."""
        now_ms = int(self._clock() * 1000)
        oldest = now_ms - now_ms % self.window_ms - self.window_ms
        with self._lock:
            stale = [key for key, known in self._known.items() if known.window_start < oldest]
            for key in stale:
                del self._known[key]

    def _start_flusher(self) -> None:
        with self._lock:
            if self._flusher is not None or self._stop.is_set():
                return
            self._flusher = threading.Thread(target=self._run, name="rate-limit-share", daemon=True)
        self._flusher.start()

    def close(self) -> None:
        """Stop the thread and send what is left (the API's shutdown): nothing is written after."""
        self._stop.set()
        if self._flusher is not None:
            self._flusher.join(timeout=5)
        self.flush()

    def _run(self) -> None:
        while not self._stop.wait(self._flush_seconds):
            try:
                self.flush()
            except Exception as exc:  # noqa: BLE001 - the next flush tries again
                self._complain(exc)

    def _complain(self, exc: Exception) -> None:
        """One log line a minute while the counter cannot take the hits, not two a second."""
        if time.monotonic() - self._complained_at > 60:
            self._complained_at = time.monotonic()
            log.warning("rate-limit hits not sent: %s: %s", type(exc).__name__, exc)
