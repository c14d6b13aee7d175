"""Search parameters of the stored resource types, and how to read their values.

Each parameter names a FHIR R4 search parameter (hl7.org/fhir/R4/searchparameter-registry.html)
and an extractor that walks the resource's JSON. Extractors are plain functions
over dicts rather than FHIRPath, because they run on every write on the ingest
path and must cost microseconds.

Extracted values are typed:
- token:     (system or None, code)
- string:    the string as stored; the index keeps an exact and a folded form
- date:      (start, end) as naive UTC datetimes, a half-open range
- reference: (target type, target id) for relative references
"""

from __future__ import annotations

import re
from functools import lru_cache
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, Callable, Iterable, Literal

from vaxhub.errors import InvalidResource, Issue, UnsupportedRequest
from vaxhub.fhir.normalise import phones

ParamType = Literal["token", "string", "date", "reference"]

# Viet Nam has kept UTC+7 without daylight saving since 1975; dates written
# without a zone (a birth date, a dose given "on 2021-08-01") are local dates.
LOCAL_TZ = timezone(timedelta(hours=7))


@dataclass(frozen=True)
class SearchParam:
    name: str
    type: ParamType
    extract: Callable[[dict], Iterable[Any]]
    targets: tuple[str, ...] = field(default=())  # reference parameters only
    description: str = ""


# ---------------------------------------------------------------- helpers


def _list(value: Any) -> list:
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def _identifiers(res: dict) -> Iterable[tuple[str | None, str]]:
    for ident in _list(res.get("identifier")):
        if isinstance(ident, dict) and ident.get("value"):
            yield ident.get("system"), ident["value"]


def _name_parts(res: dict, *, family: bool = True, given: bool = True, all_parts: bool = True) -> Iterable[str]:
    for name in _list(res.get("name")):
        if not isinstance(name, dict):
            continue
        parts: list[str] = []
        if all_parts and name.get("text"):
            parts.append(name["text"])
        if family and name.get("family"):
            parts.append(name["family"])
        if given:
            parts.extend(g for g in _list(name.get("given")) if g)
        if all_parts:
            parts.extend(p for p in _list(name.get("prefix")) + _list(name.get("suffix")) if p)
        for part in parts:
            yield part
            # "Nguyễn Văn An" must be found by "Văn An" and by "An", as well as by "Nguyễn".
            words = part.split()
            for i in range(1, len(words)):
                yield " ".join(words[i:])
        givens = [g for g in _list(name.get("given")) if g]
        if given and len(givens) > 1:
            yield " ".join(givens)
        if all_parts and family and given and name.get("family"):
            yield " ".join([name["family"], *givens])


@lru_cache(maxsize=65536)  # family members share phones, and each is indexed twice
def normalise_phone(value: str) -> str:
    """E.164 form of a phone number for the index; a value that is no number stays as written."""
    try:
        return phones.normalise_phone(value)
    except InvalidResource:
        return value.strip()


def _telecom(res: dict, only_system: str | None = None) -> Iterable[tuple[str | None, str]]:
    for cp in _list(res.get("telecom")):
        if not isinstance(cp, dict) or not cp.get("value"):
            continue
        system = cp.get("system")
        if only_system and system != only_system:
            continue
        value = normalise_phone(cp["value"]) if system in ("phone", "sms") else cp["value"].strip()
        yield None, value


def _codings(concept: Any) -> Iterable[tuple[str | None, str]]:
    if isinstance(concept, dict):
        for coding in _list(concept.get("coding")):
            if isinstance(coding, dict) and coding.get("code"):
                yield coding.get("system"), coding["code"]


def _code(value: Any) -> Iterable[tuple[str | None, str]]:
    if isinstance(value, str) and value:
        yield None, value


def parse_reference(reference: str) -> tuple[str, str] | None:
    """(type, id) of a relative or absolute RESTful reference; None for others."""
    match = _REFERENCE.search(reference)
    if not match:
        return None
    return match.group("type"), match.group("id")


