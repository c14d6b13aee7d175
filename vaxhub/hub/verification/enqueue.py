"""The outbox side: a verification job is recorded with the Patient version
that asks for it, in the same database transaction.

One job row per Patient: a newer version overwrites the row (new claim, back
to `queued`, attempts reset, lease dropped), which supersedes a pending job
for an older version; a worker still holding the old lease then fails to
complete it, so the older answer is never recorded. Only a change to what is
verified (identity card numbers, name, birth date, sex) queues a job: a new
phone number or address does not send the person to the registry again.
A deleted Patient's job is removed.
"""

from __future__ import annotations

import threading
import weakref
from typing import Any

from sqlalchemy import delete

from vaxhub.hub.observability.request_context import current_request_id
from vaxhub.hub.security.policy import owner_of
from vaxhub.hub.storage.bulk import Upsert
from vaxhub.hub.storage.outbox_tables import VerificationJobRow
from vaxhub.hub.storage.store import Stored, Writer
from vaxhub.hub.verification.claims import claim_document, patient_site, person_claim

JOB = VerificationJobRow.__table__

# Columns a newer Patient version resets; the latest result stays until replaced.
_RESET_ON_ENQUEUE = (
    "patient_version", "claim", "site_ref", "site_name", "site_code", "state", "attempts",
    "available_at", "lease_token", "leased_by", "enqueued_at", "last_error", "request_id",
)


class VerificationEnqueuer:
    """`WriteListener` that queues a registry verification for each Patient
    version whose identity fields changed."""

    def __init__(self) -> None:
        # Jobs gathered per unit of work until it commits; a unit rolled back is
        # dropped with its writer.
        self._pending: weakref.WeakKeyDictionary[Writer, dict[str, dict[str, Any] | None]] = weakref.WeakKeyDictionary()
        self._lock = threading.Lock()

    def after_write(self, writer: Writer, stored: Stored, previous: Stored | None) -> None:
        if stored.rtype != "Patient":
            return
        with self._lock:
            jobs = self._pending.setdefault(writer, {})
        if stored.deleted:
            jobs[stored.id] = None
            return
        claim = person_claim(stored.content or {})
        if previous is not None and previous.content is not None and stored.id not in jobs:
            if person_claim(previous.content) == claim:
                return
        site_ref, site_name = patient_site(stored.content or {})
        jobs[stored.id] = {
            "patient_id": stored.id,
            "patient_version": stored.version,
            "claim": claim_document(claim),
            "site_ref": site_ref,
            "site_name": site_name,
            "site_code": owner_of(stored.content),
            "state": "queued",
            "attempts": 0,
            "available_at": writer.now,
            "lease_token": None,
            "leased_by": None,
            "enqueued_at": writer.now,
            "last_error": None,
            "request_id": current_request_id(),  # the worker binds it while verifying
        }

    def before_commit(self, writer: Writer) -> None:
        with self._lock:
            jobs = self._pending.pop(writer, None)
        if not jobs:
            return
        removed = [patient_id for patient_id, job in jobs.items() if job is None]
        queued = [job for job in jobs.values() if job is not None]
        if removed:
            writer.conn.execute(delete(JOB).where(JOB.c.patient_id.in_(removed)))
        if queued:  # in the unit's one statement, with its resources
            writer.insert_later(QUEUE_JOBS, queued)


# Insert jobs, or reset the Patient's existing row to the new version.
QUEUE_JOBS = Upsert(JOB, ("patient_id",), _RESET_ON_ENQUEUE)
