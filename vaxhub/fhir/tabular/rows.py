"""One backlog row to a Patient and its Immunizations, with every problem
located by row and column.

A row is all or nothing: any error rejects the whole row (the site fixes it and
sends the file again); warnings are reported and the row is stored. Identity:

- Patient: the CCCD is the business identifier when the row has one; without
  it the person is identified at the uploading site by a key derived from the
  folded name, birth year and sex (`…/site/{site}/patient`), so re-imports and
  fixed files (diacritics restored, a year-only birth date completed) find
  the same record.
- Immunization: `…/site/{mã cơ sở tiêm or the uploading site}/immunization`
  with a key derived from the folded name, birth year, vaccine and date: the
  same dose sent again, or in a fixed file, is the same identifier.
"""

from __future__ import annotations

import math
import re
import uuid
from dataclasses import dataclass, field
from datetime import date, datetime

from vaxhub.errors import InvalidResource
from vaxhub.fhir import vaccines
from vaxhub.fhir.conditional import derived_key, post_entry, site_immunization_system, site_patient_system
from vaxhub.fhir.normalise import (
    FhirDate,
    contact_point,
    fhir_identifier,
    historical_province,
    parse_birth_date,
    parse_date,
    split_name,
)
from vaxhub.fhir.text import fold, nfc

from .columns import LABELS, ColumnMap
from .legacy_text import legacy_text_message

SNOMED_COVID19 = {"system": "http://snomed.info/sct", "code": "840539006", "display": "COVID-19"}
ETHNICITY_URL = "https://vaxhub.vn/fhir/StructureDefinition/ethnicity"
NATIONALITY_URL = "http://hl7.org/fhir/StructureDefinition/patient-nationality"
_GENDERS = {"nam": "male", "male": "male", "m": "male", "trai": "male", "nu": "female", "female": "female", "f": "female", "gai": "female"}
_VIET_NAM = {"viet nam", "vietnam", "vn", "vnm", "viet"}
SITE_CODE = re.compile(r"^[A-Za-z0-9.\-]{1,64}$")
_SCIENTIFIC = re.compile(r"^\d(?:[.,]\d+)?e\+?\d+$", re.IGNORECASE)
# How early a dose may be dated before its vaccine entered the programme before
# the date is taken for a typo.
_EARLY_DAYS = 31


@dataclass(frozen=True)
class RowIssue:
    row: int
    column: str
    message: str
    severity: str = "error"  # or "warning"


@dataclass
class RowResult:
    row: int
    entries: list[dict] = field(default_factory=list)
    issues: list[RowIssue] = field(default_factory=list)
    person_key: str = ""
    phone: str | None = None
    empty: bool = False

    @property
    def rejected(self) -> bool:
        return any(i.severity == "error" for i in self.issues)

    @property
    def warned(self) -> bool:
        return not self.rejected and any(i.severity == "warning" for i in self.issues)


