"""`GET /fhir/AuditEvent`: the audit trail, searchable by operators.

Search parameters (hl7.org/fhir/R4/auditevent.html#search): `patient`,
`agent` (a client id), `date` (with prefixes ge/gt/le/lt), `subtype`
(create, read, search, …), `_count`, `_offset`. Reading the trail is itself an
audited interaction.
"""

from __future__ import annotations

from urllib.parse import parse_qsl, urlencode

from fastapi import APIRouter, Depends, Request

from vaxhub.errors import Forbidden, Issue, UnsupportedRequest
from vaxhub.fhir.search_params import date_range, parse_reference
from vaxhub.hub.api.access import interaction, principal
from vaxhub.hub.api.fhir_http import FhirResponse, base_url
from vaxhub.hub.audit.trail import AuditTrail, Interaction
from vaxhub.hub.security.principal import OPERATOR, SYSTEM, Principal
from vaxhub.settings import Settings

AUDITOR_ROLE = "auditor"


def may_read_audit(who: Principal) -> bool:
    if who.kind == OPERATOR and AUDITOR_ROLE in who.roles:
        return True
    return who.kind in (SYSTEM, OPERATOR) and who.may("AuditEvent", "s")


def build_router(trail: AuditTrail, settings: Settings) -> APIRouter:
    router = APIRouter(prefix="/fhir", tags=["Audit"])

    @router.get("/AuditEvent", summary="Search the audit trail (operators with the auditor role)", response_class=FhirResponse)
    def search_audit(request: Request, who: Principal = Depends(principal), audit: Interaction = Depends(interaction)) -> FhirResponse:
        if not may_read_audit(who):
            raise Forbidden("Reading the audit trail needs the auditor role or system/AuditEvent.rs")
        audit.action = "search"
        items = parse_qsl(request.url.query, keep_blank_values=True)
        kwargs: dict = {"count": 50, "offset": 0}
        for key, value in items:
            if key == "patient":
                ref = parse_reference(value)
                kwargs["patient"] = ref[1] if ref else value
            elif key == "agent":
                kwargs["client"] = value
            elif key == "subtype":  # a REST interaction code, or DICOM 110122 (Login) for security events
                code = value.rpartition("|")[2]
                kwargs["action"] = "login" if code == "110122" else code
            elif key == "date":
                prefix, text = (value[:2], value[2:]) if value[:2] in ("ge", "gt", "le", "lt") else ("eq", value)
                try:
                    start, end = date_range(text)
                except ValueError:
                    raise UnsupportedRequest(f"date {value!r} is not a date", [Issue("Bad date", "date")]) from None
                if prefix in ("ge", "eq"):
                    kwargs["since"] = start
                if prefix == "gt":
                    kwargs["since"] = end
                if prefix in ("le", "eq"):
                    kwargs["until"] = end
                if prefix == "lt":
                    kwargs["until"] = start
            elif key in ("_count", "_offset"):
                if not value.isdigit():
                    raise UnsupportedRequest(f"{key} must be a whole number", [Issue(f"Bad {key}", key)])
                kwargs["count" if key == "_count" else "offset"] = min(int(value), settings.max_page_size) if key == "_count" else int(value)
            else:
                raise UnsupportedRequest(f"Unknown AuditEvent search parameter {key!r}", [Issue("Unknown parameter", key, "not-supported")])
        events, more = trail.search(**kwargs)
        base = base_url(request, settings.base_url)
        keep = [(k, v) for k, v in items if k not in ("_count", "_offset")]
        links = [{"relation": "self", "url": f"{base}/AuditEvent?{urlencode(keep + [('_count', kwargs['count']), ('_offset', kwargs['offset'])])}"}]
        if more:
            links.append({"relation": "next", "url": f"{base}/AuditEvent?{urlencode(keep + [('_count', kwargs['count']), ('_offset', kwargs['offset'] + kwargs['count'])])}"})
        bundle = {"resourceType": "Bundle", "type": "searchset", "link": links}
        if events:
            bundle["entry"] = [{"fullUrl": f"{base}/AuditEvent/{e['id']}", "resource": e, "search": {"mode": "match"}} for e in events]
        return FhirResponse(bundle)

    return router
