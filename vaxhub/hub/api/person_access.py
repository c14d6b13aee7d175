"""The caller of a FHIR request, with a citizen's reach widened to their person
(`vaxhub.hub.security.person_scope`)."""

from __future__ import annotations

from fastapi import Depends, Request
from starlette.concurrency import run_in_threadpool

from vaxhub.hub.api.access import principal
from vaxhub.hub.security.person_scope import scoped_to_person
from vaxhub.hub.security.principal import PATIENT, Principal


async def person_principal(request: Request, who: Principal = Depends(principal)) -> Principal:
    """FastAPI dependency: the verified caller; for a citizen, with their person's compartment.

    Only a citizen's reach is read from the database (on a thread); everyone
    else passes through without a hop to the thread pool."""
    if who.kind != PATIENT or not who.patient_id:
        return who
    return await run_in_threadpool(scoped_to_person, who, request.app.state.engine)
