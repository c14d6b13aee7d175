"""A process's share of each caller's budget: far from the limit requests are
allowed without asking the shared counter and their count follows in a
batch; near the limit every request asks, so the limit still holds."""

from __future__ import annotations

import time

import pytest

from vaxhub.errors import RateLimited
from vaxhub.hub.security.rate_limits import MemoryWindows, RateLimiter


class Clock:
    def __init__(self, now: float = 1_000.0):
        self.now = now

    def __call__(self) -> float:
        return self.now


class CountedWindows(MemoryWindows):
    """The shared counter, counting how often it is asked."""

    def __init__(self, clock: Clock):
        super().__init__(clock)
        self.asked: list[int] = []  # the count each `hit` carried
        self.batches: list[int] = []  # the hits each `hit_many` carried

    def hit(self, caller, window_start, window_ms, count=1):  # noqa: ANN001, ANN201
        self.asked.append(count)
        return super().hit(caller, window_start, window_ms, count)

    def hit_many(self, hits, window_ms):  # noqa: ANN001, ANN201
        self.batches.append(sum(count for _caller, _start, count in hits))
        return [MemoryWindows.hit(self, caller, start, window_ms, count) for caller, start, count in hits]

    def stored(self, caller: str, start: int) -> int:
        return self._hits.get((caller, start), (0, 0))[0]


def limiter(counter: CountedWindows, clock: Clock, *, burst: int = 100, rate: float = 10.0) -> RateLimiter:
    return RateLimiter(rate, burst, counter, clock=clock, local_share=True, share_flush_seconds=None)


def allowed(limit: RateLimiter, caller: str, count: int) -> int:
    passed = 0
    for _ in range(count):
        try:
            limit.take(caller)
            passed += 1
        except RateLimited:
            pass
    return passed


def test_far_from_the_limit_requests_pass_without_asking_and_are_counted_in_one_batch():
    clock = Clock()
    counter = CountedWindows(clock)
    limit = limiter(counter, clock)  # burst 100: up to 5 hits of a caller wait unsent
    assert allowed(limit, "site-a", 5) == 5
    assert allowed(limit, "site-b", 3) == 3
    assert counter.asked == []
    limit.flush_share()
    start = 1_000_000 - 1_000_000 % limit.window_ms
    assert counter.batches == [8]
    assert (counter.stored("site-a", start), counter.stored("site-b", start)) == (5, 3)


def test_a_caller_past_its_unsent_share_asks_and_takes_its_unsent_hits_along():
    clock = Clock()
    counter = CountedWindows(clock)
    limit = limiter(counter, clock)
    allowed(limit, "site-a", 6)
    assert counter.asked == [6]  # the sixth request asked, carrying the five unsent
    allowed(limit, "site-a", 5)
    assert counter.asked == [6]  # known at 6 of 100: another five pass unasked


def test_near_the_limit_every_request_asks_and_the_burst_holds_exactly():
    clock = Clock()
    counter = CountedWindows(clock)
    limit = limiter(counter, clock)
    assert allowed(limit, "busy", 130) == 100
    limit.flush_share()
    start = 1_000_000 - 1_000_000 % limit.window_ms
    assert counter.stored("busy", start) == 100  # refused requests are taken back off
    # Above half the burst nothing passes unasked.
    assert counter.asked[-31:] == [1] * 31


def test_processes_sharing_a_counter_overrun_the_burst_by_at_most_their_shares():
    clock = Clock()
    counter = CountedWindows(clock)
    processes = [limiter(counter, clock) for _ in range(4)]
    passed = 0
    for n in range(400):
        try:
            processes[n % 4].take("spread")
            passed += 1
        except RateLimited:
            pass
    assert 100 <= passed <= 100 + 4 * 5
    with pytest.raises(RateLimited):
        processes[0].take("spread")


def test_an_exact_caller_always_asks():
    clock = Clock()
    counter = CountedWindows(clock)
    limit = limiter(counter, clock)
    for _ in range(3):
        limit.take("login:10.0.0.1", exact=True)
    assert counter.asked == [1, 1, 1]


def test_a_small_burst_has_no_share():
    clock = Clock()
    counter = CountedWindows(clock)
    limit = limiter(counter, clock, burst=10, rate=1.0)
    assert allowed(limit, "small", 12) == 10
    assert counter.asked == [1] * 12


def test_hits_left_unsent_in_the_previous_window_still_weigh_on_this_one():
    clock = Clock(1_000.0)
    counter = CountedWindows(clock)
    limit = limiter(counter, clock, burst=100, rate=10.0)  # windows of 10 s
    allowed(limit, "site-a", 5)  # unsent, in the window starting at 1,000 s
    clock.now += 10.0  # the next window, at its very start: the previous one weighs fully
    limit.take("site-a")
    limit.flush_share()
    assert counter.stored("site-a", 1_000_000) == 5  # sent to the window they were allowed in
    assert counter.stored("site-a", 1_010_000) == 1


def test_the_share_is_sent_by_its_own_thread():
    counter = CountedWindows(Clock(time.time()))
    limit = RateLimiter(10.0, 100, counter, local_share=True, share_flush_seconds=0.05)
    allowed(limit, "site-a", 4)
    deadline = time.monotonic() + 5
    while not counter.batches and time.monotonic() < deadline:
        time.sleep(0.02)
    assert counter.batches == [4]
    assert counter.asked == []


def test_closing_sends_the_last_hits_and_nothing_is_sent_after():
    counter = CountedWindows(Clock(time.time()))
    limit = RateLimiter(10.0, 100, counter, local_share=True, share_flush_seconds=60)
    allowed(limit, "site-a", 3)
    limit.close()
    assert counter.batches == [3]
    allowed(limit, "site-a", 2)  # a request after shutdown: held, no thread to send it
    time.sleep(0.1)
    assert counter.batches == [3]


def test_hits_that_cannot_be_sent_are_dropped_with_one_warning(caplog):
    import logging

    import redis

    from vaxhub.hub.security.rate_limits import RedisWindows

    unreachable = RedisWindows(redis.Redis(host="127.0.0.1", port=1, socket_timeout=0.2, socket_connect_timeout=0.2))
    limit = RateLimiter(10.0, 100, unreachable, local_share=True, share_flush_seconds=None)
    caplog.set_level(logging.WARNING, logger="vaxhub.hub.security.rate_share")
    assert allowed(limit, "site-a", 3) == 3  # allowed here: Redis is not asked
    limit.flush_share()
    allowed(limit, "site-a", 2)
    limit.flush_share()
    warnings = [r for r in caplog.records if "not sent" in r.getMessage()]
    assert len(warnings) == 1 and "Redis" in warnings[0].getMessage()
