"""Audit partitions and audit retention: events land in their month, stray ones are
moved, months past retention are archived exactly and dropped, and the chains
still verify from the checkpoint on (and the archives from the genesis)."""

from __future__ import annotations

import gzip
import hashlib
from datetime import datetime
from pathlib import Path

import orjson
import pytest
from sqlalchemy import func, select, text, update

from tests.integration.retention.conftest import Recorder, in_month, utcnow
from vaxhub.hub.audit.tables import AuditArchiveRow, AuditCheckpointRow, AuditEventRow, AuditPatientRow
from vaxhub.hub.retention.audit_archive import verify_archives
from vaxhub.hub.retention.months import Month
from vaxhub.hub.retention.run import ADVISORY_LOCK_KEY, RetentionPolicy, run_retention
from vaxhub.hub.retention.short_lived import ShortLivedPolicy


def policy(tmp_path: Path, months: int = 12) -> RetentionPolicy:
    return RetentionPolicy(months, 3, tmp_path / "audit-archive", ShortLivedPolicy(tmp_path / "exports", 24.0, 30))


def where_stored(engine, table: str = "audit_event") -> dict[str, str]:
    key = "event_id" if table == "audit_event" else "patient_id || '@' || seq || '@' || chain"
    with engine.connect() as conn:
        return dict(conn.execute(text(f"SELECT {key}, tableoid::regclass::text FROM {table}")).all())


