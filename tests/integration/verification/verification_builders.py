"""Patients as vaccination sites send them, for the verification queue tests."""

from __future__ import annotations

from typing import Any

from vaxhub.adapters.registry_data import SAMPLE_CITIZENS, Citizen
from vaxhub.fhir.normalise import BHXH_SYSTEM, CCCD_SYSTEM, CMND_SYSTEM
from vaxhub.hub.storage.store import FhirStore

AN, HOA, HUONG, DUC = SAMPLE_CITIZENS
SITE = "Organization/site-hanoi"
OTHER_SITE = "Organization/site-hcm"


def patient_of(citizen: Citizen, *, site: str = SITE, use_cmnd_only: bool = False, **changes: Any) -> dict[str, Any]:
    """The Patient a vaccination site records for `citizen`; `changes` override fields."""
    family, *rest = citizen.full_name.split(" ")
    identifiers = []
    if not use_cmnd_only:
        identifiers.append({"system": CCCD_SYSTEM, "value": citizen.cccd})
    if citizen.cmnd:
        identifiers.append({"system": CMND_SYSTEM, "value": citizen.cmnd, "use": "old" if not use_cmnd_only else "official"})
    if citizen.bhxh:
        identifiers.append({"system": BHXH_SYSTEM, "value": citizen.bhxh})
    patient = {
        "resourceType": "Patient",
        "identifier": identifiers,
        "name": [{"use": "official", "family": family, "given": rest}],
        "gender": citizen.sex,
        "birthDate": citizen.birth_date,
        "managingOrganization": {"reference": site, "display": site.rsplit("-", 1)[-1].upper()},
    }
    patient.update(changes)
    return patient


def store_patients(store: FhirStore, patients: list[dict[str, Any]], *, ids: list[str] | None = None) -> list[str]:
    """Write Patients (and the sites they name) in one unit; returns their ids."""
    with store.writer() as w:
        for site in {p["managingOrganization"]["reference"] for p in patients if p.get("managingOrganization")}:
            w.update("Organization", site.split("/")[1], {"resourceType": "Organization", "name": site})
        return [
            w.update("Patient", ids[i], p).stored.id if ids else w.create(p).stored.id
            for i, p in enumerate(patients)
        ]
