"""VXU^V04 to a FHIR R4 transaction Bundle.

Follows the HL7 v2-to-FHIR mapping (HL7 Version 2 to FHIR IG, segment maps
PID→Patient, NK1→RelatedPerson (here Patient.contact), ORC and RXA/RXR/OBX →
Immunization) and the CDC HL7 v2.5.1 Implementation Guide for Immunization
Messaging R1.5 (CDC IG) for what each field holds:

- PID-3 → Patient.identifier: a CCCD (type NI / NNVNM, 12 digits) is the
  business identifier; else the site's own number (MR/PI/PT) in the system
  `…/site/{MSH-4}/patient`. PID-5 → name (family^given^middle), PID-7 →
  birthDate (at its precision), PID-8 → gender, PID-11 → address, PID-13/14 →
  telecom, PID-29/30 → deceased; PD1-3 → generalPractitioner, PD1-12/16 →
  extensions; NK1 → Patient.contact.
- One Immunization per ORC/RXA group (CDC IG §6.3, ORDER group): ORC-3 →
  identifier (`…/site/{MSH-4}/immunization`), RXA-3 → occurrenceDateTime,
  RXA-5 → vaccineCode, RXA-9 (NIP001 00/01) → primarySource/reportOrigin,
  RXA-10 and ORC-12 → performer, RXA-11 → location (display), RXA-15 →
  lotNumber, RXA-16 → expirationDate, RXA-17 → manufacturer, RXA-18 →
  statusReason, RXA-20/21 → status (RE/NA → not-done, PA → isSubpotent,
  action D → entered-in-error), RXR-1/2 → route/site, OBX (CDC IG §6.6) →
  dose number, funding, eligibility, VIS education, other notes.
- Each Patient and added dose is a conditional create on its identifier; an
  update (RXA-21 U) or deletion (D) is a conditional update on ORC-3, so a
  re-sent message changes nothing.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone

from vaxhub.errors import InvalidResource
from vaxhub.fhir import vaccines
from vaxhub.fhir.conditional import derived_key, post_entry, put_entry, site_immunization_system, site_patient_system
from vaxhub.fhir.normalise import (
    contact_point,
    current_province,
    fhir_identifier,
    parse_birth_date,
    split_name,
)
from vaxhub.fhir.tabular.legacy_text import legacy_text_message
from vaxhub.fhir.text import fold

from .er7 import (
    DATA_TYPE_ERROR,
    DUPLICATE_KEY_IDENTIFIER,
    REQUIRED_FIELD_MISSING,
    SEGMENT_SEQUENCE_ERROR,
    TABLE_VALUE_NOT_FOUND,
    Hl7Finding,
    Hl7MessageError,
    Message,
    Segment,
)
from .header import MessageHeader

VIET_NAM = timezone(timedelta(hours=7))
V2 = "http://terminology.hl7.org/CodeSystem/"
NIP001 = "urn:oid:2.16.840.1.114222.4.5.274"  # CDC immunization information source
NIP002 = "urn:oid:2.16.840.1.114222.4.5.275"  # CDC substance refusal reason
MVX_SYSTEM = "http://hl7.org/fhir/sid/mvx"
NCIT = "http://ncithesaurus-stage.nci.nih.gov"
LOINC = "http://loinc.org"
SNOMED = "http://snomed.info/sct"
EXT = "https://vaxhub.vn/fhir/StructureDefinition/"
CODING_SYSTEMS = {
    "CVX": vaccines.CVX_SYSTEM,
    "MVX": MVX_SYSTEM,
    "HL70162": V2 + "v2-0162",
    "HL70163": V2 + "v2-0163",
    "HL70063": V2 + "v2-0063",
    "NCIT": NCIT,
    "LN": LOINC,
    "SCT": SNOMED,
    "NIP001": NIP001,
    "NIP002": NIP002,
    "HL70064": V2 + "v2-0064",
    "CDCPHINVS": "urn:oid:2.16.840.1.114222.4.11.3284",
}
_GENDER = {"M": "male", "F": "female", "O": "other", "A": "other", "U": "unknown", "N": "unknown"}
_DTM = re.compile(r"^(\d{4})(\d{2})?(\d{2})?(?:(\d{2})(\d{2})?(\d{2})?(?:\.\d{1,4})?)?([+-]\d{4})?$")
_IDENTIFIER_VALUE = re.compile(r"^[^\x00-\x1f]{1,64}$")
_EMPTY_ORDER = {"", "9999"}  # CDC IG: ORC-3 "9999" marks a historical dose with no order number
_NOT_DONE = {"RE", "NA"}
COVID19 = {"system": SNOMED, "code": "840539006", "display": "COVID-19"}


@dataclass
class VxuTranslation:
    """What the mapper made of one message: the Bundle to store and the
    non-blocking findings to report as ERR severity W."""

    bundle: dict
    warnings: list[Hl7Finding] = field(default_factory=list)
    patient_identifier: dict | None = None
    immunization_identifiers: list[dict] = field(default_factory=list)


class _Findings:
    def __init__(self) -> None:
        self.errors: list[Hl7Finding] = []
        self.warnings: list[Hl7Finding] = []

    def error(self, code: str, message: str, seg: Segment, position: int | None = None, component: int | None = None) -> None:
        self.errors.append(Hl7Finding(code, message, seg.where(position, component)))

    def warn(self, code: str, message: str, seg: Segment, position: int | None = None, component: int | None = None) -> None:
        self.warnings.append(Hl7Finding(code, message, seg.where(position, component), "W"))


def fhir_datetime(value: str) -> tuple[str, date] | None:
    """HL7 DTM (`YYYY[MM[DD[HH[MM[SS[.S]]]]]][+/-ZZZZ]`) as a FHIR dateTime at
    its precision, with the calendar day; a time without a zone is Viet Nam
    local time (UTC+7). None when the text is not a valid DTM."""
    m = _DTM.match(value)
    if not m:
        return None
    year, month, day, hour, minute, second, zone = m.groups()
    try:
        moment = datetime(int(year), int(month or 1), int(day or 1), int(hour or 0), int(minute or 0), int(second or 0))
        tz = VIET_NAM
        if zone:
            sign = 1 if zone[0] == "+" else -1
            offset = timedelta(hours=int(zone[1:3]), minutes=int(zone[3:5]))
            if offset >= timedelta(hours=15) or int(zone[3:5]) >= 60:
                return None
            tz = timezone(sign * offset)
    except ValueError:
        return None
    if int(year) < 1800:
        return None
    if month is None:
        return year, moment.date()
    if day is None:
        return f"{year}-{month}", moment.date()
    if hour is None:
        return moment.date().isoformat(), moment.date()
    return moment.replace(tzinfo=tz).isoformat(), moment.date()


def _coding(code: str, display: str, system_name: str) -> dict:
    coding: dict = {"code": code}
    system = CODING_SYSTEMS.get(system_name.upper()) if system_name else None
    if system:
        coding["system"] = system
    if display:
        coding["display"] = display
    return coding


def _codeable(comps: list[str], default_system: str = "") -> dict | None:
    """CE/CWE (code^text^system^alt code^alt text^alt system) to CodeableConcept."""
    comps = [c.strip() for c in comps] + [""] * 6
    codings = []
    if comps[0]:
        codings.append(_coding(comps[0], comps[1], comps[2] or default_system))
    if comps[3]:
        codings.append(_coding(comps[3], comps[4], comps[5]))
    if not codings and not comps[1]:
        return None
    concept: dict = {}
    if codings:
        concept["coding"] = codings
    if comps[1]:
        concept["text"] = comps[1]
    return concept


def _person_name(comps: list[str], family_at: int = 0) -> str:
    """XPN (family^given^middle) or XCN (id^family^given^middle) as Vietnamese
    full-name text: family, middle, given."""
    parts = [c.strip() for c in comps[family_at : family_at + 3]] + ["", "", ""]
    family, given, middle = parts[0], parts[1], parts[2]
    return " ".join(p for p in (family, middle, given) if p)


def _check_text(found: _Findings, text: str, seg: Segment, position: int) -> bool:
    problem = legacy_text_message(text)
    if problem:
        found.error(DATA_TYPE_ERROR, problem, seg, position)
        return False
    return True


def _map_identifiers(pid: Segment, site: str, found: _Findings, today: date) -> tuple[list[dict], dict | None]:
    identifiers: list[dict] = []
    national: dict | None = None
    local: dict | None = None
    for rep in pid.repetitions(3):
        comps = rep + [""] * 5
        value, authority, kind = comps[0].strip(), comps[3].strip().upper(), comps[4].strip().upper()
        if not value:
            continue
        if not _IDENTIFIER_VALUE.match(value):
            found.error(DATA_TYPE_ERROR, "An identifier must be 1-64 characters without control characters", pid, 3, 1)
            continue
        try:
            if kind in ("NI", "NNVNM", "CCCD") or authority in ("CCCD", "VNM"):
                digits = re.sub(r"\D", "", value)
                ident = fhir_identifier(value, "cmnd" if len(digits) == 9 else "cccd", today=today, expression="PID-3")
            elif kind in ("SS", "SB"):
                ident = fhir_identifier(value, "bhxh", expression="PID-3")
            elif kind in ("NH", "HC"):
                ident = fhir_identifier(value, "bhyt", expression="PID-3")
            else:
                ident = {
                    "use": "usual",
                    "type": {"coding": [{"system": V2 + "v2-0203", "code": kind or "MR"}]},
                    "system": site_patient_system(site) if kind in ("", "MR", "PI", "PT", "MRN") else f"{site_patient_system(site)}/{kind.lower()}",
                    "value": value,
                }
        except InvalidResource as exc:
            found.error(DATA_TYPE_ERROR, exc.issues[0].message, pid, 3, 1)
            continue
        if any(i["system"] == ident["system"] and i["value"] == ident["value"] for i in identifiers):
            continue
        identifiers.append(ident)
        if national is None and ident["system"].endswith("/cccd"):
            national = ident
        if local is None and ident["system"] == site_patient_system(site):
            local = ident
    return identifiers, national or local


def _map_patient(message: Message, pid: Segment, site: str, found: _Findings, today: date) -> tuple[dict, dict | None]:
    identifiers, primary = _map_identifiers(pid, site, found, today)
    if primary is None and not any(f.location and f.location.field == 3 for f in found.errors):
        found.error(REQUIRED_FIELD_MISSING, "PID-3 needs a CCCD (type NI) or the site's patient number (type MR)", pid, 3)
    patient: dict = {"resourceType": "Patient", "identifier": identifiers}
    name_text = _person_name(pid.components(5))
    if not name_text:
        found.error(REQUIRED_FIELD_MISSING, "PID-5 patient name is required", pid, 5, 1)
    elif _check_text(found, name_text, pid, 5):
        try:
            patient["name"] = [split_name(name_text, order="family-first").to_fhir()]
        except InvalidResource as exc:
            found.error(DATA_TYPE_ERROR, exc.issues[0].message, pid, 5)
    sex = pid.value(8).upper()
    if sex:
        if sex in _GENDER:
            patient["gender"] = _GENDER[sex]
        else:
            found.warn(TABLE_VALUE_NOT_FOUND, f"PID-8 {sex!r} is not in HL7 table 0001; gender left out", pid, 8)
    birth = pid.value(7)
    if not birth:
        found.error(REQUIRED_FIELD_MISSING, "PID-7 date of birth is required", pid, 7)
    else:
        parsed = fhir_datetime(birth)
        if parsed is None:
            found.error(DATA_TYPE_ERROR, f"PID-7 {birth[:30]!r} is not an HL7 date (YYYY[MM[DD]])", pid, 7)
        else:
            try:
                patient["birthDate"] = parse_birth_date(parsed[0][:10], today=today, expression="PID-7").value
            except InvalidResource as exc:
                found.error(DATA_TYPE_ERROR, exc.issues[0].message, pid, 7)
    addresses = [a for rep in pid.repetitions(11) if (a := _address(rep, pid, found))]
    if addresses:
        patient["address"] = addresses
    telecom = _telecom(pid, 13, "home", found) + _telecom(pid, 14, "work", found)
    if telecom:
        patient["telecom"] = telecom
    death = pid.value(29)
    if death and (when := fhir_datetime(death)):
        patient["deceasedDateTime"] = when[0]
    elif pid.value(30).upper() == "Y":
        patient["deceasedBoolean"] = True
    _map_pd1(message, patient)
    contacts = [c for nk1 in message.all("NK1") if (c := _contact(nk1, found))]
    if contacts:
        patient["contact"] = contacts
    return patient, primary


def _address(rep: list[str], seg: Segment, found: _Findings) -> dict | None:
    comps = [c.strip() for c in rep] + [""] * 9
    street, other, city, state, country, county = comps[0], comps[1], comps[2], comps[3], comps[5], comps[8]
    if not any((street, other, city, state, county)):
        return None
    if not all(_check_text(found, t, seg, 11) for t in (street, other, city, state, county) if t):
        return None
    address: dict = {"use": "home"}
    lines = [t for t in (street, other) if t]
    if lines:
        address["line"] = lines
    if city:
        address["city"] = city
    if county:
        address["district"] = county
    if state:
        try:
            address["state"] = current_province(state).name
        except InvalidResource:
            found.warn(TABLE_VALUE_NOT_FOUND, f"Province {state[:40]!r} is not one of Viet Nam's provinces; kept as written", seg, 11, 4)
            address["state"] = state
    address["country"] = "VN" if country.upper() in ("", "VNM", "VN") else country
    address["text"] = ", ".join(t for t in (*lines, city, county, address.get("state", "")) if t)
    return address


def _telecom(seg: Segment, position: int, use: str, found: _Findings) -> list[dict]:
    out = []
    for rep in seg.repetitions(position):
        comps = [c.strip() for c in rep] + [""] * 8
        if comps[3]:
            out.append({"system": "email", "value": comps[3], "use": use})
        number = comps[0] or (comps[5] + comps[6])
        if not number:
            continue
        try:
            point = contact_point(number)
        except InvalidResource:
            found.warn(DATA_TYPE_ERROR, f"{number[:30]!r} is not a Vietnamese phone number; left out", seg, position)
            continue
        if use == "work":
            point["use"] = "work"
        out.append(point)
    return out


def _map_pd1(message: Message, patient: dict) -> None:
    pd1 = message.first("PD1")
    if pd1 is None:
        return
    facility = pd1.value(3, 1)
    if facility:
        patient["generalPractitioner"] = [{"display": facility}]
    extensions = []
    if pd1.value(12):
        extensions.append({"url": EXT + "protection-indicator", "valueBoolean": pd1.value(12).upper() == "Y"})
    if pd1.value(16):
        extensions.append({"url": EXT + "registry-status", "valueCode": pd1.value(16).upper()})
    if extensions:
        patient["extension"] = extensions


def _contact(nk1: Segment, found: _Findings) -> dict | None:
    name = _person_name(nk1.components(2))
    if not name or not _check_text(found, name, nk1, 2):
        return None
    contact: dict = {"name": {"text": name}}
    relation = _codeable(nk1.components(3), "HL70063")
    if relation:
        contact["relationship"] = [relation]
    phones = _telecom(nk1, 5, "home", found)
    if phones:
        contact["telecom"] = phones
    return contact


@dataclass
class _Order:
    orc: Segment | None
    rxa: Segment
    rxr: Segment | None = None
    obx: list[Segment] = field(default_factory=list)


def _orders(message: Message, found: _Findings) -> list[_Order]:
    """ORDER groups (CDC IG §5.2): ORC, RXA, [RXR], [OBX …] in that order."""
    orders: list[_Order] = []
    pending_orc: Segment | None = None
    for seg in message.segments[1:]:
        if seg.name == "ORC":
            if pending_orc is not None:
                found.error(SEGMENT_SEQUENCE_ERROR, "ORC without its RXA", pending_orc)
            pending_orc = seg
        elif seg.name == "RXA":
            if pending_orc is None:
                found.error(SEGMENT_SEQUENCE_ERROR, "RXA must follow its ORC", seg)
            orders.append(_Order(pending_orc, seg))
            pending_orc = None
        elif seg.name == "RXR":
            if not orders or orders[-1].rxr is not None or orders[-1].obx or pending_orc is not None:
                found.error(SEGMENT_SEQUENCE_ERROR, "RXR must follow an RXA", seg)
            else:
                orders[-1].rxr = seg
        elif seg.name == "OBX" and orders and pending_orc is None:
            orders[-1].obx.append(seg)
    if pending_orc is not None:
        found.error(SEGMENT_SEQUENCE_ERROR, "ORC without its RXA", pending_orc)
    return orders


def _vaccine(rxa: Segment, status: str, found: _Findings) -> dict | None:
    comps = rxa.components(5) + [""] * 6
    code, text, system, alt_code, alt_text = (c.strip() for c in comps[:5])
    if not code and not text:
        found.error(REQUIRED_FIELD_MISSING, "RXA-5 administered code is required", rxa, 5, 1)
        return None
    if code == "998" and status == "not-done":
        return {"coding": [{"system": vaccines.CVX_SYSTEM, "code": "998", "display": "no vaccine administered"}], "text": text or "no vaccine administered"}
    for candidate in (code, alt_code, text, alt_text):
        if not candidate:
            continue
        try:
            vaccine = vaccines.by_cvx(candidate) if system.upper() == "CVX" and candidate == code else vaccines.lookup(candidate)
        except InvalidResource:
            continue
        return vaccines.vaccine_codeable_concept(vaccine)
    found.error(TABLE_VALUE_NOT_FOUND, f"RXA-5 {code or text!r} is not a known COVID-19 vaccine (CVX code or name)", rxa, 5, 1)
    return None


def _status(rxa: Segment, found: _Findings) -> tuple[str, str]:
    """(Immunization.status, RXA-21 action code)."""
    action = rxa.value(21).upper() or "A"
    if action not in ("A", "U", "D"):
        found.error(TABLE_VALUE_NOT_FOUND, f"RXA-21 action code {action!r} is not A, U or D (HL7 table 0323)", rxa, 21)
    completion = rxa.value(20).upper() or "CP"
    if completion not in ("CP", "RE", "NA", "PA"):
        found.error(TABLE_VALUE_NOT_FOUND, f"RXA-20 completion status {completion!r} is not CP, RE, NA or PA (HL7 table 0322)", rxa, 20)
    if action == "D":
        return "entered-in-error", action
    if completion in _NOT_DONE:
        return "not-done", action
    return "completed", action


def _occurrence(rxa: Segment, birth: str | None, found: _Findings, today: date) -> str | None:
    raw = rxa.value(3)
    if not raw:
        found.error(REQUIRED_FIELD_MISSING, "RXA-3 date/time start of administration is required", rxa, 3)
        return None
    parsed = fhir_datetime(raw)
    if parsed is None:
        found.error(DATA_TYPE_ERROR, f"RXA-3 {raw[:30]!r} is not an HL7 date/time", rxa, 3)
        return None
    text, day = parsed
    if day > today:
        found.error(DATA_TYPE_ERROR, f"RXA-3 {text} is in the future", rxa, 3)
        return None
    if birth and text[: len(birth)] < birth[: len(text)]:
        found.error(DATA_TYPE_ERROR, f"RXA-3 {text} is before the date of birth {birth}", rxa, 3)
        return None
    return text


def _obx(immunization: dict, obx: Segment, found: _Findings) -> None:
    """CDC IG §6.6 observations about one dose."""
    loinc = obx.value(3, 1)
    value_type = obx.value(2).upper()
    value_comps = obx.components(5)
    value = obx.value(5)
    if not value:
        return
    if loinc == "30973-2":  # dose number in series
        if value.isdigit() and 0 < int(value) < 100:
            protocol = immunization.setdefault("protocolApplied", [{"targetDisease": [{"coding": [COVID19]}]}])[0]
            protocol["doseNumberPositiveInt"] = int(value)
        else:
            found.warn(DATA_TYPE_ERROR, f"OBX-5 dose number {value[:10]!r} is not a whole number; left out", obx, 5)
    elif loinc == "64994-7":  # eligibility for the funding programme
        if concept := _codeable(value_comps, "HL70064"):
            immunization["programEligibility"] = [concept]
    elif loinc == "30963-3":  # funding source
        if concept := _codeable(value_comps, "CDCPHINVS"):
            immunization["fundingSource"] = concept
    elif loinc in ("69764-9", "29768-9", "29769-7"):  # VIS document, its edition and when presented
        education = immunization.setdefault("education", [{}])[0]
        if loinc == "69764-9":
            education["documentType"] = value_comps[1] if len(value_comps) > 1 and value_comps[1] else value
        else:
            when = fhir_datetime(value)
            if when:
                education["publicationDate" if loinc == "29768-9" else "presentationDate"] = when[0]
    else:
        label = obx.value(3, 2) or loinc or "observation"
        shown = value_comps[1] if value_type in ("CE", "CWE") and len(value_comps) > 1 and value_comps[1] else value
        immunization.setdefault("note", []).append({"text": f"{label}: {shown}"})


def _map_immunization(order: _Order, site: str, patient_url: str, patient_key: str, birth: str | None, found: _Findings, today: date) -> tuple[dict, str, dict] | None:
    rxa = order.rxa
    errors_before = len(found.errors)
    status, action = _status(rxa, found)
    occurrence = _occurrence(rxa, birth, found, today)
    vaccine = _vaccine(rxa, status, found)
    if len(found.errors) > errors_before or occurrence is None or vaccine is None:
        return None
    imm: dict = {
        "resourceType": "Immunization",
        "status": status,
        "vaccineCode": vaccine,
        "patient": {"reference": patient_url},
        "occurrenceDateTime": occurrence,
    }
    order_number = order.orc.value(3) if order.orc else ""
    if order_number in _EMPTY_ORDER:
        code = next((c["code"] for c in vaccine["coding"] if c.get("system") == vaccines.VACCINE_SYSTEM), vaccine["coding"][0]["code"])
        order_number = derived_key(patient_key, code, occurrence[:10])
        found.warn(REQUIRED_FIELD_MISSING, "ORC-3 has no order number; the dose is identified by patient, vaccine and date", order.orc or rxa, 3)
    elif not _IDENTIFIER_VALUE.match(order_number):
        found.error(DATA_TYPE_ERROR, "ORC-3 must be 1-64 characters without control characters", order.orc or rxa, 3)
        return None
    identifier = {"use": "official", "system": site_immunization_system(site), "value": order_number}
    imm["identifier"] = [identifier]
    if status == "not-done":
        reason = _codeable(rxa.components(18), "NIP002")
        if rxa.value(20).upper() == "RE":
            imm["statusReason"] = reason or {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ActReason", "code": "PATOBJ", "display": "patient objection"}]}
        elif reason:
            imm["statusReason"] = reason
    if rxa.value(20).upper() == "PA":
        imm["isSubpotent"] = True
    source = rxa.value(9, 1)
    if source:
        imm["primarySource"] = source == "00"
        if source != "00":
            imm["reportOrigin"] = {"coding": [_coding(source, rxa.value(9, 2), "NIP001")]}
    lot = rxa.value(15)
    if lot:
        imm["lotNumber"] = lot[:64]
    expiry = rxa.value(16)
    if expiry:
        when = fhir_datetime(expiry)
        if when is None or len(when[0]) < 10:
            found.warn(DATA_TYPE_ERROR, f"RXA-16 {expiry[:20]!r} is not a date; expiration left out", rxa, 16)
        else:
            imm["expirationDate"] = when[0][:10]
    maker = rxa.components(17) + [""] * 3
    if maker[0] or maker[1]:
        manufacturer: dict = {}
        if maker[0]:
            manufacturer["identifier"] = {"system": MVX_SYSTEM, "value": maker[0].strip()}
        if maker[1]:
            manufacturer["display"] = maker[1].strip()
        imm["manufacturer"] = manufacturer
    performers = []
    if name := _person_name(rxa.components(10), family_at=1):
        performers.append({"function": {"coding": [{"system": V2 + "v2-0443", "code": "AP", "display": "Administering Provider"}]}, "actor": {"display": name}})
    if order.orc and (name := _person_name(order.orc.components(12), family_at=1)):
        performers.append({"function": {"coding": [{"system": V2 + "v2-0443", "code": "OP", "display": "Ordering Provider"}]}, "actor": {"display": name}})
    if performers:
        imm["performer"] = performers
    location = rxa.value(11, 4) or rxa.value(11, 1)
    if location:
        imm["location"] = {"display": location}
    if order.rxr is not None:
        if route := _codeable(order.rxr.components(1), "HL70162"):
            imm["route"] = route
        if body_site := _codeable(order.rxr.components(2), "HL70163"):
            imm["site"] = body_site
    for obx in order.obx:
        _obx(imm, obx, found)
    if "documentType" not in imm.get("education", [{}])[0]:
        imm.pop("education", None)  # FHIR imm-1: an education entry needs its document
    return imm, action, identifier


def map_vxu(message: Message, header: MessageHeader, *, today: date | None = None) -> VxuTranslation:
    """Map a parsed VXU^V04 to a transaction Bundle (see the module docstring).

    Raises `Hl7MessageError` (AE) carrying every error found; warnings come
    back on the translation.
    """
    today = today or datetime.now(VIET_NAM).date()
    found = _Findings()
    site = header.sending_facility
    pids = message.all("PID")
    if len(pids) != 1:
        where = pids[1] if pids else message.segments[0]
        found.error(REQUIRED_FIELD_MISSING if not pids else SEGMENT_SEQUENCE_ERROR, "A VXU carries exactly one PID segment", where)
        raise Hl7MessageError(found.errors)
    pid = pids[0]
    patient, primary = _map_patient(message, pid, site, found, today)
    orders = _orders(message, found)
    if not orders:
        found.error(REQUIRED_FIELD_MISSING, "A VXU carries at least one ORC/RXA group", pid)
    patient_url = f"urn:uuid:{uuid.uuid4()}"
    patient_key = f"{primary['system']}|{primary['value']}" if primary else fold(_person_name(pid.components(5)))
    entries = [post_entry(patient, [primary] if primary else [], patient_url)]
    identifiers: list[dict] = []
    seen: set[str] = set()
    for order in orders:
        mapped = _map_immunization(order, site, patient_url, patient_key, patient.get("birthDate"), found, today)
        if mapped is None:
            continue
        imm, action, identifier = mapped
        if identifier["value"] in seen:
            found.error(
                DUPLICATE_KEY_IDENTIFIER, f"ORC-3 {identifier['value'][:40]!r} appears twice in this message", order.orc or order.rxa, 3
            )
            continue
        seen.add(identifier["value"])
        identifiers.append(identifier)
        entries.append(post_entry(imm, [identifier]) if action == "A" else put_entry(imm, [identifier]))
    if found.errors:
        raise Hl7MessageError(found.errors)
    bundle = {"resourceType": "Bundle", "type": "transaction", "entry": entries}
    return VxuTranslation(bundle, found.warnings, primary, identifiers)


def widen_patient_match(translation: VxuTranslation) -> dict:
    """The same Bundle with the Patient's conditional create matching any of its
    identifiers, for when its business identifier missed but another of its
    numbers is already held by a stored patient."""
    entries = [dict(e) for e in translation.bundle["entry"]]
    patient = entries[0]
    identifiers = patient["resource"].get("identifier") or []
    if identifiers:
        patient["request"] = post_entry(patient["resource"], identifiers, patient["fullUrl"])["request"]
    return {**translation.bundle, "entry": entries}
