"""From a person's Immunization resources to what a certificate states.

Only `completed` COVID-19 doses count, in date order (local dates, UTC+7).
The vaccine comes from `vaccineCode` (our code, then CVX, then any code or
spelling the vaccine table knows); doses of vaccines it does not know are not
COVID-19 doses and are left out. The same vaccine recorded twice on the same
day (two sites reporting one dose, seen once records are linked) counts once.

Dose numbers and series (EU DCC `dn`/`sd`, eHN guidelines on vaccination
certificates): `dn` counts every dose so far; `sd` is the primary series
length of the vaccine the series began with (Janssen 1, Abdala 3, others 2)
until it is complete, after which a booster is written `dn/dn` (3/3, or 2/2
after Janssen). The colour is yellow until the series is complete, then green.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from vaxhub.certificates.status import CertificateColour, certificate_colour
from vaxhub.errors import InvalidResource, Issue
from vaxhub.fhir.search_params import date_range
from vaxhub.fhir.vaccines import CVX_SYSTEM, VACCINE_SYSTEM, Vaccine, by_cvx, lookup

LOCAL_OFFSET = dt.timedelta(hours=7)


@dataclass(frozen=True)
class Dose:
    number: int
    patient_id: str
    immunization_id: str
    vaccine: Vaccine
    date: dt.date
    lot: str | None
    place: str | None


@dataclass(frozen=True)
class VaccinationCourse:
    doses: tuple[Dose, ...]
    series_length: int

    @property
    def latest(self) -> Dose:
        return self.doses[-1]

    @property
    def dose_number(self) -> int:
        return len(self.doses)

    @property
    def total_doses(self) -> int:
        return max(self.series_length, self.dose_number)

    @property
    def colour(self) -> CertificateColour:
        return certificate_colour(self.dose_number, self.series_length)

    @property
    def complete(self) -> bool:
        return self.colour is CertificateColour.GREEN


class NothingToCertify(InvalidResource):
    """The person has no completed COVID-19 dose on record."""

    def __init__(self, patient_id: str):
        message = f"Patient/{patient_id} has no completed COVID-19 vaccination on record to certify"
        super().__init__(message, [Issue(message, "Patient", "business-rule")])


def vaccine_of(immunization: dict[str, Any]) -> Vaccine | None:
    """The COVID-19 vaccine an Immunization names, or None."""
    concept = immunization.get("vaccineCode") or {}
    codings = [c for c in concept.get("coding") or [] if isinstance(c, dict) and isinstance(c.get("code"), str)]
    ordered = (
        [c for c in codings if c.get("system") == VACCINE_SYSTEM]
        + [c for c in codings if c.get("system") == CVX_SYSTEM]
        + [c for c in codings if c.get("system") not in (VACCINE_SYSTEM, CVX_SYSTEM)]
    )
    for coding in ordered:
        try:
            return by_cvx(coding["code"]) if coding.get("system") == CVX_SYSTEM else lookup(coding["code"])
        except InvalidResource:
            continue
    text = concept.get("text")
    if isinstance(text, str):
        try:
            return lookup(text)
        except InvalidResource:
            return None
    return None


def local_date(value: str) -> dt.date | None:
    """The local (UTC+7) day of a FHIR dateTime; None for a date vaguer than a day."""
    try:
        start, end = date_range(value)
    except ValueError:
        return None
    if end - start > dt.timedelta(days=1):
        return None
    return (start + LOCAL_OFFSET).date()


def _place(immunization: dict[str, Any], name_of: Callable[[str], str | None]) -> str | None:
    candidates = [immunization.get("location")]
    candidates += [(p or {}).get("actor") for p in immunization.get("performer") or [] if isinstance(p, dict)]
    for ref in candidates:
        if not isinstance(ref, dict):
            continue
        if isinstance(ref.get("display"), str):
            return ref["display"]
        if isinstance(ref.get("reference"), str):
            name = name_of(ref["reference"])
            if name:
                return name
    return None


def vaccination_course(
    patient_id: str,
    immunizations: Iterable[tuple[str, str, dict[str, Any]]],
    *,
    name_of: Callable[[str], str | None] = lambda _ref: None,
) -> VaccinationCourse:
    """The course of `(patient id, Immunization id, resource)` records.
    Raises NothingToCertify when no completed COVID-19 dose is among them."""
    found: list[tuple[dt.date, str, str, Vaccine, dict[str, Any]]] = []
    for owner, imm_id, resource in immunizations:
        if resource.get("status") != "completed":
            continue
        vaccine = vaccine_of(resource)
        when = local_date(resource["occurrenceDateTime"]) if isinstance(resource.get("occurrenceDateTime"), str) else None
        if vaccine is None or when is None:
            continue
        found.append((when, owner, imm_id, vaccine, resource))
    found.sort(key=lambda item: (item[0], item[1] != patient_id, item[2]))
    doses: list[Dose] = []
    seen: set[tuple[dt.date, str]] = set()
    for when, owner, imm_id, vaccine, resource in found:
        if (when, vaccine.code) in seen:
            continue
        seen.add((when, vaccine.code))
        lot = resource.get("lotNumber") if isinstance(resource.get("lotNumber"), str) else None
        doses.append(Dose(len(doses) + 1, owner, imm_id, vaccine, when, lot, _place(resource, name_of)))
    if not doses:
        raise NothingToCertify(patient_id)
    return VaccinationCourse(tuple(doses), doses[0].vaccine.primary_doses)