_REFERENCE = re.compile(r"(?:^|/)(?P<type>[A-Z][A-Za-z]+)/(?P<id>[A-Za-z0-9\-.]{1,64})(?:/_history/[^/]+)?$")


def _identifier_of(reference: Any) -> Iterable[tuple[str | None, str]]:
    """The logical identifier of a Reference (`Reference.identifier`)."""
    ident = reference.get("identifier") if isinstance(reference, dict) else None
    if isinstance(ident, dict) and isinstance(ident.get("value"), str) and ident["value"]:
        yield ident.get("system"), ident["value"]


def _references(*values: Any) -> Iterable[tuple[str, str]]:
    for value in values:
        for ref in _list(value):
            if isinstance(ref, dict) and isinstance(ref.get("reference"), str):
                parsed = parse_reference(ref["reference"])
                if parsed:
                    yield parsed


# ------------------------------------------------------------------ dates

_DATE = re.compile(
    r"^(?P<y>\d{4})(?:-(?P<m>\d{2})(?:-(?P<d>\d{2})"
    r"(?:T(?P<H>\d{2}):(?P<M>\d{2})(?::(?P<S>\d{2})(?:\.(?P<f>\d+))?)?(?P<tz>Z|[+-]\d{2}:\d{2})?)?)?)?$"
)


def date_range(value: str) -> tuple[datetime, datetime]:
    """The half-open UTC range [start, end) a FHIR date/dateTime/instant covers.

    "1990" covers the whole local year, "2021-08-01" the local day, and a
    dateTime to the second covers that second. Raises ValueError on a string
    that is not a FHIR date.
    """
    m = _DATE.match(value.strip())
    if not m:
        raise ValueError(f"{value!r} is not a FHIR date or dateTime")
    year, month, day = int(m["y"]), m["m"], m["d"]
    tz = LOCAL_TZ
    if m["tz"]:
        tz = timezone.utc if m["tz"] == "Z" else _offset(m["tz"])
    if month is None:
        start = datetime(year, 1, 1, tzinfo=tz)
        end = datetime(year + 1, 1, 1, tzinfo=tz)
    elif day is None:
        mon = int(month)
        start = datetime(year, mon, 1, tzinfo=tz)
        end = datetime(year + (mon == 12), mon % 12 + 1, 1, tzinfo=tz)
    elif m["H"] is None:
        start = datetime(year, int(month), int(day), tzinfo=tz)
        end = start + timedelta(days=1)
    else:
        fraction = m["f"] or ""
        micro = int((fraction + "000000")[:6]) if fraction else 0
        start = datetime(year, int(month), int(day), int(m["H"]), int(m["M"]), int(m["S"] or 0), micro, tzinfo=tz)
        if m["S"] is None:
            step = timedelta(minutes=1)
        elif fraction:
            step = timedelta(microseconds=10 ** max(0, 6 - len(fraction)))
        else:
            step = timedelta(seconds=1)
        end = start + step
    return _utc_naive(start), _utc_naive(end)


def _offset(text: str) -> timezone:
    sign = 1 if text[0] == "+" else -1
    hours, minutes = int(text[1:3]), int(text[4:6])
    return timezone(sign * timedelta(hours=hours, minutes=minutes))


def _utc_naive(moment: datetime) -> datetime:
    return moment.astimezone(timezone.utc).replace(tzinfo=None)


def _dates(*values: Any) -> Iterable[tuple[datetime, datetime]]:
    for value in values:
        if isinstance(value, str):
            try:
                yield date_range(value)
            except ValueError:
                continue  # validation has already refused real dates in a bad form


# ------------------------------------------------------------ definitions


def _p(name: str, type_: ParamType, extract: Callable[[dict], Iterable[Any]], description: str, targets: tuple[str, ...] = ()) -> SearchParam:
    return SearchParam(name, type_, extract, targets, description)


_IDENTIFIER = _p("identifier", "token", _identifiers, "A business identifier (system|value)")

