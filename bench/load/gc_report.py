"""The API processes' garbage-collector pauses during the load, from their
`vaxhub_gc_pause_seconds` histogram and `vaxhub_gc_cpu_seconds` counter
(`vaxhub/hub/observability/gc_pauses.py`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from rich.table import Table

from bench.load.hub_latency import Snapshot, difference, quantile, snapshot, totals

METRIC = "vaxhub_gc_pause_seconds"
CPU_METRIC = "vaxhub_gc_cpu_seconds"
LABELS = ("generation",)
LONG = 0.1  # seconds: a pause of this much shows in a request's latency


@dataclass
class Reading:
    """The collectors' counts at one moment: pause histogram, pause and CPU seconds per generation."""
    pauses: Snapshot = field(default_factory=dict)
    paused: dict[tuple[str, ...], float] = field(default_factory=dict)
    cpu: dict[tuple[str, ...], float] = field(default_factory=dict)


def read(folder: Path) -> Reading:
    """The API processes' collector metrics as they stand now, summed over the processes."""
    return Reading(snapshot(folder, METRIC, LABELS), totals(folder, METRIC, f"{METRIC}_sum", LABELS),
                   totals(folder, CPU_METRIC, f"{CPU_METRIC}_total", LABELS))


def between(before: Reading, after: Reading) -> Reading:
    """What was counted from one reading to the next."""
    def minus(a: dict, b: dict) -> dict:
        return {key: value - b.get(key, 0.0) for key, value in a.items()}
    return Reading(difference(before.pauses, after.pauses), minus(after.paused, before.paused), minus(after.cpu, before.cpu))


def table(load: Reading) -> Table | None:
    """Per generation: collections, pauses over 100 ms, p99 (bucketed), seconds paused and
    seconds of the collecting thread's CPU; None when none were counted."""
    rows = []
    for (generation,), counts in sorted(load.pauses.items()):
        total = counts[-1][1] if counts else 0.0
        if total <= 0:
            continue
        within = max((count for bound, count in counts if bound < LONG or abs(bound - LONG) < 1e-9), default=0.0)
        p99 = quantile(counts, 0.99)
        paused, cpu = load.paused.get((generation,)), load.cpu.get((generation,))
        rows.append((generation, f"{total:,.0f}", f"{total - within:,.0f}", "" if p99 is None else f"{p99 * 1000:,.0f}",
                     "" if paused is None else f"{paused:,.2f}", "" if cpu is None else f"{cpu:,.2f}"))
    if not rows:
        return None
    out = Table(title="API processes' garbage-collector pauses during the load (bucketed; CPU: the collecting thread's)")
    for col in ("generation", "collections", f"over {LONG * 1000:.0f} ms", "p99 ms", "paused s", "CPU s"):
        out.add_column(col, justify="right")
    for row in rows:
        out.add_row(*row)
    return out
