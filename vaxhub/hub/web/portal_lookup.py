"""Finding a citizen's record from what they remember: name, birth date, phone.

People without the app rarely know which CCCD their vaccination site wrote
down, but they know the phone they gave there. The phone is the indexed
search; the name (compared without diacritics, case or spacing) and the
birth date (a record holding only the year matches any day of it) narrow
the candidates in code. Only a single match counts: a family sharing a phone
with two members of the same name and birth date gets no code rather than
someone else's.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from vaxhub.errors import InvalidResource, Issue
from vaxhub.fhir.normalise.dates import parse_birth_date
from vaxhub.fhir.normalise.names import name_match_key
from vaxhub.fhir.normalise.phones import normalise_phone
from vaxhub.fhir.search_query import parse_search
from vaxhub.hub.storage.store import FhirStore

MAX_NAME_LENGTH = 200
CANDIDATES = 50


@dataclass(frozen=True)
class LookupDetails:
    """What the person typed, checked and normalised."""

    name_key: str
    birth_date: str  # FHIR date as typed: 1990-05-04
    phone: str  # E.164


def read_lookup_form(form: dict[str, Any]) -> LookupDetails:
    """Validate the lookup form; InvalidResource names each field that is wrong."""
    issues: list[Issue] = []
    name = form.get("name")
    name = name.strip() if isinstance(name, str) else ""
    if not name or len(name) > MAX_NAME_LENGTH:
        issues.append(Issue("Enter your full name as written at vaccination", "name", "required"))
    birth_date = ""
    raw_birth = form.get("birth_date")
    try:
        parsed = parse_birth_date(raw_birth.strip() if isinstance(raw_birth, str) else "", expression="birth_date")
        if parsed.precision != "day":
            raise InvalidResource("day needed", [Issue("day needed", "birth_date")])
        birth_date = parsed.value
    except InvalidResource:
        issues.append(Issue("Enter your full birth date (day, month, year)", "birth_date", "invalid"))
    phone = ""
    raw_phone = form.get("phone")
    try:
        phone = normalise_phone(raw_phone.strip() if isinstance(raw_phone, str) else "", expression="phone")
    except InvalidResource:
        issues.append(Issue("Enter the mobile number you gave at vaccination", "phone", "invalid"))
    if issues:
        raise InvalidResource("Some details are missing or not valid", issues)
    return LookupDetails(name_match_key(" ".join(name.split())), birth_date, phone)


def _names_of(patient: dict[str, Any]) -> set[str]:
    keys = set()
    for name in patient.get("name") or []:
        if not isinstance(name, dict):
            continue
        if isinstance(name.get("text"), str):
            keys.add(name_match_key(" ".join(name["text"].split())))
        parts = [name.get("family")] + list(name.get("given") or [])
        joined = " ".join(p for p in parts if isinstance(p, str))
        if joined:
            keys.add(name_match_key(" ".join(joined.split())))
    return keys


def _born_on(patient: dict[str, Any], birth_date: str) -> bool:
    recorded = patient.get("birthDate")
    return isinstance(recorded, str) and len(recorded) >= 4 and birth_date.startswith(recorded)


def find_patient(store: FhirStore, details: LookupDetails) -> str | None:
    """The one Patient with this phone, name and birth date, else None."""
    page = store.search(parse_search("Patient", [("telecom", details.phone), ("_count", str(CANDIDATES))]))
    found = [
        s.id for s in page.resources
        if s.content and details.name_key in _names_of(s.content) and _born_on(s.content, details.birth_date)
    ]
    return found[0] if len(found) == 1 else None
