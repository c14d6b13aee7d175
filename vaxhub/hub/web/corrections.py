"""A citizen's request to correct their record, as a FHIR R4 Task.

The request is a Task (hl7.org/fhir/R4/task.html) with code `change`
("Change the focal resource"), `focus` the Patient or Immunization to
correct, `for` and `requester` the Patient, `owner` the organisation that
manages the record, and the person's own words as `description`. It is
stored through the FHIR store in its own transaction with an AuditEvent
naming the citizen, and waits for the site (or an operator) to act on it;
the dashboard counts the open ones. The citizen's token itself never writes:
the portal writes on the person's behalf, only about records in their
compartment.
"""

from __future__ import annotations

from typing import Any

from fhir.resources.R4B.task import Task
from pydantic import ValidationError

from vaxhub.errors import Gone, InvalidResource, Issue, NotFound
from vaxhub.hub.audit.trail import Interaction
from vaxhub.hub.security.policy import visible
from vaxhub.hub.security.principal import Principal
from vaxhub.hub.storage.store import FhirStore, Stored, format_instant, utcnow

TASK_CODE_SYSTEM = "http://hl7.org/fhir/CodeSystem/task-code"
MAX_DESCRIPTION = 2000


def _focus(store: FhirStore, who: Principal, focus: str) -> Stored:
    rtype, _, rid = focus.partition("/")
    if rtype not in ("Patient", "Immunization") or not rid:
        raise InvalidResource("Choose what is wrong: your personal details or one of your doses", [Issue("unknown focus", "focus")])
    try:
        stored = store.read(rtype, rid)
    except (NotFound, Gone):  # all the same to the citizen
        raise NotFound("That record is not known") from None
    if not visible(who, rtype, rid, stored.content):
        raise NotFound("That record is not known")
    return stored


def correction_task(patient: Stored, focus: Stored, description: str) -> dict[str, Any]:
    task: dict[str, Any] = {
        "resourceType": "Task",
        "status": "requested",
        "intent": "proposal",
        "code": {"coding": [{"system": TASK_CODE_SYSTEM, "code": "change", "display": "Change the focal resource"}]},
        "description": description,
        "focus": {"reference": f"{focus.rtype}/{focus.id}"},
        "for": {"reference": f"Patient/{patient.id}"},
        "requester": {"reference": f"Patient/{patient.id}"},
        "authoredOn": format_instant(utcnow()),
    }
    manager = (patient.content or {}).get("managingOrganization")
    if isinstance(manager, dict) and isinstance(manager.get("reference"), str):
        task["owner"] = {"reference": manager["reference"]}
    try:
        Task.model_validate(task)
    except ValidationError as exc:  # a defect here, not the citizen's: say so plainly
        raise InvalidResource(f"The correction request is not a valid Task: {exc.errors()[0]['msg']}") from None
    return task


def file_correction(store: FhirStore, who: Principal, patient: Stored, focus: str, description: object, audit: Interaction) -> str:
    """Store the request; returns the Task id. The audit event is written with it."""
    text = description.strip() if isinstance(description, str) else ""
    if not text or len(text) > MAX_DESCRIPTION:
        raise InvalidResource(
            f"Describe what is wrong in 1 to {MAX_DESCRIPTION} characters", [Issue("description required", "description", "required")]
        )
    target = _focus(store, who, focus if isinstance(focus, str) else "")
    task = correction_task(patient, target, text)
    audit.action = "create"
    audit.touched(target.rtype, target.id, target.version, target.content)
    result = store.run_unit(lambda w: w.create(task), context=audit)
    return result.stored.id
