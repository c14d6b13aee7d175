"""Rows that only matter for minutes or days: deleted once they can no longer be used.

- `auth_otp`: a one-time code after it expired and left the per-phone window
  that counts recent codes (`citizen_login.WINDOW`).
- `auth_used_jti`: an assertion id once the assertion could no longer be valid.
- `rate_limit_window` (when the shared rate limits are installed): windows past
  their `expires_at`.
- `bulk_export_job`: finished exports past their expiry lose their files (through
  the export package's own `expire_due` and `remove_job_files`); the rows of
  expired and cancelled jobs go `export_job_record_days` later.

Tables a deployment does not have yet are skipped, not failed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from sqlalchemy import Engine, and_, delete, func, inspect, or_, select

from vaxhub.hub.security.citizen_login import WINDOW as OTP_WINDOW
from vaxhub.hub.security.tables import OtpChallengeRow, UsedAssertionRow
from vaxhub.hub.storage.engine import write_transaction


@dataclass
class Purge:
    table: str
    rows: int
    what: str


@dataclass(frozen=True)
class ShortLivedPolicy:
    export_dir: Path
    export_retention_hours: float
    export_job_record_days: int


def purge_short_lived(engine: Engine, policy: ShortLivedPolicy, now: datetime, *, dry_run: bool) -> list[Purge]:
    present = set(inspect(engine).get_table_names())
    done = [
        _purge(engine, OtpChallengeRow.__table__, and_(OtpChallengeRow.expires < now, OtpChallengeRow.created < now - OTP_WINDOW),
               "expired one-time codes", dry_run),
        _purge(engine, UsedAssertionRow.__table__, UsedAssertionRow.expires < now, "used assertion ids past their validity", dry_run),
    ]
    if "rate_limit_window" in present:
        from vaxhub.hub.storage.rate_limit_tables import RateLimitWindowRow

        epoch_ms = int((now - datetime(1970, 1, 1)).total_seconds() * 1000)
        done.append(_purge(engine, RateLimitWindowRow.__table__, RateLimitWindowRow.expires_at < epoch_ms, "expired rate-limit windows", dry_run))
    if "bulk_export_job" in present:
        done += _purge_exports(engine, policy, now, dry_run)
    return done


def _purge(engine: Engine, table, condition, what: str, dry_run: bool) -> Purge:  # noqa: ANN001
    if dry_run:
        with engine.connect() as conn:
            return Purge(table.name, conn.execute(select(func.count()).select_from(table).where(condition)).scalar_one(), what)
    with write_transaction(engine) as conn:
        return Purge(table.name, conn.execute(delete(table).where(condition)).rowcount, what)


def _purge_exports(engine: Engine, policy: ShortLivedPolicy, now: datetime, dry_run: bool) -> list[Purge]:
    from vaxhub.hub.bulk_export.files import remove_job_files
    from vaxhub.hub.bulk_export.jobs import JOB, ExportJobs

    clock: Callable[[], datetime] = lambda: now  # noqa: E731
    jobs = ExportJobs(engine, retention_hours=policy.export_retention_hours, clock=clock)
    due = and_(JOB.c.state.in_(("done", "failed")), JOB.c.expires_at <= now)
    forgotten = and_(
        JOB.c.state.in_(("expired", "cancelled")),
        or_(JOB.c.expires_at < now - timedelta(days=policy.export_job_record_days),
            and_(JOB.c.expires_at.is_(None), JOB.c.created_at < now - timedelta(days=policy.export_job_record_days))),
    )
    if dry_run:
        with engine.connect() as conn:
            expiring = conn.execute(select(func.count()).select_from(JOB).where(due)).scalar_one()
            old = conn.execute(select(func.count()).select_from(JOB).where(forgotten)).scalar_one()
    else:
        expiring = 0
        while batch := jobs.expire_due():  # a thousand at a time
            for job_id in batch:
                remove_job_files(policy.export_dir, job_id)
            expiring += len(batch)
        with write_transaction(engine) as conn:
            gone = conn.execute(delete(JOB).where(forgotten).returning(JOB.c.id)).scalars().all()
        for job_id in gone:  # a cancelled job's files, if a worker left any
            remove_job_files(policy.export_dir, job_id)
        old = len(gone)
    return [
        Purge("bulk_export_job", expiring, "finished exports past their expiry (files removed)"),
        Purge("bulk_export_job", old, f"expired or cancelled export jobs older than {policy.export_job_record_days} days"),
    ]