SEARCH_PARAMS: dict[str, dict[str, SearchParam]] = {
    "Patient": {
        p.name: p
        for p in (
            _IDENTIFIER,
            _p("name", "string", lambda r: _name_parts(r), "Any part of a name; accent- and case-insensitive"),
            _p("family", "string", lambda r: _name_parts(r, given=False, all_parts=False), "Family name"),
            _p("given", "string", lambda r: _name_parts(r, family=False, all_parts=False), "Given (and middle) names"),
            _p("birthdate", "date", lambda r: _dates(r.get("birthDate")), "Date of birth, year-only dates as ranges"),
            _p("gender", "token", lambda r: _code(r.get("gender")), "Administrative gender"),
            _p("telecom", "token", lambda r: _telecom(r), "Any contact point value; phones in E.164"),
            _p("phone", "token", lambda r: _telecom(r, "phone"), "A phone number, in any Vietnamese form"),
        )
    },
    "Immunization": {
        p.name: p
        for p in (
            _IDENTIFIER,
            _p("patient", "reference", lambda r: _references(r.get("patient")), "The vaccinated patient", ("Patient",)),
            _p("date", "date", lambda r: _dates(r.get("occurrenceDateTime"), r.get("recorded") if not r.get("occurrenceDateTime") else None), "When the dose was given"),
            _p("vaccine-code", "token", lambda r: _codings(r.get("vaccineCode")), "Vaccine product code"),
            _p("status", "token", lambda r: _code(r.get("status")), "completed | entered-in-error | not-done"),
            _p("lot-number", "string", lambda r: [r["lotNumber"]] if r.get("lotNumber") else [], "Vaccine lot number"),
            _p("location", "reference", lambda r: _references(r.get("location")), "Where the dose was given", ("Location",)),
            _p(
                "performer",
                "reference",
                lambda r: _references(*[p.get("actor") for p in _list(r.get("performer")) if isinstance(p, dict)]),
                "Who gave the dose",
                ("Practitioner", "Organization", "PractitionerRole"),
            ),
        )
    },
    "Organization": {
        p.name: p
        for p in (
            _IDENTIFIER,
            _p("name", "string", lambda r: [r["name"], *_list(r.get("alias"))] if r.get("name") else _list(r.get("alias")), "Name or alias"),
            _p("partof", "reference", lambda r: _references(r.get("partOf")), "The parent organisation", ("Organization",)),
        )
    },
    "Location": {
        p.name: p
        for p in (
            _IDENTIFIER,
            _p("name", "string", lambda r: [r["name"], *_list(r.get("alias"))] if r.get("name") else _list(r.get("alias")), "Name or alias"),
            _p("organization", "reference", lambda r: _references(r.get("managingOrganization")), "Managing organisation", ("Organization",)),
            _p("address-city", "string", lambda r: [r["address"]["city"]] if isinstance(r.get("address"), dict) and r["address"].get("city") else [], "City or province"),
        )
    },
    "AdverseEvent": {
        p.name: p
        for p in (
            _IDENTIFIER,
            _p("subject", "reference", lambda r: _references(r.get("subject")), "The person who had the reaction", ("Patient",)),
            _p("date", "date", lambda r: _dates(r.get("date")), "When the reaction occurred"),
            _p("seriousness", "token", lambda r: _codings(r.get("seriousness")), "serious | non-serious"),
            _p(
                "substance",
                "reference",
                lambda r: _references(*[e.get("instance") for e in _list(r.get("suspectEntity")) if isinstance(e, dict)]),
                "The dose (Immunization) suspected of causing the reaction",
                ("Immunization",),
            ),
            _p("actuality", "token", lambda r: _code(r.get("actuality")), "actual | potential"),
        )
    },
    "Task": {
        p.name: p
        for p in (
            _IDENTIFIER,
            _p("status", "token", lambda r: _code(r.get("status")), "requested | completed | rejected | …"),
            _p("business-status", "token", lambda r: _codings(r.get("businessStatus")), "Where the correction stands in the site's work"),
            _p("code", "token", lambda r: _codings(r.get("code")), "Task code; corrections are http://hl7.org/fhir/CodeSystem/task-code|change"),
            _p("focus", "reference", lambda r: _references(r.get("focus")), "The record to correct", ("Patient", "Immunization")),
            _p("patient", "reference", lambda r: _references(r.get("for")), "The person the correction is for (Task.for)", ("Patient",)),
            _p("subject", "reference", lambda r: _references(r.get("for")), "Task.for", ("Patient",)),
            _p("requester", "reference", lambda r: _references(r.get("requester")), "Who asked", ("Patient",)),
            _p("owner", "reference", lambda r: _references(r.get("owner")), "The organisation whose queue holds the task", ("Organization",)),
            _p(
                "owner-identifier",
                "token",
                lambda r: _identifier_of(r.get("owner")),
                "The queue holding the task: a site (https://vaxhub.vn/fhir/sid/site|CODE) or a province (https://vaxhub.vn/fhir/sid/province|CODE)",
            ),
            _p("authored-on", "date", lambda r: _dates(r.get("authoredOn")), "When the task was filed"),
            _p("modified", "date", lambda r: _dates(r.get("lastModified")), "When the task last changed"),
        )
    },
    "Group": {
        p.name: p
        for p in (
            _IDENTIFIER,
            _p("name", "string", lambda r: [r["name"]] if r.get("name") else [], "The cohort's name"),
            _p("type", "token", lambda r: _code(r.get("type")), "person | practitioner | …; cohorts of Patients are person"),
            _p(
                "member",
                "reference",
                lambda r: _references(*[m.get("entity") for m in _list(r.get("member")) if isinstance(m, dict)]),
                "A member of the cohort",
                ("Patient",),
            ),
        )
    },
    "Practitioner": {
        p.name: p
        for p in (
            _IDENTIFIER,
            _p("name", "string", lambda r: _name_parts(r), "Any part of a name"),
            _p("family", "string", lambda r: _name_parts(r, given=False, all_parts=False), "Family name"),
            _p("given", "string", lambda r: _name_parts(r, family=False, all_parts=False), "Given names"),
        )
    },
}

