"""Retry delays: exponential backoff with full jitter.

A failed call is retried after a delay drawn uniformly from [0, min(cap,
base * 2**(attempt - 1))): the spread keeps thousands of jobs that failed
together (a registry outage) from coming back together and failing again.
"""

from __future__ import annotations

import random


def backoff_delay(attempt: int, *, base: float, cap: float, rng: random.Random | None = None) -> float:
    """Seconds to wait before retry number `attempt` (1 for the first retry)."""
    ceiling = min(cap, base * 2 ** max(attempt - 1, 0))
    return (rng or random).uniform(0.0, ceiling)
