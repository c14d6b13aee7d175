"""Operator API of the master patient index, under /ops/mpi.

The review queue (pairs the score put between the thresholds), the person
and record views with their history, and the changes an operator makes:
link, unlink, merge, un-merge, accept or reject a review. Every change needs
a reason and is kept in the index's history with the operator's id; every
call is audited with the Patients it showed or changed. National operators
with the `mpi` role only: the queue spans every site.
"""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, Field
from sqlalchemy import select
from starlette.concurrency import run_in_threadpool

from vaxhub.errors import Forbidden, NotFound
from vaxhub.hub.api.access import interaction, principal
from vaxhub.hub.audit.trail import Interaction
from vaxhub.hub.mpi import operations, views
from vaxhub.hub.mpi.index import REVIEW
from vaxhub.hub.mpi.service import MasterPatientIndex
from vaxhub.hub.security.principal import OPERATOR, Principal

MPI_ROLE = "mpi"
_PATIENT = {"resourceType": "Patient"}


def mpi_operator(who: Principal = Depends(principal)) -> Principal:
    if who.kind != OPERATOR or MPI_ROLE not in who.roles:
        raise Forbidden("The master patient index console needs an operator token with the 'mpi' role")
    if who.site_code is not None:
        raise Forbidden("The master patient index spans every site; a site operator cannot change it")
    return who


def _id(reference: str) -> str:
    return reference.split("/", 1)[1] if reference.startswith("Patient/") else reference


class Reasoned(BaseModel):
    reason: str = Field(..., min_length=1, max_length=2000, description="Why: kept in the history with the operator's id.")


class LinkRequest(Reasoned):
    record: str = Field(..., description="The site Patient (id or Patient/id).")
    person: str = Field(..., description="The person (golden Patient id or Patient/id) it belongs to.")


class UnlinkRequest(Reasoned):
    record: str = Field(..., description="The site Patient to take out of its person.")


class MergeRequest(Reasoned):
    source: str = Field(..., alias="from", description="The person merged away (golden Patient id).")
    target: str = Field(..., alias="into", description="The person that remains.")


class UnmergeRequest(Reasoned):
    person: str = Field(..., description="The merged-away person to restore.")


class ReviewDecision(Reasoned):
    decision: Literal["accept", "reject"]


def _touch(audit: Interaction, *ids: str | None) -> None:
    for patient_id in ids:
        if patient_id:
            audit.touched("Patient", patient_id, None, _PATIENT)


def build_router(mpi: MasterPatientIndex) -> APIRouter:
    router = APIRouter(prefix="/ops/mpi", tags=["Operations: master patient index"], dependencies=[Depends(interaction)])
    operator = Depends(mpi_operator)
    audited = Depends(interaction)

    def read(fn, *args, **kwargs):
        with mpi.engine.connect() as conn:
            return fn(conn, *args, **kwargs)

    def change(audit: Interaction, who: Principal, patients: list[str], operation, *args) -> dict[str, Any]:
        # The Patients named are noted first: the change's AuditEvent is written
        # inside its transaction (with the golden Patients it rewrote).
        audit.action = "update"
        _touch(audit, *patients)
        return mpi.change(operation, *args, actor=who.client_id or who.subject, context=audit)

    def review_patients(review_id: int) -> list[str]:
        with mpi.engine.connect() as conn:
            row = conn.execute(select(REVIEW.c.record_id, REVIEW.c.candidate_id, REVIEW.c.person_id).where(REVIEW.c.id == review_id)).first()
        return list(row) if row else []

    @router.get("/stats", summary="Records, persons and reviews by state")
    def stats(_who: Principal = operator) -> dict[str, Any]:
        return read(views.stats)

    @router.get("/reviews", summary="The review queue: pairs between the review and link thresholds")
    def reviews(
        status: Literal["open", "accepted", "rejected", "superseded"] = Query("open"),
        count: int = Query(50, alias="_count", ge=1, le=500),
        offset: int = Query(0, alias="_offset", ge=0),
        _who: Principal = operator,
        audit: Interaction = audited,
    ) -> dict[str, Any]:
        audit.action = "search"
        found = read(views.reviews, status=status, limit=count, offset=offset)
        for item in found["items"]:
            _touch(audit, *views.review_records(item))
        return found

    @router.post("/reviews/{review_id}", summary="Accept (link) or reject (keep apart) a review")
    async def decide(review_id: int, body: ReviewDecision, who: Principal = operator, audit: Interaction = audited) -> dict[str, Any]:
        patients = await run_in_threadpool(review_patients, review_id)
        return await run_in_threadpool(change, audit, who, patients, operations.decide_review, review_id, body.decision, body.reason)

    @router.post("/link", summary="Link a site record to a person")
    async def link(body: LinkRequest, who: Principal = operator, audit: Interaction = audited) -> dict[str, Any]:
        record_id, person_id = _id(body.record), _id(body.person)
        return await run_in_threadpool(change, audit, who, [record_id, person_id], operations.link, record_id, person_id, body.reason)

    @router.post("/unlink", summary="Take a site record out of its person")
    async def unlink(body: UnlinkRequest, who: Principal = operator, audit: Interaction = audited) -> dict[str, Any]:
        record_id = _id(body.record)
        return await run_in_threadpool(change, audit, who, [record_id], operations.unlink, record_id, body.reason)

    @router.post("/merge", summary="Merge one person into another")
    async def merge(body: MergeRequest, who: Principal = operator, audit: Interaction = audited) -> dict[str, Any]:
        source, target = _id(body.source), _id(body.target)
        return await run_in_threadpool(change, audit, who, [source, target], operations.merge, source, target, body.reason)

    @router.post("/unmerge", summary="Undo the latest merge of a person")
    async def unmerge(body: UnmergeRequest, who: Principal = operator, audit: Interaction = audited) -> dict[str, Any]:
        person_id = _id(body.person)
        return await run_in_threadpool(change, audit, who, [person_id], operations.unmerge, person_id, body.reason)

    @router.get("/persons/{person_id}", summary="A person: its records and how each was linked")
    def person(person_id: str, _who: Principal = operator, audit: Interaction = audited) -> dict[str, Any]:
        audit.action = "read"
        found = read(views.person, _id(person_id))
        if found is None:
            raise NotFound(f"Person {person_id} is not known to the master patient index")
        _touch(audit, found["person"], *(r["id"] for r in found["records"]))
        return found

    @router.get("/persons/{person_id}/history", summary="Every change of a person: who, when, why, before and after")
    def person_history(person_id: str, _who: Principal = operator, audit: Interaction = audited) -> dict[str, Any]:
        audit.action = "history"
        person_id = _id(person_id)
        if read(views.person, person_id) is None:
            raise NotFound(f"Person {person_id} is not known to the master patient index")
        _touch(audit, person_id)
        return {"person": person_id, "events": read(views.history, person_id=person_id)}

    @router.get("/records/{record_id}", summary="A site record's link: person, method, grade, score, reasons, history")
    def record(record_id: str, _who: Principal = operator, audit: Interaction = audited) -> dict[str, Any]:
        audit.action = "read"
        record_id = _id(record_id)
        found = read(views.record, record_id)
        if found is None:
            raise NotFound(f"Patient/{record_id} is not in the master patient index")
        _touch(audit, record_id, found["person"])
        return {**found, "events": read(views.history, record_id=record_id)}

    return router
