"""Garbage-collector settings for the long-running processes (API workers,
outbox workers).

A hub process holds a large heap that lives as long as it does: the
fhir.resources model classes and their pydantic schemas, SQLAlchemy's
compiled statements, caches. CPython's cyclic collector walks the older
generations again and again, and with the default thresholds a young
collection runs every 700 container allocations, which a Bundle of 40
validated resources reaches many times over. Freezing what start-up built
moves it out of the collector's sight, and a larger first threshold makes
young collections rarer; the request path then spends its CPU on requests.
Reference counting still frees almost everything at once: only garbage in
reference cycles waits for a collection.
"""

from __future__ import annotations

import gc

from vaxhub.hub.observability.gc_pauses import time_collections


def parse_thresholds(text: str) -> tuple[int, ...]:
    """`"50000,20,100"` → (50000, 20, 100): gc.set_threshold's three generations.
    An empty value keeps CPython's defaults."""
    if not text.strip():
        return gc.get_threshold()
    parts = tuple(int(part) for part in text.split(","))
    if len(parts) != 3 or parts[0] < 1 or any(part < 0 for part in parts):
        raise ValueError(f"GC thresholds must be three counts, the first at least 1: {text!r}")
    return parts


def settle_heap(thresholds: str) -> tuple[int, ...]:
    """Call once start-up is done: collect what start-up left, freeze the
    survivors (they are never scanned again), apply `thresholds` and time
    every collection from then on.
    Returns the thresholds in force."""
    chosen = parse_thresholds(thresholds)
    gc.collect()
    gc.freeze()
    gc.set_threshold(*chosen)
    time_collections()  # `vaxhub_gc_pause_seconds`: what the thresholds cost in pauses
    return chosen
