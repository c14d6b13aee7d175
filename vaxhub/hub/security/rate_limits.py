"""Per-caller rate limits shared by every hub process.

A sliding-window counter (the estimate of Cloudflare's and nginx's limiters):
requests are counted per caller in fixed windows of `burst / rate` seconds;
a request is allowed while

    hits in the previous window × (share of the current window still to run)
    + hits in the current window (this one included)

stays within `burst`. A caller may thus send `burst` requests at once and
`rate` per second sustained, and a window boundary does not reset its budget.
A refused request is taken back off the count, so a caller sending faster
than the rate still gets the rate through.

The counters live where every process sees them (`VAXHUB_RATE_LIMIT_BACKEND`):

- `database` (default): one atomic upsert per request into `rate_limit_window`
  (`INSERT … ON CONFLICT DO UPDATE … RETURNING`, PostgreSQL and SQLite ≥ 3.35),
  old windows swept by each process once a minute;
- `redis`: one Lua script per request (`EVALSHA`) increments the window's
  key, sets its expiry and reads the previous window, Redis expiring old
  windows itself. Should Redis be unreachable the request is let
  through (counted in `vaxhub_rate_limit_backend_errors_total` and logged),
  and Redis is left alone for 30 s (`RestAfterFailure`): the limit protects
  the hub, it must not take the API down with it;
- `memory`: this process only, for tests and single-process tools.

With a shared counter, far from a caller's limit each process allows the
caller's requests itself and sends their count every half second
(`rate_share.LocalShare`, `VAXHUB_RATE_LIMIT_LOCAL_SHARE`); near the limit
every request asks. Logins and public pages always ask (`exact=True`).
"""

from __future__ import annotations

import hashlib
import logging
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from sqlalchemy import Engine, bindparam, delete, select, update
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import SQLAlchemyError

from vaxhub.errors import RateLimited
from vaxhub.hub.observability.metrics import RATE_LIMITED, RATE_LIMIT_BACKEND_ERRORS
from vaxhub.hub.rest_after_failure import RestAfterFailure
from vaxhub.hub.security.rate_share import LocalShare
from vaxhub.hub.storage.engine import write_transaction
from vaxhub.hub.storage.rate_limit_tables import RateLimitWindowRow

log = logging.getLogger(__name__)

WINDOW = RateLimitWindowRow.__table__
MAX_KEY = 200
MIN_WINDOW_MS = 1000
SWEEP_SECONDS = 60.0


class CounterUnavailable(Exception):
    """The shared counter could not be reached."""


class WindowCounter(Protocol):
    # True when `hit` answers within a short timeout and without a database
    # transaction, so the API may call it on its event loop instead of
    # handing each request's check to a thread (a hop costs more CPU than
    # the check).
    quick: bool

    def hit(self, caller: str, window_start: int, window_ms: int, count: int = 1) -> tuple[int, int]:
        """Count `count` requests of `caller` in the window starting at `window_start`
        (epoch ms); return the hits in this window and in the previous one."""

    def hit_many(self, hits: list[tuple[str, int, int]], window_ms: int) -> list[tuple[int, int]]:
        """`hit` for each (caller, window_start, count), in one round trip where the counter allows."""

    def undo(self, caller: str, window_start: int) -> None:
        """Take back one request counted by `hit` (it was refused)."""


def counter_key(caller: str) -> str:
    """The caller as stored: long keys (an address with a prefix, a long client id) hashed to a bounded size."""
    if len(caller) <= MAX_KEY:
        return caller
    return "sha256:" + hashlib.sha256(caller.encode("utf-8")).hexdigest()


