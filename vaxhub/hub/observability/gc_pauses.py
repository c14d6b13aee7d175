"""How long the cyclic garbage collector holds each process, by generation.

A collection runs with the interpreter lock held: every request of that
process waits for it. A full (generation 2) collection walks every tracked
object the process has built since start-up (what `gc_tuning` froze is
skipped), so its pause grows with the heap, and on busy cores the process
may be descheduled in the middle of it. `vaxhub_gc_pause_seconds` shows
whether a latency tail lines up with such pauses; `vaxhub_gc_cpu_seconds`
counts the CPU the collecting thread spent, so a long pause can be told
apart as work (a heap to walk) or as waiting (descheduled, or finalizers
that let go of the lock).
"""

from __future__ import annotations

import gc
import time
from typing import Any

from prometheus_client import Counter, Histogram

GC_PAUSE = Histogram(
    "vaxhub_gc_pause_seconds", "Time the cyclic garbage collector held the process, by generation (0 young … 2 full).",
    ["generation"], buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
)
GC_CPU = Counter(
    "vaxhub_gc_cpu_seconds", "CPU time the collecting thread spent in the cyclic garbage collector, by generation.",
    ["generation"],
)
_started: list[float] = []  # wall and thread CPU clocks while a collection runs: collections do not nest


def _timed(phase: str, info: dict[str, Any]) -> None:
    if phase == "start":
        _started[:] = [time.perf_counter(), time.thread_time()]
    elif _started:
        generation = str(info.get("generation", "?"))
        GC_PAUSE.labels(generation).observe(time.perf_counter() - _started[0])
        GC_CPU.labels(generation).inc(time.thread_time() - _started[1])
        _started.clear()


def time_collections() -> None:
    """Count every collection's pause from now on (once per process)."""
    if _timed not in gc.callbacks:
        gc.callbacks.append(_timed)