def children(engine, table: str = "audit_event") -> set[str]:
    with engine.connect() as conn:
        return {r[0] for r in conn.execute(text(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = to_regclass(:t)"), {"t": table})}


def live_event_ids(engine) -> set[str]:
    with engine.connect() as conn:
        return set(conn.execute(select(AuditEventRow.event_id)).scalars())


@pytest.fixture
def postgres_only(backend):
    if backend != "postgresql":
        pytest.skip("partitions exist on PostgreSQL only")


def test_events_land_in_the_partition_of_their_month(engine, recorder, postgres_only):
    now = Month.of(utcnow())
    this_month = recorder.read(in_month(now), "p1")
    in_two = recorder.read(in_month(now.plus(2)), "p1")
    placed = where_stored(engine)
    assert placed[this_month] == f"audit_event_{now.suffix}"
    assert placed[in_two] == f"audit_event_{now.plus(2).suffix}"
    assert set(where_stored(engine, "audit_patient").values()) == {f"audit_patient_{now.suffix}", f"audit_patient_{now.plus(2).suffix}"}


def test_far_off_events_land_in_default_and_the_run_moves_them(engine, recorder, postgres_only, tmp_path):
    future = recorder.read(datetime(2099, 1, 5, 8), "p1")
    past = recorder.read(datetime(1999, 3, 5, 8), "p2")
    assert where_stored(engine)[future] == "audit_event_default"
    assert where_stored(engine)[past] == "audit_event_default"

    report = run_retention(engine, policy(tmp_path, months=1200))  # keep 1999: only the move is tested here

    assert report.ok, report.problems
    assert {"audit_event_y2099m01", "audit_event_y1999m03", "audit_patient_y2099m01", "audit_patient_y1999m03"} <= set(report.partitions_created)
    assert report.rows_moved["audit_event_y2099m01"] == 1
    placed = where_stored(engine)
    assert placed[future] == "audit_event_y2099m01"
    assert placed[past] == "audit_event_y1999m03"
    assert set(where_stored(engine, "audit_patient").values()) == {"audit_patient_y2099m01", "audit_patient_y1999m03"}
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM audit_event_default")).scalar_one() == 0
        assert conn.execute(text("SELECT count(*) FROM audit_patient_default")).scalar_one() == 0
    assert recorder.trail.verify().ok
    assert recorder.trail.search(patient="p1")[0][0]["id"] == future


def test_the_run_keeps_partitions_made_ahead(engine, postgres_only, tmp_path):
    now = Month.of(utcnow())
    with engine.begin() as conn:  # as if the months ahead had never been created
        for table in ("audit_patient", "audit_event"):
            conn.execute(text(f"ALTER TABLE {table} DETACH PARTITION {table}_{now.plus(3).suffix}"))
            conn.execute(text(f"DROP TABLE {table}_{now.plus(3).suffix}"))
    report = run_retention(engine, policy(tmp_path))
    assert report.partitions_created == [f"audit_event_{now.plus(3).suffix}", f"audit_patient_{now.plus(3).suffix}"]
    assert f"audit_event_{now.plus(3).suffix}" in children(engine)
    again = run_retention(engine, policy(tmp_path))
    assert again.partitions_created == []


def _history(recorder: Recorder) -> tuple[Month, dict[Month, list[str]]]:
    now = Month.of(utcnow())
    by_month: dict[Month, list[str]] = {}
    for back, patients in [(30, ["p1"]), (20, ["p1", "p2"]), (20, []), (13, ["p2"]), (5, ["p1"]), (0, ["p1"]), (0, ["p3"])]:
        month = now.plus(-back)
        for second in range(3):
            by_month.setdefault(month, []).append(recorder.read(in_month(month, 10 + len(by_month[month]) % 9, second), *patients))
    return now, by_month


def test_months_past_retention_are_archived_exactly_then_dropped(engine, recorder, tmp_path, backend):
    now, by_month = _history(recorder)
    old = [now.plus(-30), now.plus(-20), now.plus(-13)]
    kept = [now.plus(-5), now]
    rules = policy(tmp_path, months=12)

    report = run_retention(engine, rules)

    assert report.ok, report.problems
    assert [a.month for a in report.archived] == old
    for archive in report.archived:
        path = rules.archive_dir / archive.file_name
        assert hashlib.sha256(path.read_bytes()).hexdigest() == archive.sha256
        lines = [orjson.loads(line) for line in gzip.decompress(path.read_bytes()).splitlines()]
        positions = [(line["chain"], line["seq"]) for line in lines]
        assert positions == sorted(positions)  # chain order, as verification reads them
        assert {line["event_id"] for line in lines} == set(by_month[archive.month])
        assert archive.events == len(by_month[archive.month])
        sidecar = orjson.loads((rules.archive_dir / f"audit-{archive.month}.json").read_bytes())
        assert sidecar["sha256"] == archive.sha256
    assert live_event_ids(engine) == {e for m in kept for e in by_month[m]}
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(AuditPatientRow).where(AuditPatientRow.recorded < report.cutoff)).scalar_one() == 0
        assert conn.execute(select(func.count()).select_from(AuditArchiveRow)).scalar_one() == 3
        assert conn.execute(select(func.count()).select_from(AuditCheckpointRow)).scalar_one() >= 1
    if backend == "postgresql":
        assert not {f"audit_event_{m.suffix}" for m in old} & children(engine)
        assert not {f"audit_patient_{m.suffix}" for m in old} & children(engine, "audit_patient")

    live = recorder.trail.verify()
    assert live.ok, live.problems
    assert live.events == 9 and live.archived == 12
    archived = verify_archives(engine, rules.archive_dir)
    assert archived.ok, archived.problems
    assert (archived.months, archived.events) == (3, 12)
    recorder.read(in_month(now, 20), "p1")  # the chains go on from where they were
    assert recorder.trail.verify().ok
    assert [e["id"] for e in recorder.trail.search(patient="p2")[0]] == []  # p2's events were all archived


def test_a_later_run_continues_the_archive_from_the_checkpoint(engine, recorder, tmp_path):
    now, by_month = _history(recorder)
    rules = policy(tmp_path, months=12)
    assert run_retention(engine, rules).ok
    later = run_retention(engine, rules, now=now.plus(8).start)
    assert later.ok, later.problems
    assert [a.month for a in later.archived] == [now.plus(-5)]
    assert live_event_ids(engine) == set(by_month[now])
    assert recorder.trail.verify().ok
    archived = verify_archives(engine, rules.archive_dir)
    assert archived.ok, archived.problems
    assert (archived.months, archived.events) == (4, 15)


def test_dry_run_changes_nothing(engine, recorder, tmp_path, backend):
    now, by_month = _history(recorder)
    stray = recorder.read(datetime(2098, 7, 5), "p9")  # a month no other test gives a partition
    before = live_event_ids(engine)
    partitions_before = children(engine) if backend == "postgresql" else set()
    rules = policy(tmp_path, months=12)

    report = run_retention(engine, rules, dry_run=True)

    assert report.ok
    assert report.to_archive == {now.plus(-30): 3, now.plus(-20): 6, now.plus(-13): 3}
    assert report.archived == []
    assert live_event_ids(engine) == before
    assert not rules.archive_dir.exists()
    if backend == "postgresql":
        assert "audit_event_y2098m07" in report.partitions_created
        assert children(engine) == partitions_before
        assert where_stored(engine)[stray] == "audit_event_default"
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(AuditCheckpointRow)).scalar_one() == 0


def test_an_altered_old_event_is_not_archived_and_nothing_is_dropped(engine, recorder, tmp_path):
    now, by_month = _history(recorder)
    victim = by_month[now.plus(-20)][1]
    with engine.begin() as conn:
        conn.execute(update(AuditEventRow).where(AuditEventRow.event_id == victim).values(outcome="8"))
    rules = policy(tmp_path, months=12)

    report = run_retention(engine, rules)

    assert [a.month for a in report.archived] == [now.plus(-30)]  # the month before it went
    assert any("altered" in p for p in report.problems)
    assert victim in live_event_ids(engine)
    assert set(by_month[now.plus(-13)]) <= live_event_ids(engine)  # later months wait
    assert not (rules.archive_dir / f"audit-{now.plus(-20)}.ndjson.gz").exists()
    assert not recorder.trail.verify().ok


def test_an_altered_archive_file_is_detected(engine, recorder, tmp_path):
    _history(recorder)
    rules = policy(tmp_path, months=12)
    report = run_retention(engine, rules)
    path = rules.archive_dir / report.archived[1].file_name
    lines = gzip.decompress(path.read_bytes()).splitlines()
    event = orjson.loads(lines[0])
    event["outcome"] = "8"
    lines[0] = orjson.dumps(event)
    path.write_bytes(gzip.compress(b"\n".join(lines) + b"\n"))
    assert any("sha256" in p for p in verify_archives(engine, rules.archive_dir).problems)
    (rules.archive_dir / report.archived[0].file_name).unlink()
    assert any("missing" in p for p in verify_archives(engine, rules.archive_dir).problems)


def test_a_second_machine_finds_the_run_busy(engine, recorder, tmp_path, postgres_only):
    _history(recorder)
    with engine.connect() as holder:
        holder.execute(text("SELECT pg_advisory_lock(:k)"), {"k": ADVISORY_LOCK_KEY})
        report = run_retention(engine, policy(tmp_path, months=12))
        holder.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": ADVISORY_LOCK_KEY})
    assert report.busy
    assert report.archived == [] and report.purged == []
    assert len(live_event_ids(engine)) == 21


def test_audit_search_by_patient_spans_months_and_skips_archived_ones(engine, tmp_path, request):
    from tests.builders import patient

    pid = "a3f0c2de-0000-4000-8000-000000000001"
    recorder = Recorder(engine)  # the patient's older history, appended in time order like the hub's
    now = Month.of(utcnow())
    long_ago = recorder.read(in_month(now.plus(-40)), pid)
    two_months_ago = recorder.read(in_month(now.plus(-2)), pid)
    client = request.getfixturevalue("client")  # logging in appends today's events after those
    assert client.put(f"/fhir/Patient/{pid}", json={**patient("079090012399"), "id": pid}).status_code == 201
    assert client.get(f"/fhir/Patient/{pid}").status_code == 200

    def found() -> list[str]:
        r = client.get("/fhir/AuditEvent", params={"patient": f"Patient/{pid}", "_count": 50})
        assert r.status_code == 200, r.text
        return [e["resource"]["id"] for e in r.json().get("entry", [])]

    before = found()
    assert len(before) == 4  # create, read, and the two older ones
    assert before[-2:] == [two_months_ago, long_ago]  # newest first
    assert run_retention(engine, policy(tmp_path, months=12)).ok
    after = found()
    assert long_ago not in after and two_months_ago in after
    assert recorder.trail.verify().ok
