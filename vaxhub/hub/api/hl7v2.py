"""HL7 v2 over HTTP: `POST /hl7v2` takes one ER7 message and answers its ACK.

The answer is always 200 with an ACK (AA, AE or AR): over HTTP as over MLLP the
ACK is the outcome, so a sender's HL7 engine needs no HTTP-specific handling.
"""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from vaxhub.fhir.hl7v2 import Hl7Finding, ack_for
from vaxhub.fhir.hl7v2.er7 import DATA_TYPE_ERROR
from vaxhub.hub.api.access import interaction, principal
from vaxhub.hub.api.fhir_http import base_url
from vaxhub.hub.audit.trail import Interaction
from vaxhub.hub.security.policy import SiteWriteGuard, require
from vaxhub.hub.security.principal import Principal
from vaxhub.hub.ingest.vxu import VxuReceiver
from vaxhub.hub.ingest.vxu_groups import VxuGroups
from vaxhub.hub.storage.store import FhirStore
from vaxhub.settings import Settings

ER7_MEDIA_TYPE = "x-application/hl7-v2+er7"
MAX_MESSAGE_BYTES = 1_000_000


def _ack_response(ack: str) -> Response:
    return Response(ack.encode("utf-8"), media_type=f"{ER7_MEDIA_TYPE}; charset=utf-8")


def build_router(store: FhirStore, settings: Settings) -> APIRouter:
    router = APIRouter(tags=["HL7 v2"])
    groups = VxuGroups(store)  # messages that queue in this process are stored in one transaction

    @router.post(
        "/hl7v2",
        summary="Receive a VXU^V04 (ER7 text); answers ACK^V04 AA, AE or AR",
        response_class=Response,
        responses={200: {"content": {ER7_MEDIA_TYPE: {}}, "description": "ACK^V04"}},
    )
    async def receive_vxu(request: Request, who: Principal = Depends(principal), audit: Interaction = Depends(interaction)) -> Response:
        require(who, "Patient", "c")
        require(who, "Immunization", "c")
        audit.action = "transaction"
        body = bytearray()
        async for chunk in request.stream():
            body += chunk
            if len(body) > MAX_MESSAGE_BYTES:
                return _ack_response(ack_for("AR", {}, [Hl7Finding(DATA_TYPE_ERROR, f"The message is larger than {MAX_MESSAGE_BYTES} bytes")]))
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError:
            return _ack_response(ack_for("AR", {}, [Hl7Finding(DATA_TYPE_ERROR, "The message is not UTF-8 text")]))
        receiver = VxuReceiver(
            store, base=base_url(request, settings.base_url), max_entries=settings.max_bundle_entries, guard=SiteWriteGuard(who), interaction=audit,
            groups=groups,
        )
        outcome = await run_in_threadpool(receiver.receive, text)
        return _ack_response(outcome.ack)

    return router
