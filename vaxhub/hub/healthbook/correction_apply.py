"""What accepting a correction does to the record: the claimed values written
into a copy of the Patient or Immunization, or the missing dose as a new
Immunization. Pure functions over FHIR JSON; the queue stores the result."""

from __future__ import annotations

import copy
from typing import Any

from vaxhub.fhir.resources import validate_resource
from vaxhub.hub.healthbook.corrections import EVIDENCE, MISSING_DOSE, Claim, missing_dose_of
from vaxhub.hub.security.policy import OWNER_PREFIX

RECORD_ORIGIN_SYSTEM = "http://terminology.hl7.org/CodeSystem/immunization-origin"


def corrected(record: dict[str, Any], claims: list[Claim]) -> dict[str, Any]:
    """`record` with every claimed field set; validated, so nothing invalid reaches the store."""
    content = copy.deepcopy(record)
    for claim in claims:
        if claim.field in (EVIDENCE, MISSING_DOSE):
            continue
        _set(content, claim.field, claim.value)
    validate_resource(content, expected_type=record["resourceType"])
    return content


def recorded_value(record: dict[str, Any] | None, field: str) -> Any:
    """What the record holds for `field` now (shown beside the claim in the queue)."""
    if record is None:
        return None
    if field in ("name.family", "name.given"):
        name = _official_name(record, create=False)
        if name is None:
            return None
        return name.get("family") if field == "name.family" else " ".join(g for g in name.get("given") or [] if isinstance(g, str)) or None
    if field in (EVIDENCE, MISSING_DOSE):
        return None
    return record.get(field)


def missing_dose(task: dict[str, Any], claim: Claim, *, site_code: str | None, task_id: str) -> dict[str, Any]:
    """The new Immunization for a `missing-dose` claim: reported, not given here,
    stamped with the accepting site when a site accepted it."""
    dose = {k: v for k, v in missing_dose_of(task, claim).items() if k not in ("id", "meta")}
    dose["primarySource"] = False
    dose["reportOrigin"] = {
        "coding": [{"system": RECORD_ORIGIN_SYSTEM, "code": "record", "display": "Written Record"}],
        "text": f"citizen correction Task/{task_id}",
    }
    if site_code:
        dose["meta"] = {"source": f"{OWNER_PREFIX}{site_code}"}
    validate_resource(dose, expected_type="Immunization", path="Task.contained")
    return dose


def same_content(a: dict[str, Any], b: dict[str, Any]) -> bool:
    strip = lambda r: {k: v for k, v in r.items() if k != "meta"}  # noqa: E731
    return strip(a) == strip(b)


def _set(content: dict[str, Any], field: str, value: Any) -> None:
    if field == "name.family" or field == "name.given":
        name = _official_name(content, create=True)
        if field == "name.family":
            name["family"] = value
        else:
            name["given"] = value.split()
        if "text" in name:  # keep the display form in step with its parts
            name["text"] = " ".join([name.get("family") or "", *(name.get("given") or [])]).strip()
        return
    if field == "occurrenceDateTime":
        content.pop("occurrenceString", None)  # occurrence[x] holds one value
    content[field] = value


def _official_name(content: dict[str, Any], *, create: bool) -> dict[str, Any] | None:
    names = [n for n in content.get("name") or [] if isinstance(n, dict)]
    name = next((n for n in names if n.get("use") == "official"), names[0] if names else None)
    if name is None and create:
        name = {"use": "official"}
        content["name"] = [name, *(content.get("name") or [])]
    return name
