"""`/ops/corrections`: the sites' work queue of citizens' correction requests.

For operators with the `corrections` role. A site's operator sees and acts on
the requests routed to that site only, a province's operator (registered with
the two-digit province code) on that province's, a national operator on all
(`vaxhub.hub.healthbook.correction_routing`); anyone else's request is 404.
Answers are JSON with the FHIR Task inside; errors are OperationOutcomes. Every
call is audited, and accepting leaves one AuditEvent per step
(`vaxhub.hub.healthbook.correction_queue`).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Body, Depends, Query, Request
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from vaxhub.errors import Forbidden, Issue, UnsupportedRequest
from vaxhub.hub.api.access import interaction, principal
from vaxhub.hub.audit.trail import Interaction
from vaxhub.hub.healthbook.correction_queue import STATUSES, CorrectionQueue, claim_rows
from vaxhub.hub.security.principal import OPERATOR, Principal
from vaxhub.hub.storage.store import Stored

CORRECTIONS_ROLE = "corrections"
MAX_PAGE = 200


class AcceptRequest(BaseModel):
    input: list[dict[str, Any]] | None = Field(
        None, description="The site's edit: Task.input entries replacing the claimed values (same shape as the citizen's)."
    )
    contained: list[dict[str, Any]] | None = Field(None, description="With an edited missing dose: the Immunization the input points at.")
    note: str | None = Field(None, max_length=1000, description="Shown to the citizen as Task.statusReason.")


class RejectRequest(BaseModel):
    reason: str = Field(..., min_length=1, max_length=1000, description="Why; shown to the citizen as Task.statusReason.")


def corrections_operator(who: Principal = Depends(principal)) -> Principal:
    if who.kind != OPERATOR or CORRECTIONS_ROLE not in who.roles:
        raise Forbidden("The correction queue needs an operator token with the 'corrections' role")
    return who


def summary(task: Stored) -> dict[str, Any]:
    content = task.content or {}
    return {
        "id": task.id,
        "version": task.version,
        "status": content.get("status"),
        "authoredOn": content.get("authoredOn"),
        "lastModified": content.get("lastModified"),
        "focus": (content.get("focus") or {}).get("reference"),
        "patient": (content.get("for") or {}).get("reference"),
        "owner": content.get("owner"),
        "description": content.get("description"),
        "businessStatus": (content.get("businessStatus") or {}).get("text"),
        "statusReason": (content.get("statusReason") or {}).get("text"),
    }


def build_router(queue: CorrectionQueue) -> APIRouter:
    router = APIRouter(prefix="/ops/corrections", tags=["Operations: citizens' corrections"])
    operator = Depends(corrections_operator)
    audited = Depends(interaction)

    @router.get("", summary="The correction requests in the operator's queue, newest first")
    def list_corrections(
        status: str = Query(
            "requested", description=f"Comma-separated: {', '.join(STATUSES)}, or 'all'"
        ),
        count: int = Query(50, alias="_count", ge=1, le=MAX_PAGE),
        offset: int = Query(0, alias="_offset", ge=0),
        who: Principal = operator,
        audit: Interaction = audited,
    ) -> dict[str, Any]:
        wanted = [] if status == "all" else [s.strip() for s in status.split(",") if s.strip()]
        unknown = [s for s in wanted if s not in STATUSES]
        if unknown or (status != "all" and not wanted):
            raise UnsupportedRequest(f"status must be one of {', '.join(STATUSES)} or all", [Issue(f"unknown status {unknown}", "status", "value")])
        audit.action = "search"
        tasks, total = queue.list(who, statuses=wanted, count=count, offset=offset)
        for task in tasks:
            audit.touched("Task", task.id, task.version, task.content)
        return {"total": total, "count": len(tasks), "offset": offset, "corrections": [summary(t) for t in tasks]}

    @router.get("/{task_id}", summary="One request: the Task, each claimed value beside the recorded one")
    def read_correction(task_id: str, who: Principal = operator, audit: Interaction = audited) -> dict[str, Any]:
        task = queue.read(who, task_id)
        focus = queue.focus_of(task)
        audit.touched("Task", task.id, task.version, task.content)
        if focus is not None:
            audit.touched(focus.rtype, focus.id, focus.version, focus.content)
        return {
            **summary(task),
            "claims": claim_rows(task.content or {}, focus.content if focus else None),
            "recordVersion": focus.version if focus else None,
            "task": task.content,
        }

    @router.post("/{task_id}/accept", summary="Accept (optionally with the site's edits): apply, re-issue certificates")
    async def accept(
        task_id: str, request: Request, body: AcceptRequest | None = Body(None), who: Principal = operator, audit: Interaction = audited
    ) -> dict[str, Any]:
        edit = body or AcceptRequest()
        accepted = await run_in_threadpool(
            lambda: queue.accept(
                who, task_id, edited_input=edit.input, edited_contained=edit.contained, note=edit.note, interaction=audit, root=str(request.base_url).rstrip("/")
            )
        )
        return {
            **summary(accepted.task),
            "changed": [f"{s.rtype}/{s.id}/_history/{s.version}" for s in accepted.changed],
            "certificates": accepted.certificates,
            "certificateWaiting": accepted.waiting,
            "task": accepted.task.content,
        }

    @router.post("/{task_id}/reject", summary="Reject with a reason the citizen sees")
    async def reject(task_id: str, body: RejectRequest, who: Principal = operator, audit: Interaction = audited) -> dict[str, Any]:
        task = await run_in_threadpool(lambda: queue.reject(who, task_id, reason=body.reason, interaction=audit))
        return {**summary(task), "task": task.content}

    return router
