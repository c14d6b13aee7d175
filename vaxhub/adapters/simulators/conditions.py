"""Network conditions a registry simulator imposes: latency, failures,
hangs and rate limiting, drawn from a seeded RNG so that tests repeat.

Each request asks `ConditionsController.decide()` once. The decision is
made in this order:

1. rate limit: at most `rate_limit` calls per fixed window of `rate_window`
   seconds; a call over the limit is throttled (it draws nothing from the RNG);
2. one draw from the RNG: below `error_rate` the call fails with a server
   error, below `error_rate + timeout_rate` it hangs for `hang_seconds`
   (long enough to pass the client's timeout) and then answers;
3. the answer is delayed by `latency` plus a uniform draw in `[0, jitter)`.

Replacing the conditions (`controller.conditions = ...`) resets the RNG and
the rate window, so the same conditions always give the same sequence.
"""

from __future__ import annotations

import enum
import random
import threading
import time
from dataclasses import dataclass


@dataclass(frozen=True)
class SimulatedConditions:
    latency: float = 0.0
    jitter: float = 0.0
    error_rate: float = 0.0
    timeout_rate: float = 0.0
    hang_seconds: float = 30.0
    rate_limit: int | None = None
    rate_window: float = 1.0
    seed: int = 0

    def __post_init__(self) -> None:
        if not 0.0 <= self.error_rate + self.timeout_rate <= 1.0:
            raise ValueError("error_rate + timeout_rate must lie in [0, 1]")
        if self.rate_limit is not None and self.rate_limit < 0:
            raise ValueError("rate_limit must be >= 0")


class Fate(enum.Enum):
    ANSWER = "answer"
    FAIL = "fail"
    HANG = "hang"
    THROTTLE = "throttle"


@dataclass(frozen=True)
class Decision:
    fate: Fate
    delay: float = 0.0  # seconds to wait before answering (the hang for Fate.HANG)
    retry_after: float | None = None  # seconds until the rate window reopens


class ConditionsController:
    """Decides the fate of each request under the current `SimulatedConditions`."""

    def __init__(self, conditions: SimulatedConditions | None = None, *, clock=time.monotonic):
        self._clock = clock
        self._lock = threading.Lock()
        self.conditions = conditions or SimulatedConditions()

    @property
    def conditions(self) -> SimulatedConditions:
        return self._conditions

    @conditions.setter
    def conditions(self, conditions: SimulatedConditions) -> None:
        with self._lock:
            self._conditions = conditions
            self._rng = random.Random(conditions.seed)
            self._window_start = self._clock()
            self._window_count = 0

    def decide(self) -> Decision:
        with self._lock:
            c = self._conditions
            if c.rate_limit is not None:
                now = self._clock()
                if now - self._window_start >= c.rate_window:
                    self._window_start, self._window_count = now, 0
                if self._window_count >= c.rate_limit:
                    return Decision(Fate.THROTTLE, retry_after=c.rate_window - (now - self._window_start))
                self._window_count += 1
            draw = self._rng.random()
            delay = c.latency + (self._rng.uniform(0.0, c.jitter) if c.jitter else 0.0)
            if draw < c.error_rate:
                return Decision(Fate.FAIL, delay=delay)
            if draw < c.error_rate + c.timeout_rate:
                return Decision(Fate.HANG, delay=c.hang_seconds)
            return Decision(Fate.ANSWER, delay=delay)


class ConditionedSimulator:
    """`conditions` of a simulator, read and replaced through its `controller`."""

    controller: ConditionsController

    @property
    def conditions(self) -> SimulatedConditions:
        return self.controller.conditions

    @conditions.setter
    def conditions(self, conditions: SimulatedConditions) -> None:
        self.controller.conditions = conditions