def retry_after_seconds(previous: int, current: int, burst: int, elapsed: float, window_seconds: float) -> int:
    """Seconds until one more request would be allowed, if none came meanwhile."""
    if previous > 0 and burst - current - 1 >= 0:
        # Fits later in this window, once enough of the previous window has faded.
        fits_at = 1 - (burst - current - 1) / previous
        wait = (fits_at - elapsed) * window_seconds
    else:
        # Fits in the next window, once enough of this one has faded.
        fades = max(0.0, 1 - (burst - 1) / current) if current else 0.0
        wait = (1 - elapsed) * window_seconds + fades * window_seconds
    return max(1, math.ceil(wait))


@dataclass
class RateLimiter:
    """`rate` requests per second per caller, bursts up to `burst`, counted in `counter`."""

    rate: float
    burst: int
    counter: WindowCounter = field(default_factory=lambda: MemoryWindows())
    clock: Callable[[], float] = time.time  # wall clock: windows must line up across machines
    # Spend a share of each caller's budget without asking a shared counter (`rate_share`).
    local_share: bool = False
    share_flush_seconds: float | None = 0.5  # None: `flush_share()` sends the unsent hits (tests)
    _warned_at: float = field(default=float("-inf"), repr=False)
    _share: LocalShare | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        if self.local_share:
            self._share = LocalShare(self.counter, clock=self.clock, unavailable=CounterUnavailable, flush_seconds=self.share_flush_seconds)

    @property
    def window_ms(self) -> int:
        return max(MIN_WINDOW_MS, int(self.burst / self.rate * 1000))

    def take(self, caller: str, *, exact: bool = False) -> None:
        """Count one request of `caller`; raises RateLimited when it is over the limit.

        `exact`: ask the shared counter even far from the limit (callers
        throttled for security: a share would let N processes each allow a
        little more)."""
        if exact or not self.spend_locally(caller):
            self.ask(caller)

    def spend_locally(self, caller: str) -> bool:
        """Whether this process's share allows the request without asking (counted if so)."""
        if self._share is None:
            return False
        start, elapsed = self._window_now()
        return self._share.allow(counter_key(caller), start, elapsed, self.burst, self.window_ms)

    def ask(self, caller: str) -> None:
        """Count one request of `caller` in the shared counter, with this process's unsent hits."""
        start, elapsed = self._window_now()
        window_ms = self.window_ms
        key = counter_key(caller)
        share = self._share
        count = 1 + (share.take_unsent(key, start) if share is not None else 0)
        try:
            current, previous = self.counter.hit(key, start, window_ms, count)
        except CounterUnavailable as exc:
            RATE_LIMIT_BACKEND_ERRORS.inc()
            if time.monotonic() - self._warned_at > SWEEP_SECONDS:  # one line a minute, not one per request
                self._warned_at = time.monotonic()
                log.warning("rate limit not applied: %s", exc)
            return
        if share is not None:
            share.learn(key, start, current, previous)
            previous += share.unsent_before(key, start)
        if previous * (1 - elapsed) + current > self.burst:
            RATE_LIMITED.inc()
            try:
                self.counter.undo(key, start)
            except CounterUnavailable:
                pass  # counted once too often: the caller waits a little longer
            wait = retry_after_seconds(previous, current, self.burst, elapsed, window_ms / 1000)
            raise RateLimited(f"Too many requests from {caller}; slow down", retry_after=wait)

    def _window_now(self) -> tuple[int, float]:
        """The current window's start (epoch ms) and how much of it has passed (0–1)."""
        now_ms = int(self.clock() * 1000)
        window_ms = self.window_ms
        start = now_ms - now_ms % window_ms
        return start, (now_ms - start) / window_ms

    def flush_share(self) -> None:
        """Send this process's unsent hits now (the share's thread does it every half second)."""
        if self._share is not None:
            self._share.flush()

    def close(self) -> None:
        """Stop the share's thread and send its last hits (at the API's shutdown)."""
        if self._share is not None:
            self._share.close()


