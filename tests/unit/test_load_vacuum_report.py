"""The load report's vacuum spans: a table's sightings in consecutive samples
are one vacuum; a gap longer than the sampling allows starts another; what
was seen before or after the load is not the load's."""

from __future__ import annotations

from bench.load.vacuum_report import Span, lines, spans


def test_consecutive_sightings_merge_and_gaps_split():
    started, every = 1000.0, 5.0
    marks = [
        (1005.0, []),
        (1010.0, [("resource", "scanning heap")]),
        (1015.0, [("resource", "vacuuming indexes"), ("audit_event", "scanning heap")]),
        (1020.0, [("resource", "vacuuming indexes")]),
        (1025.0, []),
        (1030.0, []),
        (1035.0, [("resource", "scanning heap")]),  # a second vacuum of the same table
    ]
    found = spans(marks, started, 1100.0, every)
    assert found == [
        Span("resource", 10.0, 20.0, 3),
        Span("audit_event", 15.0, 15.0, 1),
        Span("resource", 35.0, 35.0, 1),
    ]
    assert lines(found)[0] == "  resource: 10–20 s (3 samples)"
    assert lines(found)[1] == "  audit_event: 15–15 s (1 sample)"


def test_no_sightings_no_spans():
    assert spans([(1.0, []), (2.0, [])], 0.0, 10.0, 1.0) == []


def test_sightings_outside_the_load_are_left_out():
    seeding, during, draining = (995.0, [("resource", "scanning heap")]), (1050.0, [("audit_event", "scanning heap")]), (1101.0, [("outbox", "scanning heap")])
    assert spans([seeding, during, draining], 1000.0, 1100.0, 5.0) == [Span("audit_event", 50.0, 50.0, 1)]
