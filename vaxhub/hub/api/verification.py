"""Operator view of the identity verification queue, under /ops/verification.

One thin handler per endpoint over `vaxhub.hub.verification.operator_view`,
so an access dependency can be put on each. Answers are plain JSON; errors
are OperationOutcomes like everywhere else.
"""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, Field
from sqlalchemy import Engine

from vaxhub.errors import Forbidden, Gone, InvalidResource, Issue, NotFound
from vaxhub.hub.api.access import interaction, principal
from vaxhub.hub.audit.trail import Interaction
from vaxhub.hub.security.policy import owner_of, require, visible
from vaxhub.hub.security.principal import OPERATOR, Principal
from vaxhub.hub.storage.store import FhirStore
from vaxhub.hub.verification import operator_view


class RequeueRequest(BaseModel):
    patients: list[str] = Field(default_factory=list, description="Patient ids (or Patient/<id>) to verify again.")
    status: Literal["verified", "mismatch", "not_found", "unverifiable", "dead"] | None = Field(
        None, description="Requeue every Patient with this status."
    )
    site: str | None = Field(None, description="Only Patients managed by this organisation (Organization/<id>).")


VERIFICATION_ROLE = "verification"


def queue_operator(who: Principal = Depends(principal)) -> Principal:
    """The queue views are for operators with the `verification` role; an
    operator scoped to a site sees, counts and requeues that site's Patients only
    (those whose records the site wrote)."""
    if who.kind != OPERATOR or VERIFICATION_ROLE not in who.roles:
        raise Forbidden("The verification queue views need an operator token with the 'verification' role")
    return who


def build_router(engine: Engine, store: FhirStore | None = None) -> APIRouter:
    router = APIRouter(prefix="/ops/verification", tags=["Operations: identity verification"], dependencies=[Depends(interaction)])
    operator = Depends(queue_operator)

    @router.get("/status", summary="Patients per verification status, jobs in flight, registry circuit breakers")
    def status(who: Principal = operator) -> dict[str, Any]:
        return operator_view.status_counts(engine, site_code=who.site_code)

    @router.get("/mismatches", summary="Mismatching Patients, counted by site and field")
    def mismatches(
        site: str | None = Query(None, description="Organization/<id> managing the Patient"),
        field: str | None = Query(None, description="full_name, birth_date or sex"),
        count: int = Query(100, alias="_count", ge=1, le=1000),
        offset: int = Query(0, alias="_offset", ge=0),
        who: Principal = operator,
    ) -> dict[str, Any]:
        return operator_view.mismatches(engine, site=site, field=field, limit=count, offset=offset, site_code=who.site_code)

    @router.get("/dead", summary="Dead letters: jobs the queue gave up on, with their last error")
    def dead(
        count: int = Query(100, alias="_count", ge=1, le=1000),
        offset: int = Query(0, alias="_offset", ge=0),
        who: Principal = operator,
    ) -> dict[str, Any]:
        return operator_view.dead_letters(engine, limit=count, offset=offset, site_code=who.site_code)

    @router.post("/requeue", summary="Verify the selected Patients again")
    def requeue(request: RequeueRequest, who: Principal = operator) -> dict[str, Any]:
        try:
            count = operator_view.requeue(
                engine, patients=request.patients, status=request.status, site=request.site, site_code=who.site_code
            )
        except ValueError as exc:
            raise InvalidResource(str(exc), [Issue(str(exc), "requeue", "required")]) from None
        return {"requeued": count}

    @router.get("/patients/{patient_id}", summary="A Patient's verification status, mismatching fields and Provenance")
    def patient(patient_id: str, who: Principal = Depends(principal), audit: Interaction = Depends(interaction)) -> dict[str, Any]:
        # A citizen sees their own status (the app shows it); a site, its own Patients;
        # a national operator with the verification role, anyone's.
        national = who.kind == OPERATOR and VERIFICATION_ROLE in who.roles and who.site_code is None
        if not national:
            require(who, "Patient", "r")
            if store is None:
                raise Forbidden("Only national operators may read verification results here")
            try:
                record = store.read("Patient", patient_id)
            except (NotFound, Gone):
                raise NotFound(f"Patient/{patient_id} has no verification job") from None
            if not visible(who, "Patient", patient_id, record.content) or (who.site_code and owner_of(record.content) != who.site_code):
                raise NotFound(f"Patient/{patient_id} has no verification job")
        audit.action = "read"
        audit.touched("Patient", patient_id, None, {"resourceType": "Patient"})
        found = operator_view.patient_verification(engine, patient_id)
        if found is None:
            raise NotFound(f"Patient/{patient_id} has no verification job")
        return found

    return router
