"""How long the cyclic garbage collector holds each process, by generation.

A collection runs with the interpreter lock held: every request of that
process waits for it. A full (generation 2) collection walks every tracked
object the process has built since start-up (what `gc_tuning` froze is
skipped), so its pause grows with the heap, and on busy cores the process
may be descheduled in the middle of it. `vaxhub_gc_pause_seconds` shows
whether a latency tail lines up with such pauses.
"""

from __future__ import annotations

import gc
import time
from typing import Any

from prometheus_client import Histogram

GC_PAUSE = Histogram(
    "vaxhub_gc_pause_seconds", "Time the cyclic garbage collector held the process, by generation (0 young … 2 full).",
    ["generation"], buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
)
_started: list[float] = []  # one entry while a collection runs: collections do not nest


def _timed(phase: str, info: dict[str, Any]) -> None:
    if phase == "start":
        _started[:] = [time.perf_counter()]
    elif _started:
        GC_PAUSE.labels(str(info.get("generation", "?"))).observe(time.perf_counter() - _started.pop())


def time_collections() -> None:
    """Count every collection's pause from now on (once per process)."""
    if _timed not in gc.callbacks:
        gc.callbacks.append(_timed)
