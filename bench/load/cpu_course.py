"""CPU over the course of the load: per stored Immunization for the hub's
processes, and locust's CPU per request as the machine's yardstick.

A run whose latency climbs half-way through has either a hub whose work per
dose grew (its data grew, a cache stopped holding) or a machine that slowed
(another tenant's load on the host): the first raises the hub's CPU per dose
alone, the second raises locust's CPU per request too, since locust's work
per request does not change.
"""

from __future__ import annotations

import bisect
import csv
from dataclasses import dataclass
from pathlib import Path

from rich.table import Table

from bench.load.probes import Sample

API, PG = "API (vaxhub serve)", "PostgreSQL (this database)"
WORKERS = ("verification workers", "MPI link workers")
LOCUST = "locust (load generator)"


@dataclass(frozen=True)
class CpuMark:
    at: float  # epoch seconds
    seconds: dict[str, float]  # CPU seconds per process group since the first mark


def request_counts(csv_prefix: Path) -> list[tuple[float, int]]:
    """(epoch second, requests answered so far) from locust's full stats history."""
    path = Path(f"{csv_prefix}_stats_history.csv")
    if not path.exists():
        return []
    with path.open(newline="") as f:
        return [(float(r["Timestamp"]), int(float(r["Total Request Count"] or 0)))
                for r in csv.DictReader(f) if r["Name"] == "Aggregated"]


def _at(points: list[tuple[float, float]], when: float) -> float | None:
    """The value of a step series at `when` (the last point at or before it)."""
    i = bisect.bisect_right([t for t, _ in points], when) - 1
    return points[i][1] if i >= 0 else None


def table(marks: list[CpuMark], samples: list[Sample], requests: list[tuple[float, int]], started: float, stopped: float,
          every: float) -> Table:
    out = Table(title="CPU over the course of the load (ms per Immunization stored; locust: ms per request)")
    for col in ("s", "Imm. stored/s", "API", "PostgreSQL", "outbox workers", "locust ms/request"):
        out.add_column(col, justify="right")
    shown: list[CpuMark] = []
    for m in marks:
        if started <= m.at <= stopped + 1 and (not shown or m.at - shown[-1].at >= every - 0.01):
            shown.append(m)
    stored = [(s.at, float(s.immunizations)) for s in samples]
    answered = [(t, float(n)) for t, n in requests]
    for before, after in zip(shown, shown[1:]):
        seconds = after.at - before.at
        doses = (_at(stored, after.at) or 0) - (_at(stored, before.at) or 0)
        asked = (_at(answered, after.at) or 0) - (_at(answered, before.at) or 0)

        def spent(*groups: str) -> float:
            return sum(after.seconds.get(g, 0.0) - before.seconds.get(g, 0.0) for g in groups)

        def per_dose(*groups: str) -> str:
            return f"{1000 * spent(*groups) / doses:.2f}" if doses > 0 else "—"

        out.add_row(f"{after.at - started:.0f}", f"{doses / seconds:,.0f}", per_dose(API), per_dose(PG), per_dose(*WORKERS),
                    f"{1000 * spent(LOCUST) / asked:.2f}" if asked > 0 else "—")
    return out