class MemoryWindows:
    """Counters in this process only."""

    quick = True

    def __init__(self, clock: Callable[[], float] = time.time):
        self._hits: dict[tuple[str, int], tuple[int, int]] = {}  # (caller, start) -> (hits, expires ms)
        self._lock = threading.Lock()
        self._clock = clock
        self._swept = clock()

    def hit(self, caller: str, window_start: int, window_ms: int, count: int = 1) -> tuple[int, int]:
        with self._lock:
            hits, _ = self._hits.get((caller, window_start), (0, 0))
            self._hits[(caller, window_start)] = (hits + count, window_start + 2 * window_ms)
            previous = self._hits.get((caller, window_start - window_ms), (0, 0))[0]
            now = self._clock()
            if now - self._swept > SWEEP_SECONDS:
                self._swept = now
                self._hits = {k: v for k, v in self._hits.items() if v[1] >= now * 1000}
        return hits + count, previous

    def hit_many(self, hits: list[tuple[str, int, int]], window_ms: int) -> list[tuple[int, int]]:
        return [self.hit(caller, start, window_ms, count) for caller, start, count in hits]

    def undo(self, caller: str, window_start: int) -> None:
        with self._lock:
            hits, expires = self._hits.get((caller, window_start), (1, 0))
            self._hits[(caller, window_start)] = (hits - 1, expires)


class DatabaseWindows:
    """Counters in the hub's database (`rate_limit_window`), one upsert per request."""

    quick = False  # a write transaction: on a thread, never on the event loop

    def __init__(self, engine: Engine, *, clock: Callable[[], float] = time.time, sweep_seconds: float = SWEEP_SECONDS):
        self.engine = engine
        self._clock = clock
        self._sweep_seconds = sweep_seconds
        self._count = _count_statement(postgresql_insert if engine.dialect.name == "postgresql" else sqlite_insert)
        self._swept = float("-inf")

    def hit(self, caller: str, window_start: int, window_ms: int, count: int = 1) -> tuple[int, int]:
        return self.hit_many([(caller, window_start, count)], window_ms)[0]

    def hit_many(self, hits: list[tuple[str, int, int]], window_ms: int) -> list[tuple[int, int]]:
        answers = []
        with write_transaction(self.engine) as conn:
            for caller, start, count in hits:
                current = conn.execute(self._count, {"c": caller, "ws": start, "n": count, "exp": start + 2 * window_ms}).scalar_one()
                previous = conn.execute(_PREVIOUS, {"c": caller, "ws": start - window_ms}).scalar()
                answers.append((current, previous or 0))
        self._sweep()
        return answers

    def undo(self, caller: str, window_start: int) -> None:
        with write_transaction(self.engine) as conn:
            conn.execute(_UNDO, {"c": caller, "ws": window_start})

    def _sweep(self) -> None:
        if time.monotonic() - self._swept < self._sweep_seconds:
            return
        self._swept = time.monotonic()
        try:
            with write_transaction(self.engine) as conn:
                conn.execute(delete(WINDOW).where(WINDOW.c.expires_at < int(self._clock() * 1000)))
        except SQLAlchemyError as exc:  # another process sweeping the same rows; the next sweep gets them
            log.info("rate-limit sweep skipped: %s", exc)


# Built once, as every request runs them: building the statements and their
# cache keys was about half of a count's client CPU (bench/rate_limits.py).
def _count_statement(insert_of: Callable) -> Any:
    stmt = insert_of(WINDOW).values(caller=bindparam("c"), window_start=bindparam("ws"), hits=bindparam("n"), expires_at=bindparam("exp"))
    return stmt.on_conflict_do_update(index_elements=[WINDOW.c.caller, WINDOW.c.window_start],
                                      set_={"hits": WINDOW.c.hits + stmt.excluded.hits}).returning(WINDOW.c.hits)


_PREVIOUS = select(WINDOW.c.hits).where(WINDOW.c.caller == bindparam("c"), WINDOW.c.window_start == bindparam("ws"))
_UNDO = update(WINDOW).where(WINDOW.c.caller == bindparam("c"), WINDOW.c.window_start == bindparam("ws")).values(hits=WINDOW.c.hits - 1)

