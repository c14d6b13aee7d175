"""What a stored Patient claims about the person, as the registry port takes it."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from vaxhub.adapters.ports import PersonClaim
from vaxhub.fhir.normalise import BHXH_SYSTEM, CCCD_SYSTEM, CMND_SYSTEM, compact
from vaxhub.fhir.normalise.names import patient_full_name


def _identifier(patient: dict[str, Any], system: str) -> str | None:
    # A current identifier wins over one marked "old" (a CMND kept beside the CCCD).
    found = [i for i in patient.get("identifier") or [] if isinstance(i, dict) and i.get("system") == system and i.get("value")]
    found.sort(key=lambda i: i.get("use") == "old")
    return compact(found[0]["value"]) if found else None


def person_claim(patient: dict[str, Any]) -> PersonClaim:
    """The claim a Patient makes: identity card numbers, name, birth date (possibly
    year-only, kept at the precision given) and administrative gender."""
    return PersonClaim(
        full_name=patient_full_name(patient),
        birth_date=str(patient.get("birthDate") or ""),
        sex=str(patient.get("gender") or "unknown"),
        cccd=_identifier(patient, CCCD_SYSTEM),
        cmnd=_identifier(patient, CMND_SYSTEM),
        bhxh=_identifier(patient, BHXH_SYSTEM),
    )


def claim_document(claim: PersonClaim) -> dict[str, Any]:
    return asdict(claim)


def claim_from_document(document: dict[str, Any]) -> PersonClaim:
    return PersonClaim(**document)


def patient_site(patient: dict[str, Any]) -> tuple[str | None, str | None]:
    """(reference, name) of the organisation that manages the Patient record."""
    managing = patient.get("managingOrganization")
    if not isinstance(managing, dict):
        return None, None
    return managing.get("reference"), managing.get("display")
