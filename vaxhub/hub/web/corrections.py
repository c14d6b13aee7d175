"""The portal's side of correction requests: filing one from the form, and
listing the person's requests with where each stands.

The request is the same FHIR Task the health-book app posts
(`vaxhub.hub.healthbook.corrections`), checked and routed by the same code,
stored through the FHIR store with the citizen's write guard in its own
transaction with an AuditEvent naming the citizen. The form offers the
description and, optionally, one corrected field with its value.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from vaxhub.errors import InvalidResource, Issue
from vaxhub.fhir.search_query import parse_search
from vaxhub.hub.audit.trail import Interaction
from vaxhub.hub.healthbook.corrections import MAX_DESCRIPTION, TASK_CODE_SYSTEM, claim_input, correction_request, prepare_correction
from vaxhub.hub.security.policy import SiteWriteGuard, compartment_filter, visible
from vaxhub.hub.security.principal import Principal
from vaxhub.hub.storage.store import FhirStore, Stored

# The fields the form offers, by the kind of record chosen, and the FHIR
# element each value goes in (as typed into a text or date field).
FORM_FIELDS = {"birthDate", "name.family", "name.given", "gender", "occurrenceDateTime", "lotNumber"}
MAX_LISTED = 50


@dataclass(frozen=True)
class FiledCorrection:
    """One request as the portal shows it."""

    id: str
    authored_on: str
    focus: str
    status: str
    description: str
    fields: list[str]
    outcome: str | None  # the site's reason or note


def file_correction(
    store: FhirStore, who: Principal, patient: Stored, focus: object, description: object, audit: Interaction,
    field: object = None, value: object = None,
) -> str:
    """Store the request; returns the Task id. The audit event is written with it."""
    text = description.strip() if isinstance(description, str) else ""
    if not text or len(text) > MAX_DESCRIPTION:
        raise InvalidResource(
            f"Describe what is wrong in 1 to {MAX_DESCRIPTION} characters", [Issue("description required", "description", "required")]
        )
    inputs = _form_input(field, value)
    task = correction_request(focus=focus if isinstance(focus, str) else "", patient_id=patient.id, description=text, inputs=inputs)
    audit.action = "create"
    result = store.run_unit(lambda w: w.create(prepare_correction(w, who, task)), guard=SiteWriteGuard(who), context=audit)
    return result.stored.id


def person_corrections(store: FhirStore, who: Principal, audit: Interaction) -> list[FiledCorrection]:
    """The person's correction requests, newest first, through the same compartment filter as the API."""
    query = parse_search("Task", [("code", f"{TASK_CODE_SYSTEM}|change"), ("_sort", "-authored-on"), ("_count", str(MAX_LISTED))])
    query.compartment = compartment_filter(who, "Task")
    query.visible = lambda s: visible(who, s.rtype, s.id, s.content)
    found = store.search(query).resources
    for task in found:
        audit.touched("Task", task.id, task.version, task.content)
    return [_shown(t) for t in found]


def _form_input(field: object, value: object) -> list[dict[str, Any]]:
    if field in (None, "") and value in (None, ""):
        return []
    typed = value.strip() if isinstance(value, str) else ""
    if field not in FORM_FIELDS or not typed:
        raise InvalidResource("Choose the field and type its correct value", [Issue("field and value go together", "value", "required")])
    return [claim_input(str(field), typed)]


def _shown(task: Stored) -> FiledCorrection:
    content = task.content or {}
    fields = [
        c.get("code") for entry in content.get("input") or [] for c in (entry.get("type") or {}).get("coding") or [] if isinstance(c, dict)
    ]
    return FiledCorrection(
        id=task.id,
        authored_on=str(content.get("authoredOn") or "")[:10],
        focus=(content.get("focus") or {}).get("reference") or "",
        status=str(content.get("status") or ""),
        description=str(content.get("description") or ""),
        fields=[f for f in fields if isinstance(f, str)],
        outcome=(content.get("statusReason") or {}).get("text") or (content.get("businessStatus") or {}).get("text"),
    )
