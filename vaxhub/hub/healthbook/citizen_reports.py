"""What a citizen may report from the health book: a reaction to one of their
own doses, or a correction request about their own records
(`vaxhub.hub.healthbook.corrections`).

A citizen's token writes nothing else (`policy.CITIZEN_CREATABLE`). The check
runs inside the write's unit of work, so the dose it looks at is the one the
reaction is stored against. Someone else's dose is answered exactly like a
dose that does not exist (404), so a token learns nothing about other people.
"""

from __future__ import annotations

from vaxhub.errors import Forbidden, Gone, InvalidResource, Issue, NotFound
from vaxhub.fhir.search_params import compartment_patient, parse_reference
from vaxhub.hub.healthbook.corrections import prepare_correction
from vaxhub.hub.security.policy import citizen_compartment
from vaxhub.hub.security.principal import PATIENT, Principal
from vaxhub.hub.storage.store import Writer

SERIOUSNESS_SYSTEM = "http://terminology.hl7.org/CodeSystem/adverse-event-seriousness"
SERIOUSNESS_CODES = ("serious", "non-serious")


def seriousness_of(resource: dict) -> str | None:
    for coding in (resource.get("seriousness") or {}).get("coding") or []:
        if isinstance(coding, dict) and coding.get("system") == SERIOUSNESS_SYSTEM and coding.get("code") in SERIOUSNESS_CODES:
            return coding["code"]
    return None


def check_citizen_create(writer: Writer, who: Principal, resource: dict) -> None:
    """Refuse a citizen's create unless it is a reaction they had to a dose of theirs."""
    if who.kind != PATIENT:
        return
    rtype = resource.get("resourceType")
    if rtype == "Task":
        # The body handed here is the one the create stores: replace it with the
        # checked and routed request (owner, requester, authoredOn are the hub's).
        filed = prepare_correction(writer, who, resource)
        resource.clear()
        resource.update(filed)
        return
    if rtype != "AdverseEvent":
        raise Forbidden(f"A citizen's token cannot create {rtype} resources")
    mine = citizen_compartment(who)
    if compartment_patient(rtype, "", resource) not in mine:
        raise Forbidden("A citizen may report reactions they had themselves only (AdverseEvent.subject)")
    problems: list[Issue] = []
    if resource.get("actuality") != "actual":
        problems.append(Issue("A reported reaction is actual: actuality must be 'actual'", "AdverseEvent.actuality", "required"))
    if seriousness_of(resource) is None:
        problems.append(Issue(f"seriousness must be coded in {SERIOUSNESS_SYSTEM} (serious or non-serious)", "AdverseEvent.seriousness", "required"))
    if not resource.get("date"):
        problems.append(Issue("date (when the reaction began) is required", "AdverseEvent.date", "required"))
    doses = _suspected_doses(resource)
    if not doses:
        problems.append(Issue("suspectEntity.instance must name the dose (Immunization/<id>)", "AdverseEvent.suspectEntity", "required"))
    if problems:
        raise InvalidResource(f"The reaction cannot be recorded: {problems[0].message}", problems)
    for index, dose_id in doses:
        try:
            dose = writer.read("Immunization", dose_id)
        except (NotFound, Gone):
            dose = None
        if dose is None or dose.content is None or compartment_patient("Immunization", dose_id, dose.content) not in mine:
            raise NotFound(f"Immunization/{dose_id} is not known", [Issue("Unknown dose", f"AdverseEvent.suspectEntity[{index}].instance", "not-found")])


def _suspected_doses(resource: dict) -> list[tuple[int, str]]:
    doses: list[tuple[int, str]] = []
    for index, entity in enumerate(resource.get("suspectEntity") or []):
        reference = ((entity or {}).get("instance") or {}).get("reference")
        parsed = parse_reference(reference) if isinstance(reference, str) else None
        if parsed is None or parsed[0] != "Immunization":
            return []  # a citizen reports reactions to doses, nothing else
        doses.append((index, parsed[1]))
    return doses
