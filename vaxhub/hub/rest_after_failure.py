"""Leave a helper service (Redis) alone for a while after it failed.

The hub uses Redis only for things it can do without: shared drawings and
rate-limit counters. When Redis is down, trying it on every request would
add its timeout to each (and, for the rate limiter, which is asked on the
event loop, hold up every request of the process); after a failure it is
left alone for `seconds`, so an outage costs one timeout per rest.
"""

from __future__ import annotations

import time
from collections.abc import Callable


class RestAfterFailure:
    def __init__(self, seconds: float, *, clock: Callable[[], float] = time.monotonic):
        self.seconds = seconds
        self.clock = clock
        self._until = float("-inf")

    @property
    def resting(self) -> bool:
        """True while the service is to be left alone."""
        return self.clock() < self._until

    def failed(self) -> None:
        """The service just failed: leave it alone for the next `seconds`."""
        self._until = self.clock() + self.seconds
