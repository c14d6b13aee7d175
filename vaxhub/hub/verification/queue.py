"""The verification queue in the database: claim, complete, retry, dead-letter.

Claiming sets a lease: a fresh `lease_token`, the worker's name, and
`available_at` moved to when the lease expires. A worker that dies (SIGKILL,
lost machine) simply never completes; its jobs become claimable again when
their leases expire. Every completion is conditional on the job still
carrying the token its worker was given: a job whose lease expired and was
claimed again, or whose Patient changed meanwhile (the enqueue resets the
row), refuses the stale answer, so a result is recorded at most once per
claim that still owns the job. Attempts are counted at claim time, so a job
that keeps killing its workers still reaches the dead letters.

On PostgreSQL the claim selects with `FOR UPDATE SKIP LOCKED`, so workers
claiming at the same moment take different jobs without waiting for each
other; SQLite has one writer at a time, which serialises claims.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Engine, bindparam, func, insert, select, update

from vaxhub.adapters.ports import PersonClaim, VerificationResult, VerificationStatus
from vaxhub.hub.storage.engine import WRITE_OPTION
from vaxhub.hub.storage.outbox_tables import VerificationJobRow, VerificationResultRow
from vaxhub.hub.storage.store import utcnow
from vaxhub.hub.verification.claims import claim_from_document
from vaxhub.hub.verification.insurance import InsuranceCheck

JOB = VerificationJobRow.__table__
RESULT = VerificationResultRow.__table__

#: The registry port's statuses as stored (ERROR: the claim cannot be put to
#: the registry, e.g. no well-formed identity card number; retrying will not help).
STORED_STATUS = {
    VerificationStatus.VERIFIED: "verified",
    VerificationStatus.MISMATCH: "mismatch",
    VerificationStatus.NOT_FOUND: "not_found",
    VerificationStatus.ERROR: "unverifiable",
}


@dataclass(frozen=True)
class ClaimedJob:
    patient_id: str
    patient_version: int
    claim: PersonClaim
    attempts: int  # including this one
    lease_token: str
    request_id: str | None = None  # the API request that queued it (bound while verifying)


@dataclass(frozen=True)
class Completion:
    """A result to record for a claimed job, with the social insurance
    cross-check when one was made."""

    job: ClaimedJob
    result: VerificationResult
    insurance: InsuranceCheck | None = None


@dataclass(frozen=True)
class Reschedule:
    """A failed attempt: retry after `delay` seconds, or dead-letter when `dead`."""

    job: ClaimedJob
    error: str
    delay: float = 0.0
    dead: bool = False


def _write(engine: Engine):
    return engine.connect().execution_options(**{WRITE_OPTION: True})


def claim_jobs(engine: Engine, *, worker: str, limit: int, lease_seconds: float,
               now: datetime | None = None) -> list[ClaimedJob]:
    """Lease up to `limit` claimable jobs, oldest first."""
    now = now or utcnow()
    token = str(uuid.uuid4())
    claimable = (
        select(JOB.c.patient_id)
        .where(JOB.c.state == "queued", JOB.c.available_at <= now)
        .order_by(JOB.c.available_at)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    stmt = (
        update(JOB)
        .where(JOB.c.patient_id.in_(claimable.scalar_subquery()))
        .values(
            lease_token=token,
            leased_by=worker,
            available_at=now + timedelta(seconds=lease_seconds),
            attempts=JOB.c.attempts + 1,
        )
        .returning(JOB.c.patient_id, JOB.c.patient_version, JOB.c.claim, JOB.c.attempts, JOB.c.request_id)
    )
    with _write(engine) as conn, conn.begin():
        rows = conn.execute(stmt).all()
    return [
        ClaimedJob(r.patient_id, r.patient_version, claim_from_document(r.claim), r.attempts, token, r.request_id)
        for r in rows
    ]


def _mismatch_document(result: VerificationResult) -> dict[str, Any] | None:
    if not result.mismatches:
        return None
    return {name: {"claimed": claimed, "registry": registered} for name, (claimed, registered) in result.mismatches.items()}


def record(engine: Engine, outcomes: list[Completion | Reschedule], *, worker: str, registry: str,
           now: datetime | None = None) -> int:
    """Record outcomes in one transaction; returns how many results were recorded
    (outcomes whose job has moved on are dropped).

    The jobs still holding their tokens are locked first (`FOR UPDATE`; SQLite's
    write transaction is exclusive anyway), then updated with one executemany
    per kind of outcome: a statement per job costs more than the registry call.
    """
    if not outcomes:
        return 0
    now = now or utcnow()
    with _write(engine) as conn, conn.begin():
        tokens = dict(conn.execute(
            select(JOB.c.patient_id, JOB.c.lease_token)
            .where(JOB.c.patient_id.in_([o.job.patient_id for o in outcomes]))
            .with_for_update()
        ).all())
        owned = [o for o in outcomes if tokens.get(o.job.patient_id) == o.job.lease_token]
        completions = [o for o in owned if isinstance(o, Completion)]
        reschedules = [o for o in owned if isinstance(o, Reschedule)]
        if completions:
            rows = [{
                "b_patient_id": o.job.patient_id, "b_status": STORED_STATUS[o.result.status],
                "b_version": o.job.patient_version, "b_mismatches": _mismatch_document(o.result),
                "b_registry_id": o.result.current_id,
                # Always written, so a result without a cross-check clears an older one.
                "b_insurance_status": o.insurance.status if o.insurance else None,
                "b_insurance_mismatches": o.insurance.mismatch_document() if o.insurance else None,
            } for o in completions]
            conn.execute(
                update(JOB).where(JOB.c.patient_id == bindparam("b_patient_id")).values(
                    state="done", lease_token=None, leased_by=None, available_at=now, last_error=None,
                    result_status=bindparam("b_status"), result_version=bindparam("b_version"),
                    mismatches=bindparam("b_mismatches", type_=JOB.c.mismatches.type),
                    registry_id=bindparam("b_registry_id"), checked_at=now,
                    insurance_status=bindparam("b_insurance_status"),
                    insurance_mismatches=bindparam("b_insurance_mismatches", type_=JOB.c.insurance_mismatches.type),
                ),
                rows,
            )
            conn.execute(insert(RESULT), [{
                "patient_id": o.job.patient_id, "patient_version": o.job.patient_version,
                "registry_name": registry, "status": row["b_status"], "mismatches": row["b_mismatches"],
                "registry_id": o.result.current_id, "message": o.result.message,
                "attempts": o.job.attempts, "worker": worker, "recorded_at": now,
                "insurance_status": row["b_insurance_status"], "insurance_mismatches": row["b_insurance_mismatches"],
                "insurance_message": o.insurance.message if o.insurance else None,
            } for o, row in zip(completions, rows)])
        if reschedules:
            conn.execute(
                update(JOB).where(JOB.c.patient_id == bindparam("b_patient_id")).values(
                    state=bindparam("b_state"), lease_token=None, leased_by=None,
                    available_at=bindparam("b_available_at"), last_error=bindparam("b_error"),
                ),
                [{
                    "b_patient_id": o.job.patient_id, "b_state": "dead" if o.dead else "queued",
                    "b_available_at": now + timedelta(seconds=o.delay), "b_error": o.error[:2000],
                } for o in reschedules],
            )
    return len(completions)


def queued_count(engine: Engine) -> int:
    with engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(JOB).where(JOB.c.state == "queued")).scalar_one()
