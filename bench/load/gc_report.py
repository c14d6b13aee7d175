"""The API processes' garbage-collector pauses during the load, from their
`vaxhub_gc_pause_seconds` histogram (`vaxhub/hub/observability/gc_pauses.py`)."""

from __future__ import annotations

from rich.table import Table

from bench.load.hub_latency import Snapshot, quantile

METRIC = "vaxhub_gc_pause_seconds"
LABELS = ("generation",)
LONG = 0.1  # seconds: a pause of this much shows in a request's latency


def table(load: Snapshot) -> Table | None:
    """Per generation: collections, pauses over 100 ms, p99 (bucketed); None when none were counted."""
    rows = []
    for (generation,), counts in sorted(load.items()):
        total = counts[-1][1] if counts else 0.0
        if total <= 0:
            continue
        within = max((count for bound, count in counts if bound < LONG or abs(bound - LONG) < 1e-9), default=0.0)
        p99 = quantile(counts, 0.99)
        rows.append((generation, f"{total:,.0f}", f"{total - within:,.0f}", "" if p99 is None else f"{p99 * 1000:,.0f}"))
    if not rows:
        return None
    out = Table(title="API processes' garbage-collector pauses during the load (bucketed)")
    for col in ("generation", "collections", f"over {LONG * 1000:.0f} ms", "p99 ms"):
        out.add_column(col, justify="right")
    for row in rows:
        out.add_row(*row)
    return out
