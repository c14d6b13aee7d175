"""The FHIR R4 resource types the hub stores, and their validation.

fhir.resources' R4B models match R4 for these resources (R5 is the package
default, so the R4B module is named explicitly). The models check structure
and datatypes; a few required bindings that the models leave open are checked
here, because a record with `gender: "x"` is as unusable as one with no patient.
A quick check derived from the same models (`vaxhub.fhir.quick_check`) vouches
for the common, plainly valid resource first; the models see the rest and
word every error.
"""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from fhir.resources.R4B.adverseevent import AdverseEvent
from fhir.resources.R4B.group import Group
from fhir.resources.R4B.immunization import Immunization
from fhir.resources.R4B.location import Location
from fhir.resources.R4B.organization import Organization
from fhir.resources.R4B.patient import Patient
from fhir.resources.R4B.practitioner import Practitioner
from fhir.resources.R4B.task import Task

from vaxhub.errors import InvalidResource, Issue, MalformedInput
from vaxhub.fhir.quick_check import quick_accepts

FHIR_VERSION = "4.0.1"

MODELS = {
    "Patient": Patient,
    "Immunization": Immunization,
    "Organization": Organization,
    "Location": Location,
    "Practitioner": Practitioner,
    "AdverseEvent": AdverseEvent,  # reactions reported after a dose (health-book app)
    "Group": Group,  # cohorts of Patients (a site's or province's), exported with Group/{id}/$export
    "Task": Task,  # citizens' correction requests (vaxhub.hub.healthbook.corrections)
}
SUPPORTED_TYPES = tuple(MODELS)

# Required bindings (FHIR R4 value sets) that the models accept as free codes.
_REQUIRED_CODES: dict[tuple[str, str], frozenset[str]] = {
    ("Patient", "gender"): frozenset({"male", "female", "other", "unknown"}),
    ("Practitioner", "gender"): frozenset({"male", "female", "other", "unknown"}),
    ("Immunization", "status"): frozenset({"completed", "entered-in-error", "not-done"}),
    ("Location", "status"): frozenset({"active", "suspended", "inactive"}),
    ("Location", "mode"): frozenset({"instance", "kind"}),
    ("AdverseEvent", "actuality"): frozenset({"actual", "potential"}),
    ("Group", "type"): frozenset({"person", "animal", "practitioner", "device", "medication", "substance"}),
    ("Task", "status"): frozenset({
        "draft", "requested", "received", "accepted", "rejected", "ready", "cancelled",
        "in-progress", "on-hold", "failed", "completed", "entered-in-error",
    }),
    ("Task", "intent"): frozenset({
        "unknown", "proposal", "plan", "order", "original-order", "reflex-order", "filler-order", "instance-order", "option",
    }),
}


def _location(prefix: str, loc: tuple[Any, ...]) -> str:
    path = prefix
    for part in loc:
        path += f"[{part}]" if isinstance(part, int) else f".{part}"
    return path


def check_resource_type(data: Any, *, expected_type: str | None = None, path: str | None = None) -> str:
    """The cheap part of `validate_resource`: `data` is an object of the expected
    resourceType. Returns the type; raises MalformedInput otherwise."""
    if not isinstance(data, dict):
        raise MalformedInput("A FHIR resource must be a JSON object")
    rtype = data.get("resourceType")
    where = path or (rtype if isinstance(rtype, str) else "resource")
    if not isinstance(rtype, str):
        raise MalformedInput(
            "The resource has no resourceType",
            [Issue("The resource has no resourceType", where, "structure")],
        )
    if expected_type is not None and rtype != expected_type:
        raise MalformedInput(
            f"resourceType {rtype!r} does not match the endpoint's type {expected_type!r}",
            [Issue(f"Expected a {expected_type}, got {rtype}", f"{where}.resourceType", "structure")],
        )
    return rtype


def validate_resource(data: Any, *, expected_type: str | None = None, path: str | None = None) -> str:
    """Check that `data` is a valid resource of a supported type; return its type.

    Raises MalformedInput when it is not a FHIR resource object at all and
    InvalidResource (with one Issue per problem, located by `expression`)
    when it is one but breaks the specification.
    """
    rtype = check_resource_type(data, expected_type=expected_type, path=path)
    where = path or rtype
    model = MODELS.get(rtype)
    if model is None:
        raise InvalidResource(
            f"Resource type {rtype!r} is not supported here",
            [Issue(f"Resource type {rtype!r} is not supported here", f"{where}.resourceType", "not-supported")],
        )
    issues: list[Issue] = []
    try:
        if not quick_accepts(model, data):  # the models' own check, where the quick one cannot vouch
            model.model_validate(data)
    except ValidationError as exc:
        for err in exc.errors():
            issues.append(Issue(str(err.get("msg", "invalid")), _location(where, tuple(err.get("loc", ()))), "invalid"))
    except (ValueError, TypeError) as exc:  # the models raise these for some malformed primitives
        issues.append(Issue(str(exc), where, "invalid"))
    for (type_name, field), allowed in _REQUIRED_CODES.items():
        if type_name == rtype and field in data and data[field] not in allowed:
            issues.append(
                Issue(
                    f"{field} must be one of {', '.join(sorted(allowed))}, not {data[field]!r}",
                    f"{where}.{field}",
                    "code-invalid",
                )
            )
    if issues:
        raise InvalidResource(f"{rtype} is not valid: {issues[0].message}", issues)
    return rtype
