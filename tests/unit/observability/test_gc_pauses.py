"""Every collection of the cyclic garbage collector is timed into
`vaxhub_gc_pause_seconds` under its generation, its thread's CPU into
`vaxhub_gc_cpu_seconds`, and the load report reads a load window's back."""

from __future__ import annotations

import gc

from prometheus_client import REGISTRY

from bench.load.gc_report import Reading, between, table
from vaxhub.hub.observability.gc_pauses import _timed, time_collections


def _count(generation: str) -> float:
    return REGISTRY.get_sample_value("vaxhub_gc_pause_seconds_count", {"generation": generation}) or 0.0


def _seconds(generation: str) -> float:
    return REGISTRY.get_sample_value("vaxhub_gc_pause_seconds_sum", {"generation": generation}) or 0.0


def _cpu(generation: str) -> float:
    return REGISTRY.get_sample_value("vaxhub_gc_cpu_seconds_total", {"generation": generation}) or 0.0


def test_each_collection_is_counted_under_its_generation():
    time_collections()
    time_collections()  # a second call adds no second timer
    assert gc.callbacks.count(_timed) == 1
    was_enabled = gc.isenabled()
    gc.disable()  # the young collection below is ours, not one started by these allocations
    try:
        full, young, spent, worked = _count("2"), _count("0"), _seconds("2"), _cpu("2")
        # Garbage in cycles, so the full collection has something to walk and free.
        for _ in range(200_000):
            node: list = []
            node.append(node)
        gc.collect(0)
        gc.collect()
    finally:
        if was_enabled:
            gc.enable()
    # At least: with the automatic collector off, another thread of the test
    # process can still call gc.collect() meanwhile, and that is counted too.
    assert _count("0") >= young + 1
    assert _count("2") >= full + 1
    assert _seconds("2") > spent
    assert _cpu("2") > worked  # walking 200,000 cycles takes the collecting thread's CPU, not only wall time


def test_the_report_counts_long_pauses_per_generation():
    load = {
        ("0",): [(0.001, 900.0), (0.005, 990.0), (0.01, 1000.0), (0.1, 1000.0), (0.25, 1000.0), (float("inf"), 1000.0)],
        ("2",): [(0.001, 0.0), (0.005, 0.0), (0.01, 0.0), (0.1, 1.0), (0.25, 2.0), (float("inf"), 3.0)],
    }
    before = Reading(paused={("0",): 1.0, ("2",): 0.5}, cpu={("0",): 0.5, ("2",): 0.25})
    after = Reading(load, paused={("0",): 3.5, ("2",): 1.25}, cpu={("0",): 2.0, ("2",): 0.5})
    rendered = table(between(before, after))
    rows = list(zip(*[list(c.cells) for c in rendered.columns]))
    assert rows == [("0", "1,000", "0", "5", "2.50", "1.50"), ("2", "3", "2", "250", "0.75", "0.25")]
    assert table(Reading({("1",): [(0.001, 0.0), (float("inf"), 0.0)]})) is None  # nothing counted: no table
