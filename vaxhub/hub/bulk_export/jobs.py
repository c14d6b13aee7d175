"""Export jobs in the database: create, claim with a lease, heartbeat, finish.

The queue works like the verification outbox (`vaxhub.hub.verification.queue`):
a claim gives the job a fresh lease token and moves `available_at` to the
lease's expiry (`FOR UPDATE SKIP LOCKED` on PostgreSQL, so workers never take
the same job; SQLite's single writer serialises claims). A worker renews its
lease while it writes; a worker that dies stops renewing, and the job is
claimed again when the lease runs out. Every renewal and the completion are
conditional on the lease token and on the job still running, so a worker that
lost its job (lease expired, or the client cancelled) learns it at its next
heartbeat and never publishes a manifest. Attempts are counted at claim time:
a job that keeps killing its workers fails after `MAX_ATTEMPTS`.

A job becomes claimable `settle_seconds` after its transactionTime, so that
writes whose version timestamps precede it have committed before it reads.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Callable

from sqlalchemy import Engine, func, insert, select, update

from vaxhub.errors import NotFound, RateLimited
from vaxhub.hub.bulk_export.request import ExportRequest
from vaxhub.hub.bulk_export.tables import BulkExportJobRow
from vaxhub.hub.storage.engine import write_transaction
from vaxhub.hub.storage.store import utcnow

JOB = BulkExportJobRow.__table__
JOB_ID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
MAX_ATTEMPTS = 3
ACTIVE = ("queued", "running")
# Jobs whose status a client can still ask for; cancelled and expired ones are gone.
VISIBLE = ("queued", "running", "done", "failed")


@dataclass(frozen=True)
class ExportJob:
    id: str
    client_id: str
    level: str
    group_id: str | None
    group_version: int | None
    patients: tuple[str, ...] | None
    types: tuple[str, ...]
    since: datetime | None
    request_url: str
    warnings: tuple[str, ...]
    state: str
    transaction_time: datetime
    attempts: int
    resources_written: int
    progress: str | None
    output_dir: str | None
    output: list[dict[str, Any]]
    errors: list[dict[str, Any]]
    error: str | None
    expires_at: datetime | None

    @classmethod
    def from_row(cls, row: Any) -> "ExportJob":
        return cls(
            row.id, row.client_id, row.level, row.group_id, row.group_version,
            tuple(row.patients) if row.patients else None, tuple(row.types), row.since, row.request_url,
            tuple(row.warnings or ()), row.state, row.transaction_time, row.attempts, row.resources_written,
            row.progress, row.output_dir, list(row.output or []), list(row.errors or []), row.error, row.expires_at,
        )

    def file_named(self, name: str) -> dict[str, Any] | None:
        return next((f for f in self.output + self.errors if f["file"] == name), None)


@dataclass(frozen=True)
class Lease:
    """A claimed job and the token that proves the claim is still ours."""

    job: ExportJob
    token: str


class ExportJobs:
    def __init__(
        self,
        engine: Engine,
        *,
        lease_seconds: float = 60.0,
        settle_seconds: float = 5.0,
        retention_hours: float = 24.0,
        max_active_per_client: int = 3,
        clock: Callable[[], datetime] = utcnow,
    ):
        self.engine = engine
        self.lease = timedelta(seconds=lease_seconds)
        self.settle = timedelta(seconds=settle_seconds)
        self.retention = timedelta(hours=retention_hours)
        self.max_active = max_active_per_client
        self.clock = clock

    # ------------------------------------------------------------ the API side

    def create(self, client_id: str, request: ExportRequest, types: tuple[str, ...], request_url: str,
               *, group_id: str | None = None, group_version: int | None = None) -> ExportJob:
        now = self.clock()
        job_id = str(uuid.uuid4())
        with write_transaction(self.engine) as conn:
            active = conn.execute(
                select(func.count()).select_from(JOB).where(JOB.c.client_id == client_id, JOB.c.state.in_(ACTIVE))
            ).scalar_one()
            if active >= self.max_active:
                raise RateLimited(f"{active} exports of this client are still running; wait for one to finish or cancel it",
                                  retry_after=max(1, int(self.settle.total_seconds())) + 5)
            conn.execute(insert(JOB).values(
                id=job_id, client_id=client_id, level=request.level, group_id=group_id, group_version=group_version,
                patients=list(request.patients) if request.patients else None, types=list(types), since=request.since,
                request_url=request_url, warnings=list(request.warnings) or None, state="queued",
                transaction_time=now, created_at=now, available_at=now + self.settle, attempts=0, resources_written=0,
            ))
        return self.get(job_id)

    def get(self, job_id: str) -> ExportJob:
        """A job a client may still ask about; 404 for unknown, cancelled and expired ones."""
        if not JOB_ID.fullmatch(job_id):  # never hand the database a NUL byte or a megabyte
            raise NotFound(f"Export job {job_id[:64]!r} is not known")
        with self.engine.connect() as conn:
            row = conn.execute(select(JOB).where(JOB.c.id == job_id, JOB.c.state.in_(VISIBLE))).first()
        if row is None:
            raise NotFound(f"Export job {job_id!r} is not known (or was cancelled or has expired)")
        return ExportJob.from_row(row)

    def cancel(self, job_id: str) -> bool:
        """Cancel (or delete the files of) a job; a worker holding it stops at its next heartbeat."""
        with write_transaction(self.engine) as conn:
            changed = conn.execute(
                update(JOB).where(JOB.c.id == job_id, JOB.c.state.in_(VISIBLE))
                .values(state="cancelled", lease_token=None, finished_at=self.clock())
            ).rowcount
        return changed == 1

    # --------------------------------------------------------- the worker side

    def has_claimable(self) -> bool:
        """A read-only look first, so idle workers do not take the write lock every poll."""
        with self.engine.connect() as conn:
            return conn.execute(
                select(JOB.c.id).where(JOB.c.state.in_(ACTIVE), JOB.c.available_at <= self.clock()).limit(1)
            ).first() is not None

    def claim(self, worker: str) -> Lease | None:
        """Lease the oldest claimable job: queued and settled, or running with an expired lease."""
        while True:
            now = self.clock()
            token = str(uuid.uuid4())
            claimable = (
                select(JOB.c.id)
                .where(JOB.c.state.in_(ACTIVE), JOB.c.available_at <= now)
                .order_by(JOB.c.available_at)
                .limit(1)
                .with_for_update(skip_locked=True)
            )
            with write_transaction(self.engine) as conn:
                row = conn.execute(
                    update(JOB).where(JOB.c.id.in_(claimable.scalar_subquery()))
                    .values(state="running", lease_token=token, leased_by=worker[:100],
                            available_at=now + self.lease, attempts=JOB.c.attempts + 1, resources_written=0,
                            progress="starting")
                    .returning(*JOB.c)
                ).first()
            if row is None:
                return None
            if row.attempts <= MAX_ATTEMPTS:
                return Lease(ExportJob.from_row(row), token)
            self.fail(Lease(ExportJob.from_row(row), token), f"the export stopped {MAX_ATTEMPTS} times without finishing")

    def heartbeat(self, lease: Lease, *, written: int, progress: str) -> bool:
        """Renew the lease and record progress; False when the job is no longer ours."""
        now = self.clock()
        with write_transaction(self.engine) as conn:
            changed = conn.execute(
                update(JOB).where(JOB.c.id == lease.job.id, JOB.c.lease_token == lease.token, JOB.c.state == "running")
                .values(available_at=now + self.lease, resources_written=written, progress=progress[:255])
            ).rowcount
        return changed == 1

    def complete(self, lease: Lease, *, output: list[dict], errors: list[dict], written: int) -> bool:
        now = self.clock()
        with write_transaction(self.engine) as conn:
            changed = conn.execute(
                update(JOB).where(JOB.c.id == lease.job.id, JOB.c.lease_token == lease.token, JOB.c.state == "running")
                .values(state="done", lease_token=None, output_dir=lease.token, output=output, errors=errors,
                        resources_written=written, progress="done", finished_at=now, expires_at=now + self.retention)
            ).rowcount
        return changed == 1

    def release(self, lease: Lease, error: str, *, retry_in: float = 5.0) -> None:
        """Give a job back after a failed attempt; the last attempt fails it for good."""
        if lease.job.attempts >= MAX_ATTEMPTS:
            self.fail(lease, error)
            return
        with write_transaction(self.engine) as conn:
            conn.execute(
                update(JOB).where(JOB.c.id == lease.job.id, JOB.c.lease_token == lease.token, JOB.c.state == "running")
                .values(state="queued", lease_token=None, available_at=self.clock() + timedelta(seconds=retry_in),
                        error=error[:2000], progress=f"retrying after: {error}"[:255])
            )

    def give_back(self, lease: Lease) -> None:
        """A worker shutting down returns its job at once, the attempt not counted."""
        with write_transaction(self.engine) as conn:
            conn.execute(
                update(JOB).where(JOB.c.id == lease.job.id, JOB.c.lease_token == lease.token, JOB.c.state == "running")
                .values(state="queued", lease_token=None, available_at=self.clock(), attempts=JOB.c.attempts - 1, progress="queued")
            )

    def fail(self, lease: Lease, error: str) -> None:
        now = self.clock()
        with write_transaction(self.engine) as conn:
            conn.execute(
                update(JOB).where(JOB.c.id == lease.job.id, JOB.c.lease_token == lease.token, JOB.c.state == "running")
                .values(state="failed", lease_token=None, error=error[:2000], progress="failed", finished_at=now,
                        expires_at=now + self.retention)
            )

    def expire_due(self) -> list[str]:
        """Mark finished jobs past their retention as expired; returns their ids (their files go)."""
        now = self.clock()
        with self.engine.connect() as conn:
            due = conn.execute(
                select(JOB.c.id).where(JOB.c.state.in_(("done", "failed")), JOB.c.expires_at <= now).limit(1000)
            ).scalars().all()
        if not due:
            return []
        with write_transaction(self.engine) as conn:
            conn.execute(update(JOB).where(JOB.c.id.in_(due), JOB.c.state.in_(("done", "failed"))).values(state="expired"))
        return list(due)

    def has_active(self) -> bool:
        """Whether any job is queued or running (settled or not, leased or not)."""
        with self.engine.connect() as conn:
            return conn.execute(select(JOB.c.id).where(JOB.c.state.in_(ACTIVE)).limit(1)).first() is not None
