"""The load test reads the hub's own request durations from the API processes'
metrics folder, keeps only what the load window added, and sums processes."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from bench.load.hub_latency import difference, latencies, quantile, snapshot

BOUNDS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, float("inf")]


def _observe(folder: Path, route: str, seconds: list[float]) -> None:
    """One API-like process observing durations: the metric as the hub defines it, in multiprocess mode."""
    code = textwrap.dedent(f"""
        from vaxhub.hub.observability.metrics import HTTP_DURATION
        for s in {seconds!r}:
            HTTP_DURATION.labels("POST", {route!r}).observe(s)
    """)
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(folder)}
    subprocess.run([sys.executable, "-c", code], env=env, check=True)


def _cumulative(values: list[float]) -> list[tuple[float, float]]:
    return [(b, float(sum(v <= b for v in values))) for b in BOUNDS]


def test_quantiles_interpolate_within_the_bucket_the_rank_falls_in():
    counts = _cumulative([0.2] * 50 + [0.4] * 45 + [3.0] * 5)
    # p50: rank 50 at the top of the (0.1, 0.25] bucket; p95: rank 95 at the top of (0.25, 0.5].
    assert quantile(counts, 0.5) == pytest.approx(0.25)
    assert quantile(counts, 0.95) == pytest.approx(0.5)
    # p99: rank 99 is 4 of the 5 in (2.5, 5].
    assert quantile(counts, 0.99) == pytest.approx(2.5 + 2.5 * 4 / 5)
    assert quantile(_cumulative([]), 0.5) is None
    assert quantile(_cumulative([60.0]), 0.5) == 30.0  # past the last finite bound: that bound


def test_the_window_is_what_every_process_added_between_the_snapshots(tmp_path):
    _observe(tmp_path, "/fhir", [4.0] * 10)  # before the load: left out
    before = snapshot(tmp_path)
    _observe(tmp_path, "/fhir", [0.02] * 30)
    _observe(tmp_path, "/fhir", [0.02] * 60 + [0.7] * 10)  # a second process
    _observe(tmp_path, "/hl7v2/vxu", [0.07] * 5)
    window = difference(before, snapshot(tmp_path))

    rows = {row.route: row for row in latencies(window)}
    assert rows["/fhir"].requests == 100
    assert rows["/fhir"].p50_ms == pytest.approx(10 + 15 * 50 / 90, rel=1e-6)  # rank 50 of 90 in (10, 25] ms
    assert 500 < rows["/fhir"].p95_ms <= 1000  # the slow tail of the second process, not the earlier 4 s
    assert rows["/hl7v2/vxu"].requests == 5
    assert [r.route for r in latencies(window)] == ["/fhir", "/hl7v2/vxu"]
    assert [r.route for r in latencies(window, least=10)] == ["/fhir"]


def test_a_folder_that_does_not_exist_is_no_metrics(tmp_path):
    assert snapshot(tmp_path / "absent") == {}


def test_the_wait_for_a_place_is_reported_by_kind(tmp_path):
    from bench.load.hub_latency import WAIT_METRIC, waits_table
    from tests.rich_tables import cells

    code = textwrap.dedent("""
        from vaxhub.hub.observability.metrics import API_QUEUE_WAIT
        for s in [0.0005] * 95 + [0.2] * 5:
            API_QUEUE_WAIT.labels("write").observe(s)
        for s in [0.7] * 40:
            API_QUEUE_WAIT.labels("read").observe(s)
    """)
    subprocess.run([sys.executable, "-c", code], env={**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}, check=True)
    table = waits_table(snapshot(tmp_path, WAIT_METRIC, ("kind",)))
    rows = {row[0]: row[1:] for row in cells(table)}
    assert rows["write"][0] == "100" and rows["read"][0] == "40"
    assert rows["write"][1] == "1"  # p50 ms: rank 50 of 95 in (0, 1] ms, rounded
    assert rows["read"][2] == "975"  # p95: rank 38 of 40, all in (0.5, 1] s
    assert waits_table({}) is None
