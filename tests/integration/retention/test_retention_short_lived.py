"""Expired short-lived rows go, live ones stay; `vaxhub retention run` from the command line."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from pathlib import Path

from sqlalchemy import insert, inspect, select
from typer.testing import CliRunner

from tests.integration.retention.conftest import in_month, utcnow
from vaxhub.hub.retention.months import Month
from vaxhub.hub.retention.run import RetentionPolicy, run_retention
from vaxhub.hub.retention.short_lived import ShortLivedPolicy
from vaxhub.hub.security.tables import OtpChallengeRow, UsedAssertionRow


def policy(tmp_path: Path) -> RetentionPolicy:
    return RetentionPolicy(120, 3, tmp_path / "audit-archive", ShortLivedPolicy(tmp_path / "exports", 24.0, 30))


def _otp(conn, created: datetime, expires: datetime) -> str:
    challenge = uuid.uuid4().hex
    conn.execute(insert(OtpChallengeRow).values(challenge_id=challenge, patient_id="p1", phone="+84901234567", code_hash="h",
                                                expires=expires, attempts=0, used=False, created=created))
    return challenge


def _export_job(conn, state: str, expires_at: datetime | None, created_at: datetime) -> str:
    from vaxhub.hub.bulk_export.jobs import JOB

    job_id = str(uuid.uuid4())
    conn.execute(insert(JOB).values(
        id=job_id, client_id="registry", level="system", types=["Patient"], request_url="http://hub.test/fhir/$export",
        state=state, transaction_time=created_at, created_at=created_at, available_at=created_at, attempts=1,
        resources_written=0, finished_at=created_at, expires_at=expires_at,
    ))
    return job_id


def test_expired_short_lived_rows_are_deleted_and_live_ones_kept(engine, tmp_path):
    now = utcnow()
    exports = tmp_path / "exports"
    with engine.begin() as conn:
        gone_otp = _otp(conn, now - timedelta(hours=2), now - timedelta(hours=2) + timedelta(minutes=5))
        # expired, but still counted by the per-phone limit of codes in the last 15 minutes
        counted_otp = _otp(conn, now - timedelta(minutes=10), now - timedelta(minutes=5))
        live_otp = _otp(conn, now - timedelta(minutes=1), now + timedelta(minutes=4))
        conn.execute(insert(UsedAssertionRow), [
            {"client_id": "site", "jti": "old", "expires": now - timedelta(minutes=1)},
            {"client_id": "site", "jti": "fresh", "expires": now + timedelta(minutes=4)},
        ])
        has_windows = "rate_limit_window" in inspect(conn).get_table_names()
        if has_windows:
            from vaxhub.hub.storage.rate_limit_tables import RateLimitWindowRow

            now_ms = int((now - datetime(1970, 1, 1)).total_seconds() * 1000)
            conn.execute(insert(RateLimitWindowRow), [
                {"caller": "site", "window_start": now_ms - 120_000, "hits": 5, "expires_at": now_ms - 60_000},
                {"caller": "site", "window_start": now_ms, "hits": 1, "expires_at": now_ms + 60_000},
            ])
        has_exports = "bulk_export_job" in inspect(conn).get_table_names()
        if has_exports:
            past_expiry = _export_job(conn, "done", now - timedelta(hours=1), now - timedelta(hours=30))
            still_served = _export_job(conn, "done", now + timedelta(hours=5), now - timedelta(hours=19))
            long_expired = _export_job(conn, "expired", now - timedelta(days=40), now - timedelta(days=41))
            for job_id in (past_expiry, still_served):
                (exports / job_id / "token").mkdir(parents=True)
                (exports / job_id / "token" / "Patient-1.ndjson").write_text("{}\n")

    report = run_retention(engine, policy(tmp_path))

    assert report.ok
    with engine.connect() as conn:
        otps = set(conn.execute(select(OtpChallengeRow.challenge_id)).scalars())
        jtis = set(conn.execute(select(UsedAssertionRow.jti)).scalars())
        if has_windows:
            windows = set(conn.execute(select(RateLimitWindowRow.window_start)).scalars())
        if has_exports:
            from vaxhub.hub.bulk_export.jobs import JOB

            jobs = dict(conn.execute(select(JOB.c.id, JOB.c.state)).all())
    assert otps == {counted_otp, live_otp} and gone_otp not in otps
    assert jtis == {"fresh"}
    deleted = {(p.table, p.what): p.rows for p in report.purged}
    assert deleted[("auth_otp", "expired one-time codes")] == 1
    if has_windows:
        assert windows == {now_ms}
    if has_exports:
        assert jobs == {past_expiry: "expired", still_served: "done"}
        assert not (exports / past_expiry).exists()
        assert (exports / still_served / "token" / "Patient-1.ndjson").exists()
        assert long_expired not in jobs


def test_retention_command_dry_run_reports_and_changes_nothing(engine, tmp_path, monkeypatch):
    from vaxhub.hub.audit.trail import AuditTrail, Interaction
    from vaxhub.hub.cli import app

    old = Month.of(utcnow()).plus(-130)
    trail = AuditTrail(engine, clock=lambda: in_month(old))
    trail.record(Interaction("read", "GET", "/fhir/Patient/p1"))
    with engine.begin() as conn:
        _otp(conn, utcnow() - timedelta(days=1), utcnow() - timedelta(days=1))
    monkeypatch.setenv("VAXHUB_DATABASE_URL", engine.url.render_as_string(hide_password=False))
    monkeypatch.setenv("VAXHUB_DATA_DIR", str(tmp_path))

    dry = CliRunner().invoke(app, ["retention", "run", "--dry-run"])
    assert dry.exit_code == 0, dry.output
    assert f"{old} (archive, then drop)" in dry.output
    assert trail.count() == 1
    assert not (tmp_path / "audit-archive").exists()

    real = CliRunner().invoke(app, ["retention", "run"])
    assert real.exit_code == 0, real.output
    assert f"audit-{old}.ndjson.gz" in real.output
    assert trail.count() == 0
    assert (tmp_path / "audit-archive" / f"audit-{old}.ndjson.gz").is_file()
    checked = CliRunner().invoke(app, ["retention", "verify-archives"])
    assert checked.exit_code == 0, checked.output
    assert "1 events in 1 months" in checked.output
    verified = CliRunner().invoke(app, ["audit", "verify"])
    assert verified.exit_code == 0, verified.output
