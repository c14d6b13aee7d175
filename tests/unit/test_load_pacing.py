"""The load test's pacing: a user keeps its planned rate over a run even when
some tasks take longer than its interval and its wake-ups come late."""

from __future__ import annotations

import random

import pytest

from bench.load.pacing import CATCH_UP_INTERVALS, scheduled_pacing


class _Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class _User:
    pass


def _tasks_run(wait_time, clock: _Clock, seconds: float, durations, oversleep: float) -> int:
    """Drive one user as locust does (task, then wait) for `seconds`; count its tasks."""
    user, end, done = _User(), clock.now + seconds, 0
    while clock.now < end:
        clock.now += next(durations)  # the task
        done += 1
        clock.now += wait_time(user) + oversleep  # the event loop wakes the user a little late
    return done


def _durations(seed: int):
    rng = random.Random(seed)
    while True:  # mostly quick, now and then longer than the 3-s interval
        yield 4.5 if rng.random() < 0.05 else rng.uniform(0.05, 0.6)


def test_a_user_keeps_its_rate_when_tasks_overrun_and_wake_ups_are_late():
    # Waiting the interval less the last task's time, floored at zero, loses every overrun.
    clock = _Clock()
    done = _tasks_run(scheduled_pacing(1 / 3, clock), clock, 600, _durations(1), oversleep=0.02)
    assert done in (200, 201)  # 600 s at one task per 3 s


def test_debt_is_capped_after_a_long_stall():
    clock, user = _Clock(), _User()
    wait_time = scheduled_pacing(1.0, clock)
    wait_time(user)  # after the first task: the next is due in 1 s
    clock.now += 60  # the hub held this user for a minute
    waits = [wait_time(user) for _ in range(CATCH_UP_INTERVALS + 3)]  # the clock stands still: no task takes time
    # The task due now and the missed ones it may make up go back to back; then the pace again.
    assert waits == [0.0] * (CATCH_UP_INTERVALS + 1) + [pytest.approx(1.0), pytest.approx(2.0)]


def test_a_pace_must_be_positive():
    with pytest.raises(ValueError):
        scheduled_pacing(0)
