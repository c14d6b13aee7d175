"""POST /fhir/Patient/$match: find the person a Patient resource describes.

https://hl7.org/fhir/R4/patient-operation-match.html

In: a Parameters resource with `resource` (the Patient to match, 1..1),
`onlyCertainMatches` (boolean) and `count` (positive integer); a bare
Patient is taken as `resource` alone. Out: a searchset Bundle of golden
Patients, most likely first, each entry's `search.score` the probability
(0..1) and its `match-grade` extension certain, probable or possible.

Matching searches the whole population, so citizens may not call it; systems
need search rights on Patient. Every person returned is audited.
"""

from __future__ import annotations

import uuid
from typing import Any

from fastapi import APIRouter, Depends, Request
from starlette.concurrency import run_in_threadpool

from vaxhub.errors import Forbidden, Gone, Issue, MalformedInput, NotFound
from vaxhub.fhir.resources import validate_resource
from vaxhub.hub.api.access import interaction, principal
from vaxhub.hub.api.fhir_http import FhirResponse, base_url, read_json_body
from vaxhub.hub.audit.trail import Interaction
from vaxhub.hub.mpi.match import DEFAULT_COUNT, MAX_COUNT, MatchRequest, match_persons
from vaxhub.hub.mpi.service import MasterPatientIndex
from vaxhub.hub.security.policy import require
from vaxhub.hub.security.principal import PATIENT, Principal
from vaxhub.settings import Settings

MATCH_GRADE = "http://hl7.org/fhir/StructureDefinition/match-grade"


def _bad(message: str, where: str) -> MalformedInput:
    return MalformedInput(message, [Issue(message, where, "invalid")])


def parse_match_parameters(body: Any) -> MatchRequest:
    """The operation's input, checked (400 for a malformed call, 422 for an invalid Patient)."""
    if not isinstance(body, dict):
        raise _bad("The body must be a Parameters resource", "Parameters")
    if body.get("resourceType") == "Patient":
        body = {"resourceType": "Parameters", "parameter": [{"name": "resource", "resource": body}]}
    if body.get("resourceType") != "Parameters":
        raise _bad(f"Expected a Parameters resource, got {body.get('resourceType')!r}", "Parameters")
    parameters = body.get("parameter")
    if not isinstance(parameters, list):
        raise _bad("Parameters.parameter must be a list", "Parameters.parameter")
    patient, only_certain, count = None, False, DEFAULT_COUNT
    for i, p in enumerate(parameters):
        where = f"Parameters.parameter[{i}]"
        if not isinstance(p, dict):
            raise _bad("Each parameter must be an object", where)
        name = p.get("name")
        if name == "resource":
            if patient is not None:
                raise _bad("Only one resource may be matched per call", where)
            patient = p.get("resource")
            if not isinstance(patient, dict) or patient.get("resourceType") != "Patient":
                raise _bad("The resource parameter must hold a Patient", f"{where}.resource")
        elif name == "onlyCertainMatches":
            if not isinstance(p.get("valueBoolean"), bool):
                raise _bad("onlyCertainMatches takes valueBoolean", f"{where}.valueBoolean")
            only_certain = p["valueBoolean"]
        elif name == "count":
            value = p.get("valueInteger", p.get("valuePositiveInt"))
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise _bad("count takes a positive valueInteger", f"{where}.valueInteger")
            count = min(value, MAX_COUNT)
    if patient is None:
        raise _bad("The resource parameter (the Patient to match) is required", "Parameters.parameter")
    validate_resource(patient, expected_type="Patient")
    return MatchRequest(patient, only_certain, count)


def build_router(mpi: MasterPatientIndex, settings: Settings) -> APIRouter:
    router = APIRouter(prefix="/fhir", tags=["FHIR R4"])

    @router.post("/Patient/$match", summary="Find the person a Patient describes (MPI match)", response_class=FhirResponse)
    async def patient_match(request: Request, who: Principal = Depends(principal), audit: Interaction = Depends(interaction)) -> FhirResponse:
        if who.kind == PATIENT:
            raise Forbidden("$match searches the whole population; a citizen's token cannot use it")
        require(who, "Patient", "s")
        audit.action = "operation"
        body = await read_json_body(request, settings.max_body_bytes)
        base = base_url(request, settings.base_url)
        return FhirResponse(await run_in_threadpool(_match, body, base, audit))

    def _match(body: Any, base: str, audit: Interaction) -> dict[str, Any]:
        match_request = parse_match_parameters(body)
        model = mpi.model()
        with mpi.engine.connect() as conn:
            found = match_persons(conn, model, match_request)
        entries = []
        for match in found:
            try:
                golden = mpi.store.read("Patient", match.person_id)
            except (NotFound, Gone):
                continue  # a person whose golden Patient is being rebuilt
            audit.touched("Patient", golden.id, golden.version, golden.content)
            entries.append({
                "fullUrl": f"{base}/Patient/{golden.id}",
                "resource": golden.content,
                "search": {
                    "extension": [{"url": MATCH_GRADE, "valueCode": match.score.grade}],
                    "mode": "match",
                    "score": round(match.score.probability, 6),
                },
            })
        bundle: dict[str, Any] = {"resourceType": "Bundle", "id": str(uuid.uuid4()), "type": "searchset", "total": len(entries)}
        if entries:
            bundle["entry"] = entries
        return bundle

    return router
