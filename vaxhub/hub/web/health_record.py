"""What the citizen portal shows a signed-in person: their doses, the colour
of their certificate, the certificates issued, and whether their identity
has been checked.

Reads go through the same policy as the FHIR API
(`vaxhub.hub.security.policy`): the caller must hold patient read scopes,
and only records in their person's compartment are shown. Every record read
is noted on the request's audit Interaction, which the caller records.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from vaxhub.errors import Gone, NotFound
from vaxhub.hub.audit.trail import Interaction
from vaxhub.hub.certificates.doses import NothingToCertify, vaccination_course
from vaxhub.hub.certificates.downloads import StoredCertificate
from vaxhub.hub.certificates.identity_check import IdentityStatus, identity_status
from vaxhub.hub.certificates.service import CertificateService
from vaxhub.hub.security.policy import citizen_compartment, require, visible
from vaxhub.hub.security.principal import DIRECTORY_TYPES, PATIENT, Principal
from vaxhub.hub.storage.store import FhirStore, Stored


@dataclass(frozen=True)
class DoseLine:
    number: int
    immunization_id: str
    date: dt.date
    vaccine: str
    lot: str | None
    place: str | None


@dataclass
class HealthRecord:
    patient_id: str
    full_name: str
    birth_date: str
    doses: list[DoseLine]
    series_length: int
    colour: str  # none | yellow | green
    identity: IdentityStatus
    certificates: list[StoredCertificate] = field(default_factory=list)

    @property
    def latest_certificate(self) -> StoredCertificate | None:
        return next((c for c in self.certificates if not c.revoked), None)


def _full_name(patient: dict[str, Any]) -> str:
    names = [n for n in patient.get("name") or [] if isinstance(n, dict)]
    name = next((n for n in names if n.get("use") == "official"), names[0] if names else {})
    if isinstance(name.get("text"), str):
        return name["text"]
    parts = [name.get("family"), *(name.get("given") or [])]
    return " ".join(p for p in parts if isinstance(p, str))


def _directory_name(store: FhirStore, reference: str) -> str | None:
    rtype, _, rid = reference.partition("/")
    if rtype not in DIRECTORY_TYPES or not rid:
        return None
    try:
        name = (store.read(rtype, rid).content or {}).get("name")
    except (NotFound, Gone):
        return None
    return name if isinstance(name, str) else None


def own_patient(store: FhirStore, who: Principal) -> Stored:
    """The Patient a citizen's session is bound to (404 if it is gone or not theirs)."""
    if who.kind != PATIENT or not who.patient_id:
        raise NotFound("The record is not known")
    require(who, "Patient", "r")
    try:
        patient = store.read("Patient", who.patient_id)
    except Gone:
        raise NotFound("The record is not known") from None
    if not visible(who, "Patient", patient.id, patient.content):
        raise NotFound("The record is not known")
    return patient


def read_health_record(store: FhirStore, certificates: CertificateService, who: Principal, audit: Interaction) -> HealthRecord:
    patient = own_patient(store, who)
    require(who, "Immunization", "s")
    audit.touched("Patient", patient.id, patient.version, patient.content)
    records: list[tuple[str, str, dict[str, Any]]] = []
    for compartment in sorted(citizen_compartment(who)):
        for stored in store.compartment(compartment, ("Immunization",)):
            if visible(who, stored.rtype, stored.id, stored.content):
                audit.touched(stored.rtype, stored.id, stored.version, stored.content)
                records.append((compartment, stored.id, stored.content or {}))
    try:
        course = vaccination_course(patient.id, records, name_of=lambda ref: _directory_name(store, ref))
        doses = [DoseLine(d.number, d.immunization_id, d.date, d.vaccine.display, d.lot, d.place) for d in course.doses]
        series, colour = course.series_length, course.colour.value
    except NothingToCertify:
        doses, series, colour = [], 0, "none"
    with store.engine.connect() as conn:
        identity = identity_status(conn, patient.id)
    content = patient.content or {}
    return HealthRecord(
        patient_id=patient.id,
        full_name=_full_name(content),
        birth_date=content.get("birthDate") or "",
        doses=doses,
        series_length=series,
        colour=colour,
        identity=identity,
        certificates=certificates.for_patient(patient.id),
    )