# A string parameter whose values include those of narrower ones: every family
# and given name is also a `name`. The index keeps such a value once, under the
# narrower parameter, and a search on `name` looks under all three: a Patient
# needs about half the string index rows it would otherwise.
INDEXED_UNDER: dict[tuple[str, str], tuple[str, ...]] = {
    ("Patient", "name"): ("name", "family", "given"),
    ("Practitioner", "name"): ("name", "family", "given"),
}


def index_params(rtype: str, name: str) -> tuple[str, ...]:
    """The index parameters a search on `name` reads."""
    return INDEXED_UNDER.get((rtype, name), (name,))


# The Patient compartment (hl7.org/fhir/R4/compartmentdefinition-patient.html):
# which reference puts a resource in a patient's compartment.
PATIENT_COMPARTMENT = {"Patient": None, "Immunization": "patient", "AdverseEvent": "subject", "Task": "patient"}


def compartment_patient(rtype: str, resource_id: str, resource: dict) -> str | None:
    """The id of the patient whose compartment the resource belongs to, if any."""
    if rtype not in PATIENT_COMPARTMENT:
        return None
    param = PATIENT_COMPARTMENT[rtype]
    if param is None:
        return resource_id
    for target_type, target_id in SEARCH_PARAMS[rtype][param].extract(resource):
        if target_type == "Patient":
            return target_id
    return None


def extract_all(rtype: str, resource: dict) -> dict[str, list[Any]]:
    """Every search parameter's values for a resource, de-duplicated in order."""
    out: dict[str, list[Any]] = {}
    for name, param in SEARCH_PARAMS.get(rtype, {}).items():
        values = list(dict.fromkeys(param.extract(resource)))
        if values:
            out[name] = values
    return out


def get_param(rtype: str, name: str) -> SearchParam:
    try:
        return SEARCH_PARAMS[rtype][name]
    except KeyError:
        raise UnsupportedRequest(
            f"Unknown search parameter {name!r} for {rtype}",
            [Issue(f"Unknown search parameter {name!r} for {rtype}", name, "not-supported")],
        ) from None
