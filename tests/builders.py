"""Small builders of realistic Vietnamese FHIR resources for tests."""

from __future__ import annotations

import uuid

CCCD = "https://vaxhub.vn/fhir/sid/cccd"
SITE_IMM = "https://vaxhub.vn/fhir/sid/site/79001/immunization"
CVX = "http://hl7.org/fhir/sid/cvx"


def patient(cccd: str = "079090012345", family: str = "Nguyễn", given: tuple[str, ...] = ("Văn", "An"), *,
            gender: str = "male", birth_date: str = "1990-05-04", phone: str | None = "0912345678") -> dict:
    res: dict = {
        "resourceType": "Patient",
        "identifier": [{"system": CCCD, "value": cccd}],
        "name": [{"use": "official", "family": family, "given": list(given)}],
        "gender": gender,
        "birthDate": birth_date,
    }
    if phone:
        res["telecom"] = [{"system": "phone", "value": phone}]
    return res


def immunization(patient_ref: str, number: str = "IMM-1", *, cvx: str = "210", date: str = "2021-08-01T09:30:00+07:00",
                 lot: str = "A1234", location: str | None = None, performer: str | None = None, status: str = "completed") -> dict:
    res: dict = {
        "resourceType": "Immunization",
        "identifier": [{"system": SITE_IMM, "value": number}],
        "status": status,
        "vaccineCode": {"coding": [{"system": CVX, "code": cvx}]},
        "patient": {"reference": patient_ref},
        "occurrenceDateTime": date,
        "lotNumber": lot,
    }
    if location:
        res["location"] = {"reference": location}
    if performer:
        res["performer"] = [{"actor": {"reference": performer}}]
    return res


def post_entry(resource: dict, full_url: str | None = None, *, if_none_exist: str | None = None) -> dict:
    request = {"method": "POST", "url": resource["resourceType"]}
    if if_none_exist:
        request["ifNoneExist"] = if_none_exist
    return {"fullUrl": full_url or f"urn:uuid:{uuid.uuid4()}", "resource": resource, "request": request}


def identifier_condition(resource: dict) -> str:
    ident = resource["identifier"][0]
    return f"identifier={ident['system']}|{ident['value']}"


def transaction(*entries: dict, kind: str = "transaction") -> dict:
    return {"resourceType": "Bundle", "type": kind, "entry": list(entries)}


def person_with_doses(cccd: str, doses: int = 2, *, family: str = "Trần", given: tuple[str, ...] = ("Thị", "Hoa")) -> list[dict]:
    """Entries for one person and their doses, all conditional on business identifiers."""
    pat = patient(cccd, family, given, gender="female", birth_date="1985")
    purl = f"urn:uuid:{uuid.uuid4()}"
    entries = [post_entry(pat, purl, if_none_exist=identifier_condition(pat))]
    for n in range(1, doses + 1):
        imm = immunization(purl, f"{cccd}-{n}", date=f"2021-0{n + 6}-15")
        entries.append(post_entry(imm, if_none_exist=identifier_condition(imm)))
    return entries
