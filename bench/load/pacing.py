"""Pacing that keeps a locust user on its planned rate over the whole run.

locust's `constant_throughput` waits `1/rate` minus the time since its last
wait ended, never less than zero: a late wake-up is made up on the next
wait, but a task that runs longer than its interval is time the user never
gets back, so a user planned at one task every 3 s sends a little less than
that whenever the hub is slow. Here each user
keeps a timetable (its n-th task is due n intervals after its first) and
waits only for the next due time: a user that fell behind goes back to back
until it is on time again, as a site's system sends the records it queued
while the hub was slow. The debt it may carry is capped, so a user held up
for a long time (an API process killed under it) does not fire a long burst
afterwards.
"""

from __future__ import annotations

import time
from typing import Any, Callable

CATCH_UP_INTERVALS = 3  # at most this many missed tasks are made up


def scheduled_pacing(rate: float, clock: Callable[[], float] = time.monotonic) -> Callable[[Any], float]:
    """A locust `wait_time` for `rate` tasks per second per user."""
    if rate <= 0:
        raise ValueError(f"a pace must be positive: {rate!r}")
    interval = 1.0 / rate

    def wait_time(user: Any) -> float:
        now = clock()
        due = getattr(user, "_pacing_due", None)
        # First call: after the user's first task, which ran on arrival.
        due = now + interval if due is None else max(due + interval, now - CATCH_UP_INTERVALS * interval)
        user._pacing_due = due
        return max(0.0, due - now)

    return wait_time