def cell_text(value: object) -> str:
    """A cell as text: numbers without a trailing ".0", dates as ISO."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, float):
        if math.isfinite(value) and value.is_integer():
            return str(int(value))
        return repr(value)
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    return nfc(str(value))


class _RowMapper:
    def __init__(self, columns: ColumnMap, row: int, cells: list[object], site_code: str, today: date, legacy: bool):
        self.columns = columns
        self.cells = cells
        self.site = site_code
        self.today = today
        self.legacy = legacy
        self.result = RowResult(row)

    def raw(self, field_name: str, dose: int | None = None) -> object:
        column = self.columns.doses.get(dose, {}).get(field_name) if dose else self.columns.person.get(field_name)
        if column is None or column.index >= len(self.cells):
            return None
        value = self.cells[column.index]
        return None if (isinstance(value, str) and not value.strip()) else value

    def text(self, field_name: str, dose: int | None = None) -> str:
        value = cell_text(self.raw(field_name, dose))
        if value and not value.isascii():
            problem = (
                "the file is not UTF-8 (a legacy 8-bit encoding such as TCVN3, VNI or Windows-1258); save it as CSV UTF-8 and submit it again"
                if self.legacy
                else legacy_text_message(value)
            )
            if problem:
                self.error(field_name, problem, dose)
                return ""
        return value

    def error(self, field_name: str, message: str, dose: int | None = None) -> None:
        self.result.issues.append(RowIssue(self.result.row, self.columns.header_of(field_name, dose), message))

    def warn(self, field_name: str, message: str, dose: int | None = None) -> None:
        self.result.issues.append(RowIssue(self.result.row, self.columns.header_of(field_name, dose), message, "warning"))


def _message(exc: InvalidResource) -> str:
    return exc.issues[0].message if exc.issues else exc.message


def _swapped(value: object) -> FhirDate | None:
    """The date read month-first, when the text (or a date cell) has a day of 12 or less."""
    if isinstance(value, (datetime, date)):
        d = value.date() if isinstance(value, datetime) else value
        if d.day <= 12:
            try:
                return FhirDate(date(d.year, d.day, d.month).isoformat(), "day")
            except ValueError:
                return None
        return None
    m = re.fullmatch(r"\s*(\d{1,2})([/.-])(\d{1,2})\2(\d{4})\s*", str(value))
    if not m:
        return None
    try:
        return FhirDate(date(int(m[4]), int(m[1]), int(m[3])).isoformat(), "day")
    except ValueError:
        return None


def _identity_parts(name_key: str, birth: FhirDate | None, gender: str) -> tuple[str, str, str]:
    return name_key, str(birth.year) if birth else "", gender


def _patient(m: _RowMapper) -> tuple[dict, list[dict], str, FhirDate | None] | None:
    name_text = m.text("full_name")
    if not name_text:
        if m.raw("full_name") is None:
            m.error("full_name", "the name is missing")
        return None
    try:
        name = split_name(name_text, order="family-first")
    except InvalidResource as exc:
        m.error("full_name", _message(exc))
        return None
    if name_text.isascii():
        m.warn("full_name", f"{name_text!r} has no Vietnamese diacritics; stored as written (please restore them if you can)")
    patient: dict = {"resourceType": "Patient", "identifier": [], "name": [name.to_fhir()]}

    gender = "unknown"
    raw_gender = fold(m.text("gender"))
    if raw_gender:
        if raw_gender in _GENDERS:
            gender = _GENDERS[raw_gender]
        else:
            m.warn("gender", f"{raw_gender!r} is not Nam/Nữ (male/female); recorded as unknown")
    elif m.columns.person.get("gender"):
        m.warn("gender", "the sex is missing; recorded as unknown")
    patient["gender"] = gender

    birth: FhirDate | None = None
    raw_birth = m.raw("birth_date")
    if raw_birth is None:
        m.error("birth_date", "the birth date is missing (a year alone, e.g. 1956, is accepted)")
    else:
        birth_value = raw_birth if isinstance(raw_birth, (int, float, date)) and not isinstance(raw_birth, bool) else m.text("birth_date")
        if birth_value != "":
            try:
                birth = parse_birth_date(birth_value, today=m.today, expression=None)
            except InvalidResource as exc:
                swapped = _swapped(raw_birth)
                hint = f" (day and month look swapped: did you mean {swapped.value}? write dd/mm/yyyy)" if swapped else ""
                m.error("birth_date", _message(exc) + hint)
            else:
                if birth.year < 1900:
                    m.error("birth_date", f"birth year {birth.year} is not plausible")
                    birth = None
                else:
                    patient["birthDate"] = birth.value

    identifiers: list[dict] = []
    raw_id = m.text("id_number")
    if raw_id:
        if _SCIENTIFIC.match(raw_id):
            m.error("id_number", f"{raw_id!r} was turned into a number by Excel and its digits are lost; format the column as text and type the number again")
        else:
            digits = re.sub(r"[\s.\-]", "", raw_id)
            if digits.isdigit() and len(digits) == 11 and isinstance(m.raw("id_number"), (int, float)):
                digits = "0" + digits
                m.warn("id_number", f"leading zero restored ({digits}): Excel drops it from numbers; format the column as text")
            try:
                kind = "cmnd" if len(digits) == 9 else "cccd"
                identifiers.append(fhir_identifier(digits, kind, today=m.today, expression=None))
            except InvalidResource as exc:
                m.error("id_number", _message(exc))
    else:
        m.warn("id_number", "no CCCD/CMND: the person is identified at this site by name, birth year and sex")

    raw_bhyt = m.text("bhyt")
    if raw_bhyt:
        try:
            identifiers.append(fhir_identifier(raw_bhyt, "bhyt", expression=None))
        except InvalidResource as exc:
            m.warn("bhyt", _message(exc) + "; left out")

    name_key = fold(name.text)
    cccd = next((i for i in identifiers if i["system"].endswith("/cccd")), None)
    if cccd is not None:
        primary = cccd
    else:
        key = derived_key("patient", *_identity_parts(name_key, birth, gender))
        primary = {"use": "usual", "system": site_patient_system(m.site), "value": key}
        identifiers.insert(0, primary)
    patient["identifier"] = identifiers

    raw_phone = m.text("phone")
    if raw_phone:
        try:
            patient["telecom"] = [contact_point(raw_phone)]
            m.result.phone = patient["telecom"][0]["value"]
        except InvalidResource as exc:
            m.warn("phone", _message(exc) + "; left out")

    extensions = []
    if ethnicity := m.text("ethnicity"):
        extensions.append({"url": ETHNICITY_URL, "valueString": ethnicity})
    if nationality := m.text("nationality"):
        concept: dict = {"text": nationality}
        if fold(nationality) in _VIET_NAM:
            concept = {"coding": [{"system": "urn:iso:std:iso:3166", "code": "VN", "display": "Việt Nam"}], "text": nationality}
        extensions.append({"url": NATIONALITY_URL, "extension": [{"url": "code", "valueCodeableConcept": concept}]})
    if extensions:
        patient["extension"] = extensions

    address = _address(m)
    if address:
        patient["address"] = [address]
    m.result.person_key = "\x1f".join(_identity_parts(name_key, birth, gender))
    return patient, [primary], name_key, birth


def _address(m: _RowMapper) -> dict | None:
    street, commune, district, province = m.text("address"), m.text("commune"), m.text("district"), m.text("province")
    if not any((street, commune, district, province)):
        return None
    address: dict = {"use": "home"}
    lines = [t for t in (street, commune) if t]
    if lines:
        address["line"] = lines
    if district:
        address["district"] = district
    if province:
        try:
            address["state"] = historical_province(province).name
        except InvalidResource:
            m.warn("province", f"{province!r} is not one of Viet Nam's provinces; kept as written")
            address["state"] = province
    address["country"] = "VN"
    address["text"] = ", ".join(t for t in (*lines, district, address.get("state", "")) if t)
    return address


def _dose_date(m: _RowMapper, dose: int, vaccine: vaccines.Vaccine | None, birth: FhirDate | None) -> FhirDate | None:
    raw = m.raw("date", dose)
    value = raw if isinstance(raw, (int, float, date)) and not isinstance(raw, bool) else m.text("date", dose)
    try:
        when = parse_date(value, expression=None)
    except InvalidResource as exc:
        swapped = _swapped(raw)
        hint = f" (day and month look swapped: did you mean {swapped.value}? write dd/mm/yyyy)" if swapped else ""
        m.error("date", _message(exc) + hint, dose)
        return None
    if when.precision != "day":
        m.error("date", f"the vaccination date {when.value} needs a day, month and year", dose)
        return None
    day = when.as_date()
    assert day is not None
    earliest = vaccine.in_use_from if vaccine else date(2020, 12, 1)
    out_of_range = day > m.today or (day - earliest).days < -_EARLY_DAYS
    if out_of_range:
        swapped = _swapped(raw)
        swapped_day = swapped.as_date() if swapped else None
        if swapped_day and swapped_day <= m.today and (swapped_day - earliest).days >= -_EARLY_DAYS:
            m.error("date", f"{when.value} is impossible here; day and month look swapped (did you mean {swapped_day.isoformat()}?): write dd/mm/yyyy", dose)
            return None
        if day > m.today:
            m.error("date", f"the vaccination date {when.value} is in the future", dose)
            return None
        m.error("date", f"the vaccination date {when.value} is before {vaccine.display if vaccine else 'the programme'} was in use ({earliest.isoformat()})", dose)
        return None
    shared = min(len(when.value), len(birth.value)) if birth else 0
    if birth is not None and when.value[:shared] < birth.value[:shared]:
        m.error("date", f"the vaccination date {when.value} is before the birth date {birth.value}", dose)
        return None
    return when


def _doses(m: _RowMapper, patient_url: str, name_key: str, birth: FhirDate | None) -> list[dict]:
    entries = []
    for number in sorted(m.columns.doses):
        raw_vaccine, raw_date = m.raw("vaccine", number), m.raw("date", number)
        lot, site_code = m.text("lot", number), m.text("site", number)
        if raw_vaccine is None and raw_date is None:
            if lot or site_code:
                m.error("vaccine", f"dose {number} has a lot or site but no vaccine and date", number)
            continue
        vaccine = None
        vaccine_text = m.text("vaccine", number)
        if raw_vaccine is None:
            m.error("vaccine", f"dose {number} has a date but no vaccine", number)
        elif vaccine_text:
            try:
                vaccine = vaccines.lookup(vaccine_text)
            except InvalidResource:
                m.error("vaccine", f"unknown vaccine {vaccine_text!r} (e.g. AstraZeneca, Pfizer, Moderna, Vero Cell, Sputnik V, Abdala, Hayat-Vax, Janssen)", number)
        if raw_date is None:
            m.error("date", f"dose {number} has a vaccine but no date", number)
            continue
        when = _dose_date(m, number, vaccine, birth)
        site = site_code or m.site
        if site_code and not SITE_CODE.match(site_code):
            m.error("site", f"{site_code!r} is not a site code (letters, digits, '.', '-')", number)
            continue
        if vaccine is None or when is None:
            continue
        key = derived_key("dose", name_key, str(birth.year) if birth else "", vaccine.code, when.value)
        identifier = {"use": "official", "system": site_immunization_system(site), "value": key}
        immunization: dict = {
            "resourceType": "Immunization",
            "identifier": [identifier],
            "status": "completed",
            "vaccineCode": vaccines.vaccine_codeable_concept(vaccine),
            "patient": {"reference": patient_url},
            "occurrenceDateTime": when.value,
            "primarySource": False,
            "reportOrigin": {"coding": [{"system": "urn:oid:2.16.840.1.114222.4.5.274", "code": "01", "display": "Historical information - source unspecified"}], "text": "backlog import"},
            "protocolApplied": [{"targetDisease": [{"coding": [SNOMED_COVID19]}], "doseNumberPositiveInt": number}],
        }
        if lot:
            immunization["lotNumber"] = lot[:64]
        if site_code:
            immunization["location"] = {"display": site_code}
        entries.append(post_entry(immunization, [identifier]))
    if not entries and not m.result.rejected:
        m.error("vaccine", "the row has no dose (loại vắc xin and ngày tiêm)")
    return entries


def map_row(columns: ColumnMap, row: int, cells: list[object], *, site_code: str, today: date | None = None, legacy_encoding: bool = False) -> RowResult:
    """Map one data row; never raises for bad data (every problem is a RowIssue)."""
    if not any(cell_text(c).strip() for c in cells):
        return RowResult(row, empty=True)
    m = _RowMapper(columns, row, cells, site_code, today or date.today(), legacy_encoding)
    try:
        mapped = _patient(m)
        patient_url = f"urn:uuid:{uuid.uuid4()}"
        if mapped is None:
            _doses(m, patient_url, "", None)
            return m.result
        patient, condition, name_key, birth = mapped
        dose_entries = _doses(m, patient_url, name_key, birth)
    except InvalidResource as exc:  # a normaliser refusing input we did not foresee
        m.error("full_name", _message(exc))
        return m.result
    if not m.result.rejected:
        m.result.entries = [post_entry(patient, condition, patient_url), *dose_entries]
    return m.result


def phone_sharing_warnings(phones: dict[str, dict[str, list[int]]], columns: ColumnMap) -> list[RowIssue]:
    """Warnings for a phone number written for several different people (a
    family phone): useful to know, never a reason to refuse a row.
    `phones` maps E.164 number -> person key -> row numbers."""
    out = []
    header = columns.header_of("phone")
    for number, people in phones.items():
        if len(people) < 2:
            continue
        rows = sorted(r for rs in people.values() for r in rs)
        shown = ", ".join(str(r) for r in rows[:10]) + (" …" if len(rows) > 10 else "")
        for row in rows:
            out.append(RowIssue(row, header, f"phone {number} is shared by {len(people)} people (rows {shown}); check it is each person's own number", "warning"))
    return out


__all__ = ["LABELS", "RowIssue", "RowResult", "cell_text", "map_row", "phone_sharing_warnings"]