_COUNT_SCRIPT = """
local current = redis.call('INCRBY', KEYS[1], ARGV[2])
redis.call('PEXPIRE', KEYS[1], ARGV[1])
return {current, tonumber(redis.call('GET', KEYS[2]) or '0')}
"""


class RedisWindows:
    """Counters in Redis; keys expire one window after their own ends.

    After a failure Redis is left alone for `rest_seconds` (each request in
    between is let through at once, as unavailable): an unreachable Redis
    costs one timeout per rest, not one per request."""

    quick = True

    def __init__(self, client, *, prefix: str = "vaxhub:rate:", rest_seconds: float = 30.0,  # noqa: ANN001 - a redis.Redis
                 clock: Callable[[], float] = time.monotonic):
        self.client = client
        self.prefix = prefix
        self.rest = RestAfterFailure(rest_seconds, clock=clock)
        # One command for the client to encode and Redis to run, where a
        # MULTI of INCR, PEXPIRE and GET was five: about a fifth less client
        # CPU per request. Atomic as the MULTI was; redis-py loads the
        # script again after a SCRIPT FLUSH.
        self._count = client.register_script(_COUNT_SCRIPT)

    @classmethod
    def from_url(cls, url: str, *, timeout: float = 0.5) -> RedisWindows:
        import redis

        # Short timeouts: a slow Redis must not hold every request up.
        return cls(redis.Redis.from_url(url, socket_timeout=timeout, socket_connect_timeout=timeout))

    def hit(self, caller: str, window_start: int, window_ms: int, count: int = 1) -> tuple[int, int]:
        current, previous = self._call(lambda: self._count(keys=self._keys(caller, window_start, window_ms), args=(2 * window_ms, count)))
        return int(current), int(previous)

    def hit_many(self, hits: list[tuple[str, int, int]], window_ms: int) -> list[tuple[int, int]]:
        def send() -> list:
            pipe = self.client.pipeline(transaction=False)
            for caller, start, count in hits:
                self._count(keys=self._keys(caller, start, window_ms), args=(2 * window_ms, count), client=pipe)
            return pipe.execute()

        return [(int(current), int(previous)) for current, previous in self._call(send)]

    def _keys(self, caller: str, window_start: int, window_ms: int) -> tuple[str, str]:
        return f"{self.prefix}{caller}:{window_start}", f"{self.prefix}{caller}:{window_start - window_ms}"

    def undo(self, caller: str, window_start: int) -> None:
        self._call(lambda: self.client.decr(f"{self.prefix}{caller}:{window_start}"))

    def _call(self, command: Callable[[], object]):  # noqa: ANN202
        import redis

        if self.rest.resting:
            raise CounterUnavailable("Redis: not asked again yet after a failure")
        try:
            return command()
        except redis.RedisError as exc:
            self.rest.failed()
            raise CounterUnavailable(f"Redis: {exc}") from exc


def build_rate_limiter(backend: str, *, rate: float, burst: int, engine: Engine, redis_url: str | None = None,
                       local_share: bool = True) -> RateLimiter:
    """The limiter for `VAXHUB_RATE_LIMIT_BACKEND`; `local_share` for the shared counters (`rate_share`)."""
    counter: WindowCounter
    if backend == "database":
        counter = DatabaseWindows(engine)
    elif backend == "redis":
        if not redis_url:
            raise ValueError("VAXHUB_RATE_LIMIT_BACKEND=redis needs VAXHUB_REDIS_URL")
        counter = RedisWindows.from_url(redis_url)
    elif backend == "memory":
        counter = MemoryWindows()
    else:
        raise ValueError(f"unknown rate-limit backend {backend!r} (database, redis or memory)")
    return RateLimiter(rate, burst, counter, local_share=local_share and backend != "memory")
