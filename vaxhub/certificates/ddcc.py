"""WHO Digital Documentation of COVID-19 Certificates — Vaccination Status
(DDCC:VS), the core data set of the WHO SMART Trust / DDCC implementation
guide (logical models `DDCCCoreDataSet` and `DDCCCoreDataSet.VS`).

Two representations of one vaccination event, both without the
QuestionnaireResponse the IG uses as an input form:

- :func:`core_data_set` — JSON with the logical model's element names
  (`name`, `birthDate`, `identifier`, `sex`, `certificate{issuer, hcid,
  version, period}`, `vaccination{vaccine, brand, manufacturer, maholder, lot,
  date, validFrom, dose, totalDoses, country, centre, practitioner, disease,
  nextDose}`);
- :func:`ddcc_bundle` — the same data as FHIR R4 resources (Patient,
  Immunization, Organization) in a `collection` Bundle, with the IG's
  extensions for brand, market authorisation holder, country and valid-from;
  validated with fhir.resources R4B.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from vaxhub.errors import InputError

DDCC_BASE = "http://smart.who.int/ddcc"
ICD11 = "http://id.who.int/icd11/mms"
ISO3166 = "urn:iso:std:iso:3166"
COVID19_ICD11 = {"system": ICD11, "code": "RA01"}
EXT_BRAND = f"{DDCC_BASE}/StructureDefinition/DDCCVaccineBrand"
EXT_MAH = f"{DDCC_BASE}/StructureDefinition/DDCCVaccineMarketAuthorization"
EXT_COUNTRY = f"{DDCC_BASE}/StructureDefinition/DDCCCountryOfEvent"
EXT_VALID_FROM = f"{DDCC_BASE}/StructureDefinition/DDCCVaccineValidFrom"


def _coding(value: dict[str, str] | None) -> dict[str, str] | None:
    if value is None:
        return None
    if "code" not in value:
        raise InputError("a coding needs a code")
    return {k: v for k, v in value.items() if k in ("system", "code", "display") and v}


def _iso(value: dt.date | str | None) -> str | None:
    if value is None:
        return None
    return value.isoformat() if isinstance(value, dt.date) else value


@dataclass(frozen=True)
class DdccVaccinationEvent:
    """Inputs of the DDCC:VS core data set. Codings are `{"system", "code",
    "display"}` dicts: vaccine (ICD-11, e.g. XM0GQ8), brand, manufacturer,
    market authorisation holder, country (ISO 3166)."""

    name: str
    birth_date: str | None
    identifier: str | None
    sex: str | None  # FHIR administrative-gender: male | female | other | unknown
    vaccine: dict[str, str]
    brand: dict[str, str]
    lot: str
    date: dt.date | str
    dose: int
    country: dict[str, str]
    certificate_issuer: str
    certificate_issuer_identifier: str
    certificate_id: str  # hcid, the health certificate identifier
    manufacturer: dict[str, str] | None = None
    market_authorization_holder: dict[str, str] | None = None
    total_doses: int | None = None
    centre: str | None = None
    practitioner_identifier: str | None = None
    valid_from: dt.date | str | None = None
    next_dose: dt.date | str | None = None
    disease: dict[str, str] | None = None
    certificate_valid_from: dt.datetime | str | None = None
    certificate_valid_until: dt.datetime | str | None = None
    certificate_version: str = "RC-2-draft"
    identifier_system: str | None = None

    def __post_init__(self) -> None:
        if self.manufacturer is None and self.market_authorization_holder is None:
            # who-ddcc-data-1: Manufacturer or Market Authorization Holder SHALL be present
            raise InputError("DDCC:VS needs a manufacturer or a market authorisation holder")
        if self.dose < 1 or (self.total_doses is not None and self.total_doses < 1):
            raise InputError("dose and total doses are positive integers")
        if self.sex is not None and self.sex not in ("male", "female", "other", "unknown"):
            raise InputError(f"sex {self.sex!r} is not a FHIR administrative gender")


def _drop_empty(d: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in d.items() if v not in (None, {}, [])}


def core_data_set(event: DdccVaccinationEvent) -> dict[str, Any]:
    """The DDCC:VS core data set as JSON with the IG's element names."""
    e = event
    period = _drop_empty({"start": _iso(e.certificate_valid_from), "end": _iso(e.certificate_valid_until)})
    certificate = _drop_empty(
        {
            "issuer": {"identifier": {"value": e.certificate_issuer_identifier}, "display": e.certificate_issuer},
            "hcid": {"value": e.certificate_id},
            "version": e.certificate_version,
            "period": period,
        }
    )
    vaccination = _drop_empty(
        {
            "vaccine": _coding(e.vaccine),
            "brand": _coding(e.brand),
            "manufacturer": _coding(e.manufacturer),
            "maholder": _coding(e.market_authorization_holder),
            "lot": e.lot,
            "date": _iso(e.date),
            "validFrom": _iso(e.valid_from),
            "dose": e.dose,
            "totalDoses": e.total_doses,
            "country": _coding(e.country),
            "centre": e.centre,
            "practitioner": {"value": e.practitioner_identifier} if e.practitioner_identifier else None,
            "disease": _coding(e.disease or COVID19_ICD11),
            "nextDose": _iso(e.next_dose),
        }
    )
    identifier = None
    if e.identifier:
        identifier = _drop_empty({"system": e.identifier_system, "value": e.identifier})
    return _drop_empty(
        {
            "resourceType": "DDCCCoreDataSet",
            "name": e.name,
            "birthDate": e.birth_date,
            "identifier": identifier,
            "sex": e.sex,
            "certificate": certificate,
            "vaccination": vaccination,
        }
    )


