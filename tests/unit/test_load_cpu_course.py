"""The load test's CPU course: each interval's CPU per stored Immunization for
the hub's processes and locust's CPU per request, from cumulative counters."""

from __future__ import annotations

from bench.load.cpu_course import API, LOCUST, PG, CpuMark, request_counts, table
from bench.load.probes import Sample
from tests.rich_tables import cells as _rows


def _stored(at: float, immunizations: int) -> Sample:
    return Sample(at=at, immunizations=immunizations, verification_queued=0, verification_oldest_s=0, link_queued=0,
                  link_oldest_s=0, goldens_stale=0, db_active=0, db_waiting_lock=0)


def test_each_interval_is_its_own_cpu_over_its_own_doses_and_requests(tmp_path):
    history = tmp_path / "locust_stats_history.csv"
    history.write_text(
        "Timestamp,Name,Total Request Count\n"
        "1000,Aggregated,0\n1000,bundle,0\n1050,Aggregated,10000\n1100,Aggregated,20000\n"
    )
    marks = [
        CpuMark(1000.0, {}),
        CpuMark(1050.0, {API: 20.0, PG: 10.0, LOCUST: 5.0}),
        # The second interval's hub costs twice as much per dose while locust's cost per request holds: the hub's work grew.
        CpuMark(1100.0, {API: 60.0, PG: 30.0, LOCUST: 10.0}),
    ]
    samples = [_stored(1000.0, 0), _stored(1050.0, 25_000), _stored(1100.0, 50_000)]
    rows = _rows(table(marks, samples, request_counts(tmp_path / "locust"), 1000.0, 1100.0, 50.0))
    assert rows == [
        ["50", "500", "0.80", "0.40", "0.00", "0.50"],
        ["100", "500", "1.60", "0.80", "0.00", "0.50"],
    ]
    without_locust = _rows(table(marks, samples, [], 1000.0, 1100.0, 50.0))
    assert [r[5] for r in without_locust] == ["—", "—"]  # no locust history: no figure rather than a made-up one


def test_marks_outside_the_load_are_left_out():
    marks = [CpuMark(900.0, {API: 1.0}), CpuMark(1000.0, {API: 2.0}), CpuMark(1050.0, {API: 7.0}), CpuMark(1300.0, {API: 99.0})]
    samples = [_stored(1000.0, 0), _stored(1050.0, 5_000)]
    rows = _rows(table(marks, samples, [], 1000.0, 1100.0, 10.0))
    assert [r[:3] for r in rows] == [["50", "100", "1.00"]]
