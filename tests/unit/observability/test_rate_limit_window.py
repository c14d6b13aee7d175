"""The sliding-window limit: bursts up to `burst`, `rate` per second sustained,
no fresh budget at a window boundary, and a Retry-After that is enough."""

from __future__ import annotations

import pytest

from vaxhub.errors import RateLimited
from vaxhub.hub.security.rate_limits import MemoryWindows, RateLimiter, counter_key, retry_after_seconds


class Clock:
    def __init__(self, start: float = 1_000_000.0):
        self.now = start

    def __call__(self) -> float:
        return self.now


def limiter(rate: float, burst: int, clock: Clock) -> RateLimiter:
    return RateLimiter(rate, burst, MemoryWindows(clock), clock=clock)


def allowed(limit: RateLimiter, caller: str = "site") -> bool:
    try:
        limit.take(caller)
    except RateLimited:
        return False
    return True


def test_a_burst_is_allowed_then_refused():
    clock = Clock()
    limit = limiter(rate=10, burst=5, clock=clock)
    assert [allowed(limit) for _ in range(7)] == [True] * 5 + [False, False]


def test_callers_have_their_own_budgets():
    clock = Clock()
    limit = limiter(rate=1, burst=2, clock=clock)
    assert [allowed(limit, "a"), allowed(limit, "a"), allowed(limit, "a")] == [True, True, False]
    assert allowed(limit, "b")


def test_a_window_boundary_gives_no_fresh_burst():
    clock = Clock()
    limit = limiter(rate=1, burst=4, clock=clock)  # windows of 4 s
    clock.now += 3.9 - clock.now % 4  # just before a boundary
    assert [allowed(limit) for _ in range(4)] == [True] * 4
    clock.now += 0.2  # just after it: the previous window still weighs ~95 %
    assert not allowed(limit)


def test_sustained_rate_is_allowed_over_many_windows():
    clock = Clock()
    limit = limiter(rate=5, burst=10, clock=clock)
    refused = 0
    for _ in range(160):  # 40 s at 4 requests a second, under the rate
        refused += not allowed(limit)
        clock.now += 1 / 4
    assert refused == 0


def test_more_than_the_rate_is_refused_over_time():
    clock = Clock()
    limit = limiter(rate=5, burst=10, clock=clock)
    results = []
    for _ in range(400):  # 40 s at 10 requests a second, twice the rate
        results.append(allowed(limit))
        clock.now += 0.1
    # About the rate gets through (a sliding estimate, not exact), not nothing and not everything.
    assert 0.4 < sum(results) / len(results) < 0.6


@pytest.mark.parametrize("offset", [0.0, 1.3, 3.99])
def test_waiting_retry_after_is_enough(offset):
    clock = Clock()
    limit = limiter(rate=1, burst=4, clock=clock)
    clock.now += offset
    while allowed(limit):
        pass
    with pytest.raises(RateLimited) as refused:
        limit.take("site")
    assert refused.value.retry_after >= 1
    clock.now += refused.value.retry_after
    assert allowed(limit)


def test_retry_after_is_at_least_one_second_and_grows_with_the_excess():
    small = retry_after_seconds(previous=0, current=5, burst=4, elapsed=0.5, window_seconds=4)
    large = retry_after_seconds(previous=0, current=40, burst=4, elapsed=0.5, window_seconds=4)
    assert 1 <= small < large


def test_long_callers_are_stored_under_a_bounded_key():
    assert counter_key("site-79001") == "site-79001"
    long = "portal-lookup:" + "a" * 300
    assert len(counter_key(long)) <= 200 and counter_key(long) != counter_key(long + "b")
