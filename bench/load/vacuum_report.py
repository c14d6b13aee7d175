"""When autovacuum worked on which table during the load, from the watcher's
samples of `pg_stat_progress_vacuum`. A vacuum of a table that has grown by
hundreds of thousands of rows scans its indexes whole; set beside the
write p95 per minute, this shows whether a slow minute had one running.
A vacuum shorter than the sampling interval may be missed."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Span:
    what: str  # the table (the probe names its phase too; spans ignore it)
    first_s: float  # seconds into the load at the first sample that saw it
    last_s: float
    samples: int


def spans(marks: list[tuple[float, list[tuple[str, str]]]], started: float, stopped: float, every: float) -> list[Span]:
    """Merge each table's sightings between `started` and `stopped` into spans:
    samples no more than 1.5 intervals apart are one vacuum. Samples outside
    the load (the seeding, the drain) are left out, as in the other tables."""
    open_: dict[str, Span] = {}
    done: list[Span] = []
    for at, seen in sorted(marks):
        if not started <= at <= stopped:
            continue
        tables = {table for table, _phase in seen}
        for table in tables:
            span = open_.get(table)
            if span is not None and at - started - span.last_s <= 1.5 * every:
                open_[table] = Span(table, span.first_s, at - started, span.samples + 1)
            else:
                if span is not None:
                    done.append(span)
                open_[table] = Span(table, at - started, at - started, 1)
    done.extend(open_.values())
    return sorted(done, key=lambda s: (s.first_s, s.what))


def lines(found: list[Span]) -> list[str]:
    return [f"  {s.what}: {s.first_s:,.0f}–{s.last_s:,.0f} s ({s.samples} sample{'s' if s.samples != 1 else ''})" for s in found]
