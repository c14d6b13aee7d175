"""The caller of a FHIR request, with a citizen's reach widened to their person
(`vaxhub.hub.security.person_scope`)."""

from __future__ import annotations

from fastapi import Depends, Request

from vaxhub.hub.api.access import principal
from vaxhub.hub.security.person_scope import scoped_to_person
from vaxhub.hub.security.principal import Principal


def person_principal(request: Request, who: Principal = Depends(principal)) -> Principal:
    """FastAPI dependency: the verified caller; for a citizen, with their person's compartment."""
    return scoped_to_person(who, request.app.state.engine)
