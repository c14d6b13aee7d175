"""Is a Patient's identity verified by the population registry?

A certificate names a person; the hub signs it only for a Patient whose
latest registry result (`verification_result`, written by the verification
workers) says `verified`. A newer version of the Patient whose identity
fields changed and wait for a re-check (`verification_job` holding a newer
version than the result) is not verified yet: the certificate would carry
the unchecked name.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Connection, select

from vaxhub.hub.storage.outbox_tables import VerificationJobRow, VerificationResultRow

RESULT = VerificationResultRow.__table__
JOB = VerificationJobRow.__table__

EXPLANATION = {
    "mismatch": "the population registry holds other details for this identity number",
    "not_found": "the population registry does not know this identity number",
    "unverifiable": "the record has no identity number, name or birth date the registry can check",
    "pending": "the registry check is still queued",
    "unchecked": "the record was never checked against the population registry",
}


@dataclass(frozen=True)
class IdentityStatus:
    status: str  # verified | mismatch | not_found | unverifiable | pending | unchecked
    patient_version: int | None = None

    @property
    def verified(self) -> bool:
        return self.status == "verified"

    @property
    def explanation(self) -> str:
        return EXPLANATION.get(self.status, "verified by the population registry")


def identity_status(conn: Connection, patient_id: str) -> IdentityStatus:
    """The registry's latest verdict on `patient_id`."""
    result = conn.execute(
        select(RESULT.c.status, RESULT.c.patient_version)
        .where(RESULT.c.patient_id == patient_id)
        .order_by(RESULT.c.recorded_at.desc(), RESULT.c.id.desc())
        .limit(1)
    ).first()
    job = conn.execute(select(JOB.c.state, JOB.c.patient_version).where(JOB.c.patient_id == patient_id)).first()
    if result is None:
        return IdentityStatus("pending" if job is not None and job.state == "queued" else "unchecked")
    if result.status == "verified" and job is not None and job.state != "done" and job.patient_version > result.patient_version:
        return IdentityStatus("pending", job.patient_version)
    return IdentityStatus(result.status, result.patient_version)
