"""One retention pass: `vaxhub retention run`.

1. PostgreSQL: rows that landed in the DEFAULT audit partitions are moved into
   partitions of their own months; then the current month and
   `audit_partitions_ahead` months after it are made sure to exist.
2. Audit months that ended `audit_retention_months` ago or earlier are
   archived and dropped, oldest first (`audit_archive`); the first month that
   cannot be archived stops the walk, since chains are cut only from their start.
3. Expired short-lived rows are deleted (`short_lived`).

Several machines may run it at once: on PostgreSQL a session advisory lock
lets one pass through and the others report that it was busy. With
`dry_run` nothing is written: the report lists what a real pass would do.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from sqlalchemy import Engine, text
from sqlalchemy.exc import OperationalError

from vaxhub.hub.retention import partitions
from vaxhub.hub.retention.audit_archive import ArchiveRefused, MonthArchive, archive_month, drop_empty_month, events_in, has_events, months_before
from vaxhub.hub.retention.months import Month, retention_cutoff
from vaxhub.hub.retention.short_lived import Purge, ShortLivedPolicy, purge_short_lived
from vaxhub.hub.storage.engine import write_transaction
from vaxhub.settings import Settings

# pg_advisory_lock key of the retention pass ("vaxhub" "rt" in ASCII, fits a bigint).
ADVISORY_LOCK_KEY = 0x7661786875627274


@dataclass(frozen=True)
class RetentionPolicy:
    audit_retention_months: int
    partitions_ahead: int
    archive_dir: Path
    short_lived: ShortLivedPolicy

    @classmethod
    def from_settings(cls, settings: Settings) -> "RetentionPolicy":
        return cls(
            settings.audit_retention_months,
            settings.audit_partitions_ahead,
            settings.audit_archive_path(),
            ShortLivedPolicy(settings.export_path(), settings.export_retention_hours, settings.export_job_record_days),
        )


@dataclass
class RetentionReport:
    dry_run: bool
    cutoff: datetime
    busy: bool = False  # another machine held the lock; nothing was done
    partitions_created: list[str] = field(default_factory=list)
    rows_moved: dict[str, int] = field(default_factory=dict)  # partition -> rows moved out of DEFAULT
    archived: list[MonthArchive] = field(default_factory=list)
    to_archive: dict[Month, int] = field(default_factory=dict)  # dry run: month -> events
    empty_months_dropped: list[Month] = field(default_factory=list)
    purged: list[Purge] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def utcnow() -> datetime:
    return datetime.now(timezone.utc).replace(tzinfo=None)


def run_retention(engine: Engine, policy: RetentionPolicy, *, dry_run: bool = False, now: datetime | None = None) -> RetentionReport:
    now = now or utcnow()
    report = RetentionReport(dry_run, retention_cutoff(now, policy.audit_retention_months))
    with _exclusive(engine) as acquired:
        if not acquired:
            report.busy = True
            return report
        with engine.connect() as conn:
            partitioned = partitions.is_partitioned(conn)
        if partitioned:
            _maintain_partitions(engine, policy, now, report)
        _archive_old_months(engine, policy, now, report)
        report.purged = purge_short_lived(engine, policy.short_lived, now, dry_run=dry_run)
    return report


@contextmanager
def _exclusive(engine: Engine) -> Iterator[bool]:
    if engine.dialect.name != "postgresql":
        yield True  # SQLite: one machine; each step takes the write lock as it goes
        return
    with engine.connect() as conn:
        acquired = conn.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": ADVISORY_LOCK_KEY}).scalar_one()
        conn.commit()
        try:
            yield acquired
        finally:
            if acquired:
                conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": ADVISORY_LOCK_KEY})
                conn.commit()


def _maintain_partitions(engine: Engine, policy: RetentionPolicy, now: datetime, report: RetentionReport) -> None:
    with engine.connect() as conn:
        stray = {table: partitions.months_in_default(conn, table) for table in partitions.AUDIT_TABLES}
        existing = {table: partitions.monthly(conn, table) for table in partitions.AUDIT_TABLES}
    wanted = {Month.of(now).plus(i) for i in range(policy.partitions_ahead + 1)}
    for table in partitions.AUDIT_TABLES:
        for month in sorted(set(stray[table]) | wanted):
            if month in existing[table]:
                continue  # a month with a partition has no rows in DEFAULT
            name = partitions.partition_name(table, month)
            if report.dry_run:
                moved = stray[table].get(month, 0)
            else:
                with write_transaction(engine) as conn:
                    partitions.limit_lock_waits(conn)
                    moved = partitions.attach_month(conn, table, month)
            report.partitions_created.append(name)
            if moved:
                report.rows_moved[name] = moved


def _archive_old_months(engine: Engine, policy: RetentionPolicy, now: datetime, report: RetentionReport) -> None:
    with engine.connect() as conn:
        old = months_before(conn, report.cutoff)
        if report.dry_run and partitions.is_partitioned(conn):
            # A real pass would first move old rows out of DEFAULT into partitions of their own.
            old.update({m: None for m in partitions.months_in_default(conn) if m.end <= report.cutoff})
        counts = {month: events_in(conn, month) for month in old} if report.dry_run else {}
    for month in sorted(old):
        if report.dry_run:
            report.to_archive[month] = counts[month]
            continue
        try:
            with engine.connect() as conn:
                empty = not has_events(conn, month)
            if empty:
                drop_empty_month(engine, month)
                report.empty_months_dropped.append(month)
            else:
                report.archived.append(archive_month(engine, month, policy.archive_dir, now))
        except ArchiveRefused as refused:
            report.problems.append(str(refused))
            return  # later months would leave a gap in the chains
        except OperationalError as exc:  # lock_timeout while audit writes held the table: next run
            report.problems.append(f"{month}: not archived this time ({exc.orig or exc})")
            return
