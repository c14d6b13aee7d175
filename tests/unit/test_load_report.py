"""The load test's report counts each kind of user's traffic against its plan,
so a run whose reads were starved by slow answers cannot pass on writes alone."""

from __future__ import annotations

from bench.load.probes import Sample
from bench.load.report import Operation, delivered, p95_by_minute, rate_after

PACING = {"SiteBundleUser": 0.5, "VxuSenderUser": 1.0, "HealthBookUser": 2.0, "VerifierUser": 1.0}
USERS = {"SiteBundleUser": 10, "VxuSenderUser": 10, "HealthBookUser": 10, "VerifierUser": 10}


def _op(name: str, requests: int) -> Operation:
    return Operation(name, requests, 0, 0.0, 0.0, 0.0, 0.0)


def test_each_kind_is_its_operations_over_the_window_beside_its_plan():
    operations = [_op("bundle", 500), _op("vxu", 900), _op("$everything", 1200), _op("certificate dcc.txt", 300),
                  _op("certificate certificate.pdf", 100), _op("verify QR", 400), _op("auth/token (site)", 50), _op("Aggregated", 3450)]
    got = delivered(operations, PACING, USERS, 100.0, None)
    assert got == {"SiteBundleUser": (5.0, 5.0), "VxuSenderUser": (9.0, 10.0), "HealthBookUser": (16.0, 20.0), "VerifierUser": (4.0, 10.0)}


def test_the_plan_over_a_window_with_a_ramp_misses_half_the_ramp():
    # Users starting evenly over 20 s of a 100-s window: 90 s of the full pace.
    got = delivered([_op("verify QR", 900)], PACING, USERS, 100.0, "VerifierUser", ramp=20.0)
    assert got == {"VerifierUser": (9.0, 9.0)}


def test_a_run_of_one_kind_is_judged_on_that_kind_only():
    got = delivered([_op("verify QR", 950)], PACING, USERS, 100.0, "VerifierUser")
    assert got == {"VerifierUser": (9.5, 10.0)}


def _stored(at: float, immunizations: int) -> Sample:
    return Sample(at=at, immunizations=immunizations, verification_queued=0, verification_oldest_s=0, link_queued=0,
                  link_oldest_s=0, goldens_stale=0, db_active=0, db_waiting_lock=0)


def test_the_rate_after_the_ramp_starts_at_the_first_sample_past_it():
    # 100/s while users start, 500/s after: the whole load's rate hides the second.
    samples = [_stored(0, 0), _stored(30, 3_000), _stored(61, 18_500), _stored(91, 33_500), _stored(121, 48_500)]
    assert rate_after(samples, 60) == 500.0
    assert rate_after(samples, 0) == 48_500 / 121
    assert rate_after(samples, 100) is None  # one sample left: no rate


def test_the_p95_by_minute_is_the_median_of_each_minutes_windows(tmp_path):
    started = 1_700_000_000
    rows = ["Timestamp,User Count,Type,Name,Requests/s,Failures/s,50%,66%,75%,80%,90%,95%,98%,99%"]
    windows = [(-5, "bundle", "900"),  # before the load: not counted
               (10, "bundle", "400"), (20, "bundle", "2000"), (30, "bundle", "500"), (40, "vxu", "300"),
               (70, "bundle", "N/A"),  # no request in that window
               (75, "bundle", "700"), (85, "bundle", "800"), (95, "Aggregated", "5000")]
    for at, name, p95 in windows:
        rows.append(f"{started + at},10,POST,{name},1,0,1,1,1,1,1,{p95},1,1")
    (tmp_path / "locust_stats_history.csv").write_text("\n".join(rows) + "\n")
    got = p95_by_minute(tmp_path / "locust", started, ("bundle", "vxu"))
    assert got == {"bundle": [500.0, 750.0], "vxu": [300.0]}
    assert p95_by_minute(tmp_path / "elsewhere", started, ("bundle",)) == {"bundle": []}
