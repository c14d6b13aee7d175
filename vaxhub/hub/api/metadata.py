"""The CapabilityStatement (hl7.org/fhir/R4/capabilitystatement.html).

Built from the same tables the server runs on (supported types, search
parameters), so it cannot claim what the server does not do.
"""

from __future__ import annotations

from fastapi import APIRouter, Request

from vaxhub import __version__
from vaxhub.fhir.resources import FHIR_VERSION, SUPPORTED_TYPES
from vaxhub.fhir.search_params import PATIENT_COMPARTMENT, SEARCH_PARAMS
from vaxhub.hub.api.fhir_http import FhirResponse, base_url
from vaxhub.settings import Settings

# FHIR Bulk Data Access IG 2.0.0: `$export` at system, Patient and Group level (vaxhub.hub.api.bulk_export).
BULK_DATA = "http://hl7.org/fhir/uv/bulkdata"
_INTERACTIONS = ["read", "vread", "update", "delete", "history-instance", "history-type", "create", "search-type"]
# Correction requests are created by citizens and changed only through the
# sites' queue (/ops/corrections), never by a FHIR update or delete.
_QUEUE_MANAGED_INTERACTIONS = {"Task": ["read", "vread", "history-instance", "history-type", "create", "search-type"]}


def _includes(rtype: str) -> list[str]:
    return [f"{rtype}:{name}" for name, p in SEARCH_PARAMS[rtype].items() if p.type == "reference"]


def _revincludes(rtype: str) -> list[str]:
    return [
        f"{source}:{name}"
        for source, params in SEARCH_PARAMS.items()
        for name, p in params.items()
        if p.type == "reference" and rtype in p.targets
    ]


def capability_statement(base: str, released: str) -> dict:
    resources = []
    for rtype in SUPPORTED_TYPES:
        entry = {
            "type": rtype,
            "interaction": [{"code": code} for code in _QUEUE_MANAGED_INTERACTIONS.get(rtype, _INTERACTIONS)],
            "versioning": "versioned-update",
            "readHistory": True,
            "updateCreate": rtype not in _QUEUE_MANAGED_INTERACTIONS,
            "conditionalCreate": True,
            "conditionalRead": "not-supported",
            "conditionalUpdate": rtype not in _QUEUE_MANAGED_INTERACTIONS,
            "conditionalDelete": "not-supported",
            "referencePolicy": ["literal", "enforced", "local"],
            "searchInclude": _includes(rtype),
            "searchRevInclude": _revincludes(rtype),
            "searchParam": [
                {"name": "_id", "type": "token"},
                {"name": "_lastUpdated", "type": "date"},
                *[
                    {"name": name, "type": p.type, "documentation": p.description}
                    for name, p in SEARCH_PARAMS[rtype].items()
                ],
            ],
        }
        if rtype in _QUEUE_MANAGED_INTERACTIONS:
            entry["documentation"] = (
                "Citizens' correction requests (code change): a citizen's token creates them about its own records; "
                "sites accept or reject them at /ops/corrections."
            )
        if rtype == "Patient":
            entry["operation"] = [
                {"name": "everything", "definition": "http://hl7.org/fhir/OperationDefinition/Patient-everything"},
                {"name": "match", "definition": "http://hl7.org/fhir/OperationDefinition/Patient-match"},
                {"name": "export", "definition": f"{BULK_DATA}/OperationDefinition/patient-export"},
            ]
        if rtype == "Group":
            entry["operation"] = [{"name": "export", "definition": f"{BULK_DATA}/OperationDefinition/group-export"}]
        if not entry["searchInclude"]:
            del entry["searchInclude"]
        if not entry["searchRevInclude"]:
            del entry["searchRevInclude"]
        resources.append(entry)
    return {
        "resourceType": "CapabilityStatement",
        "status": "active",
        "date": released,
        "kind": "instance",
        "software": {"name": "vaxhub", "version": __version__},
        "implementation": {"description": "vaxhub FHIR R4 endpoint", "url": base},
        "instantiates": [f"{BULK_DATA}/CapabilityStatement/bulk-data"],
        "fhirVersion": FHIR_VERSION,
        "format": ["application/fhir+json", "json"],
        "rest": [
            {
                "mode": "server",
                "documentation": (
                    "Search: strings match by prefix, case- and accent-insensitively (:exact, :contains also); "
                    "dates take eq/ne/gt/lt/ge/le/sa/eb; paging by _count and _offset; _total=accurate for totals. "
                    f"Patient compartment: {', '.join(PATIENT_COMPARTMENT)}."
                ),
                "security": {
                    "cors": False,
                    "service": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/restful-security-service", "code": "SMART-on-FHIR"}]}],
                    "description": (
                        "Bearer tokens from /auth/token: SMART Backend Services (client_credentials with a private_key_jwt "
                        "assertion) for systems, a one-time code or a national e-ID token for citizens (patient/*.rs). "
                        "Every read and write is recorded as an AuditEvent."
                    ),
                    "extension": [
                        {
                            "url": "http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris",
                            "extension": [{"url": "token", "valueUri": base.rsplit("/fhir", 1)[0] + "/auth/token"}],
                        }
                    ],
                },
                "resource": resources,
                "interaction": [{"code": "transaction"}, {"code": "batch"}],
                "operation": [{"name": "export", "definition": f"{BULK_DATA}/OperationDefinition/export"}],
            }
        ],
    }


def build_router(settings: Settings, released: str) -> APIRouter:
    router = APIRouter(prefix="/fhir", tags=["FHIR R4"])

    @router.get("/metadata", summary="CapabilityStatement", response_class=FhirResponse)
    def metadata(request: Request) -> FhirResponse:
        return FhirResponse(capability_statement(base_url(request, settings.base_url), released))

    return router
