"""How long the hub itself took to answer, per route, read from its own metrics.

locust times a request from the client: its figure includes the time the
request waited in the kernel's accept queue and in an API process's event
loop before the hub's outermost middleware saw it. The API processes count
each answer in `vaxhub_http_request_duration_seconds` (from that middleware
to the last byte handed to uvicorn), in the shared multiprocess folder. A
snapshot when the load starts and one when it stops give the histogram of
the load alone; its quantiles are interpolated within buckets, as
Prometheus's `histogram_quantile` does, so they are only as fine as the
buckets (…, 0.25, 0.5, 1, 2.5, 5 s).

Where the hub's p95 is far below locust's, requests queue before the hub
works on them (too few request threads, or the event loop starved of CPU);
where they are close, the time is spent inside the hub.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

from prometheus_client import CollectorRegistry
from prometheus_client.multiprocess import MultiProcessCollector
from rich.table import Table

METRIC = "vaxhub_http_request_duration_seconds"
WAIT_METRIC = "vaxhub_api_queue_wait_seconds"  # part of METRIC: the wait for a place in the process (writes first)

# (method, route), or another metric's labels → cumulative count per upper bound, bounds ascending (+Inf last)
Snapshot = dict[tuple[str, ...], list[tuple[float, float]]]


def _samples(folder: Path, metric: str):
    """Every sample of `metric`'s family written by any process to `folder`."""
    if not folder.is_dir():
        return
    registry = CollectorRegistry()
    MultiProcessCollector(registry, str(folder))
    for family in registry.collect():
        if family.name == metric:
            yield from family.samples


def snapshot(folder: Path, metric: str = METRIC, labels: tuple[str, ...] = ("method", "route")) -> Snapshot:
    """A histogram (by default the request durations) of every process that wrote to `folder`, summed, keyed by `labels`."""
    buckets: dict[tuple[str, ...], dict[float, float]] = defaultdict(dict)
    for sample in _samples(folder, metric):
        if sample.name != f"{metric}_bucket":
            continue
        key = tuple(sample.labels[name] for name in labels)
        bound = float(sample.labels["le"])
        buckets[key][bound] = buckets[key].get(bound, 0.0) + sample.value
    return {key: sorted(counts.items()) for key, counts in buckets.items()}


def totals(folder: Path, metric: str, sample_name: str, labels: tuple[str, ...]) -> dict[tuple[str, ...], float]:
    """One sample of `metric` (a counter's `_total`, a histogram's `_sum`) summed over the processes, keyed by `labels`."""
    out: dict[tuple[str, ...], float] = defaultdict(float)
    for sample in _samples(folder, metric):
        if sample.name == sample_name:
            out[tuple(sample.labels[name] for name in labels)] += sample.value
    return dict(out)


def difference(before: Snapshot, after: Snapshot) -> Snapshot:
    """What was counted between two snapshots (an API process that died keeps its file, so counts only grow)."""
    out: Snapshot = {}
    for key, counts in after.items():
        earlier = dict(before.get(key, []))
        out[key] = [(bound, count - earlier.get(bound, 0.0)) for bound, count in counts]
    return out


def quantile(counts: list[tuple[float, float]], q: float) -> float | None:
    """Seconds at quantile q of a cumulative histogram, linear within the bucket;
    the highest finite bound when it falls in the +Inf bucket; None when empty."""
    if not counts or counts[-1][1] <= 0:
        return None
    rank = q * counts[-1][1]
    lower_bound, lower_count = 0.0, 0.0
    for bound, count in counts:
        if count >= rank:
            if math.isinf(bound):
                return lower_bound
            if count == lower_count:
                return bound
            return lower_bound + (bound - lower_bound) * (rank - lower_count) / (count - lower_count)
        lower_bound, lower_count = bound, count
    return lower_bound


@dataclass(frozen=True)
class RouteLatency:
    method: str
    route: str
    requests: int
    p50_ms: float | None
    p95_ms: float | None
    p99_ms: float | None


def latencies(load: Snapshot, least: int = 1) -> list[RouteLatency]:
    """Per route with at least `least` requests in the window, busiest first."""
    rows = []
    for (method, route), counts in load.items():
        total = int(counts[-1][1]) if counts else 0
        if total < least:
            continue
        ms = [None if (s := quantile(counts, q)) is None else s * 1000 for q in (0.5, 0.95, 0.99)]
        rows.append(RouteLatency(method, route, total, *ms))
    return sorted(rows, key=lambda r: -r.requests)


def table(rows: list[RouteLatency]) -> Table:
    """A rich table of `latencies`."""
    out = Table(title="inside the hub: from its outermost middleware to the answer (API metrics, bucketed)")
    for col in ("method", "route", "requests", "p50 ms", "p95 ms", "p99 ms"):
        out.add_column(col, justify="left" if col in ("method", "route") else "right")

    def ms(value: float | None) -> str:
        return "" if value is None else f"{value:,.0f}"

    for row in rows:
        out.add_row(row.method, row.route, f"{row.requests:,}", ms(row.p50_ms), ms(row.p95_ms), ms(row.p99_ms))
    return out


def waits_table(load: Snapshot) -> Table | None:
    """The part of the hub's time its requests waited for a place in their API process, by kind; None when not counted."""
    rows = [(kind, counts) for (kind,), counts in sorted(load.items()) if counts and counts[-1][1] > 0]
    if not rows:
        return None
    out = Table(title="of which waiting in an API process for a place (writes go first; API metrics, bucketed)")
    for col in ("kind", "requests", "p50 ms", "p95 ms", "p99 ms"):
        out.add_column(col, justify="left" if col == "kind" else "right")
    for kind, counts in rows:
        ms = ["" if (s := quantile(counts, q)) is None else f"{s * 1000:,.0f}" for q in (0.5, 0.95, 0.99)]
        out.add_row(kind, f"{int(counts[-1][1]):,}", *ms)
    return out