def ddcc_bundle(event: DdccVaccinationEvent) -> dict[str, Any]:
    """The core data set as a FHIR R4 `collection` Bundle (Patient,
    Immunization, Organization for the issuer), checked with fhir.resources
    R4B models; returns plain JSON."""
    from fhir.resources.R4B.bundle import Bundle

    e = event
    patient = _drop_empty(
        {
            "resourceType": "Patient",
            "name": [{"text": e.name}],
            "birthDate": e.birth_date,
            "gender": e.sex,
            "identifier": [_drop_empty({"system": e.identifier_system, "value": e.identifier})] if e.identifier else None,
        }
    )
    organization = {
        "resourceType": "Organization",
        "identifier": [{"value": e.certificate_issuer_identifier}],
        "name": e.certificate_issuer,
    }
    extensions = [
        {"url": EXT_BRAND, "valueCoding": _coding(e.brand)},
        {"url": EXT_COUNTRY, "valueCode": e.country["code"]},
    ]
    if e.market_authorization_holder:
        extensions.append(
            {
                "url": EXT_MAH,
                "valueCoding": _coding(e.market_authorization_holder),
            }
        )
    if e.valid_from:
        extensions.append({"url": EXT_VALID_FROM, "valueDate": _iso(e.valid_from)})
    protocol = _drop_empty(
        {
            "targetDisease": [{"coding": [_coding(e.disease or COVID19_ICD11)]}],
            "doseNumberPositiveInt": e.dose,
            "seriesDosesPositiveInt": e.total_doses,
        }
    )
    immunization = _drop_empty(
        {
            "resourceType": "Immunization",
            "extension": extensions,
            "status": "completed",
            "vaccineCode": {"coding": [_coding(e.vaccine)]},
            "patient": {"reference": "urn:uuid:patient"},
            "occurrenceDateTime": _iso(e.date),
            "location": {"display": e.centre} if e.centre else None,
            "manufacturer": {"identifier": {"value": e.manufacturer["code"]}, "display": e.manufacturer.get("display")}
            if e.manufacturer
            else None,
            "lotNumber": e.lot,
            "performer": [{"actor": {"identifier": {"value": e.practitioner_identifier}}}]
            if e.practitioner_identifier
            else None,
            "protocolApplied": [protocol],
        }
    )
    if immunization.get("manufacturer") and immunization["manufacturer"].get("display") is None:
        del immunization["manufacturer"]["display"]
    bundle = {
        "resourceType": "Bundle",
        "type": "collection",
        "identifier": {"value": e.certificate_id},
        "entry": [
            {"fullUrl": "urn:uuid:patient", "resource": patient},
            {"fullUrl": "urn:uuid:immunization", "resource": immunization},
            {"fullUrl": "urn:uuid:issuer", "resource": organization},
        ],
    }
    Bundle.model_validate(bundle)
    return bundle
