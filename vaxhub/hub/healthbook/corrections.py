"""A citizen's correction request: the FHIR R4 Task shape, checked the same way
whether the health-book app posts it (`POST /fhir/Task`) or the portal files it.

The Task (hl7.org/fhir/R4/task.html) the hub accepts from a citizen:

- `status` `requested`, `intent` `proposal`, `code`
  `http://hl7.org/fhir/CodeSystem/task-code|change`;
- `for`: the citizen (one of their person's Patient records);
- `focus`: what is wrong, `Patient/<id>` (personal details, or a dose that is
  missing altogether) or `Immunization/<id>` (one of their doses);
- `description`: their own words (up to 2,000 characters), optional when
  `input` says it all;
- `input`: the claimed values, one entry per field, typed by
  `https://vaxhub.vn/fhir/CodeSystem/correction-field` (`FIELDS`):
  `birthDate` (valueDate), `name.family` and `name.given` (valueString; given
  names space-separated), `gender` (valueCode) on a Patient; `occurrenceDateTime`
  (valueDateTime), `lotNumber` (valueString), `vaccineCode`
  (valueCodeableConcept) on an Immunization; `missing-dose` (valueReference
  `#id` to an Immunization in `contained`) on the Patient; `evidence`
  (valueAttachment: a photo or PDF of the vaccination card) on either.

Anything else (another code, status, field, a second value for one field,
`output` or `businessStatus` filled in by the citizen) is refused with 422 and
located issues. The hub sets `requester` (= `for`), `authoredOn`, `owner`
(the queue: `correction_routing`) and records which version of the focus the
request was made against (`FOCUS_VERSION_URL`), so a record changed since is
not overwritten by an older claim.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from typing import Any

from vaxhub.errors import Forbidden, Gone, InvalidResource, Issue, NotFound
from vaxhub.fhir.resources import validate_resource
from vaxhub.fhir.search_params import compartment_patient, date_range, parse_reference
from vaxhub.hub.audit.trail import Interaction
from vaxhub.hub.healthbook.correction_routing import route_correction
from vaxhub.hub.mpi.golden import is_golden
from vaxhub.hub.security.policy import citizen_compartment
from vaxhub.hub.security.principal import Principal
from vaxhub.hub.storage.store import Stored, Writer, format_instant

TASK_CODE_SYSTEM = "http://hl7.org/fhir/CodeSystem/task-code"
FIELD_SYSTEM = "https://vaxhub.vn/fhir/CodeSystem/correction-field"
FOCUS_VERSION_URL = "https://vaxhub.vn/fhir/StructureDefinition/correction-focus-version"
MAX_DESCRIPTION = 2000
MAX_TEXT_VALUE = 100
MISSING_DOSE = "missing-dose"
EVIDENCE = "evidence"
EVIDENCE_TYPES = frozenset({"image/jpeg", "image/png", "application/pdf"})
GENDERS = frozenset({"male", "female", "other", "unknown"})

# Field code -> (the focus type it applies to, the value[x] element carrying it).
FIELDS: dict[str, tuple[str | None, str]] = {
    "birthDate": ("Patient", "valueDate"),
    "name.family": ("Patient", "valueString"),
    "name.given": ("Patient", "valueString"),
    "gender": ("Patient", "valueCode"),
    "occurrenceDateTime": ("Immunization", "valueDateTime"),
    "lotNumber": ("Immunization", "valueString"),
    "vaccineCode": ("Immunization", "valueCodeableConcept"),
    MISSING_DOSE: ("Patient", "valueReference"),
    EVIDENCE: (None, "valueAttachment"),
}
# What a citizen may not fill in: the site's side of the Task.
SITE_ELEMENTS = ("output", "businessStatus", "statusReason", "executionPeriod", "lastModified", "restriction")

# Step names of the audit trail, at the start of each AuditEvent's outcomeDesc.
STEP_FILED = "correction filed"
STEP_ACCEPTED = "correction accepted"
STEP_REJECTED = "correction rejected"
STEP_RECORD_CHANGED = "record corrected"
STEP_CERTIFICATE = "certificate re-issued"
STEP_CERTIFICATE_WAITING = "certificate not re-issued"


@dataclass(frozen=True)
class Claim:
    """One claimed value: `field` (a FIELDS code), the value as sent, its place in `input`."""

    field: str
    value: Any
    index: int


def is_correction(task: dict[str, Any]) -> bool:
    codings = (task.get("code") or {}).get("coding") or []
    return any(isinstance(c, dict) and c.get("system") == TASK_CODE_SYSTEM and c.get("code") == "change" for c in codings)


def claim_input(field: str, value: Any) -> dict[str, Any]:
    """The `input` entry claiming `value` for `field`."""
    if field not in FIELDS:
        raise InvalidResource(f"{field!r} cannot be corrected here", [Issue(f"unknown field {field!r}", "field", "code-invalid")])
    return {"type": {"coding": [{"system": FIELD_SYSTEM, "code": field}]}, FIELDS[field][1]: value}


def correction_request(*, focus: str, patient_id: str, description: str | None, inputs: list[dict[str, Any]] = ()) -> dict[str, Any]:
    """A correction Task as a citizen files it, before the hub checks and routes it."""
    task: dict[str, Any] = {
        "resourceType": "Task",
        "status": "requested",
        "intent": "proposal",
        "code": {"coding": [{"system": TASK_CODE_SYSTEM, "code": "change", "display": "Change the focal resource"}]},
        "focus": {"reference": focus},
        "for": {"reference": f"Patient/{patient_id}"},
    }
    if description:
        task["description"] = description
    if inputs:
        task["input"] = list(inputs)
    return task


def prepare_correction(writer: Writer, who: Principal, task: dict[str, Any]) -> dict[str, Any]:
    """Check a citizen's correction Task inside the unit that will store it and
    return the Task to store, routed to its queue.

    403 when `for` is not the citizen; 404 when the focus is not one of their
    records (exactly as for a record that does not exist); 422 for anything
    else out of shape.
    """
    mine = citizen_compartment(who)
    if compartment_patient("Task", "", task) not in mine:
        raise Forbidden("A citizen may ask for corrections of their own records only (Task.for)")
    problems = _shape_problems(task)
    focus_ref = ((task.get("focus") or {}).get("reference")) if isinstance(task.get("focus"), dict) else None
    parsed = parse_reference(focus_ref) if isinstance(focus_ref, str) and "/_history/" not in focus_ref else None
    if parsed is None or parsed[0] not in ("Patient", "Immunization"):
        problems.append(Issue("focus must name the record to correct: Patient/<id> or Immunization/<id>", "Task.focus", "required"))
    if problems:
        raise InvalidResource(f"The correction request cannot be filed: {problems[0].message}", problems)
    focus = _own_record(writer, mine, *parsed)
    claims = read_claims(task, focus.rtype, focus_id=focus.id)
    if not claims and not (task.get("description") or "").strip():
        raise InvalidResource(
            "Say what is wrong: a description, or the corrected values in input",
            [Issue("description or input required", "Task.description", "required")],
        )
    patient = focus if focus.rtype == "Patient" else _own_record(writer, mine, "Patient", compartment_patient("Immunization", focus.id, focus.content or {}) or "")
    owner = route_correction(writer, focus, patient, missing_dose=any(c.field == MISSING_DOSE for c in claims))
    now = format_instant(writer.now)
    filed: dict[str, Any] = {
        **{k: v for k, v in task.items() if k not in ("owner", "requester", "authoredOn", "extension", "id", "meta")},
        "extension": [*_other_extensions(task), {"url": FOCUS_VERSION_URL, "valuePositiveInt": focus.version}],
        "focus": {"reference": f"{focus.rtype}/{focus.id}"},
        "requester": {"reference": task["for"]["reference"]},
        "authoredOn": now,
        "lastModified": now,
    }
    if owner is not None:
        filed["owner"] = owner
    validate_resource(filed, expected_type="Task")
    if isinstance(writer.context, Interaction):
        writer.context.description = f"{STEP_FILED}: {focus.rtype}/{focus.id}" + (f" ({', '.join(c.field for c in claims)})" if claims else "")
    return filed


def filed_version(task: dict[str, Any]) -> int | None:
    """The version of the focus the request was made against."""
    for ext in task.get("extension") or []:
        if isinstance(ext, dict) and ext.get("url") == FOCUS_VERSION_URL and isinstance(ext.get("valuePositiveInt"), int):
            return ext["valuePositiveInt"]
    return None


def read_claims(task: dict[str, Any], focus_type: str, *, focus_id: str, path: str = "Task") -> list[Claim]:
    """The claimed values of `task.input`, each checked; InvalidResource lists every problem."""
    claims: list[Claim] = []
    problems: list[Issue] = []
    inputs = task.get("input")
    if inputs is None:
        inputs = []
    if not isinstance(inputs, list):
        raise InvalidResource("input must be a list", [Issue("input must be a list", f"{path}.input", "structure")])
    seen: set[str] = set()
    for index, entry in enumerate(inputs):
        where = f"{path}.input[{index}]"
        field = _field_of(entry)
        if field is None:
            problems.append(Issue(f"input.type must be one code of {FIELD_SYSTEM} ({', '.join(FIELDS)})", f"{where}.type", "code-invalid"))
            continue
        applies_to, element = FIELDS[field]
        if applies_to is not None and applies_to != focus_type:
            problems.append(Issue(f"{field} is corrected on a {applies_to}, not on the {focus_type} this request is about", f"{where}.type", "business-rule"))
            continue
        if field != EVIDENCE and field in seen:
            problems.append(Issue(f"{field} is claimed twice", f"{where}.type", "duplicate"))
            continue
        seen.add(field)
        values = [k for k in entry if k.startswith("value")]
        if values != [element]:
            problems.append(Issue(f"{field} takes exactly one {element}", f"{where}.{element}", "structure"))
            continue
        problem = _value_problem(field, entry[element], task, focus_id)
        if problem:
            problems.append(Issue(problem, f"{where}.{element}", "value"))
            continue
        claims.append(Claim(field, entry[element], index))
    problems += _contained_problems(task, claims, path)
    if problems:
        raise InvalidResource(f"The claimed values cannot be used: {problems[0].message}", problems)
    return claims


def missing_dose_of(task: dict[str, Any], claim: Claim) -> dict[str, Any]:
    """The contained Immunization a `missing-dose` claim points at."""
    wanted = claim.value["reference"][1:]
    return next(c for c in task.get("contained") or [] if isinstance(c, dict) and c.get("id") == wanted)


# ------------------------------------------------------------------ internals


def _shape_problems(task: dict[str, Any]) -> list[Issue]:
    problems: list[Issue] = []
    if not is_correction(task):
        problems.append(Issue(f"A citizen files corrections only: code must be {TASK_CODE_SYSTEM}|change", "Task.code", "code-invalid"))
    if task.get("status") != "requested":
        problems.append(Issue("A new correction request has status 'requested'", "Task.status", "value"))
    if task.get("intent") != "proposal":
        problems.append(Issue("A correction request is a proposal: intent must be 'proposal'", "Task.intent", "value"))
    for element in SITE_ELEMENTS:
        if element in task:
            problems.append(Issue(f"{element} is filled in by the site, not by the request", f"Task.{element}", "business-rule"))
    description = task.get("description")
    if description is not None and (not isinstance(description, str) or len(description) > MAX_DESCRIPTION):
        problems.append(Issue(f"description is at most {MAX_DESCRIPTION} characters", "Task.description", "too-long"))
    return problems


def _own_record(writer: Writer, mine: frozenset[str], rtype: str, rid: str) -> Stored:
    """One of the citizen's records, read in the unit; anyone else's is unknown."""
    try:
        stored = writer.read(rtype, rid)
    except (NotFound, Gone):
        stored = None
    if stored is None or stored.content is None or compartment_patient(rtype, rid, stored.content) not in mine:
        raise NotFound(f"{rtype}/{rid} is not known", [Issue("Unknown record", "Task.focus", "not-found")])
    if rtype == "Patient" and is_golden(stored.content):
        raise InvalidResource(
            "Choose the record a vaccination site keeps, not the person index's summary",
            [Issue("the person index's Patient cannot be corrected", "Task.focus", "business-rule")],
        )
    return stored


def _other_extensions(task: dict[str, Any]) -> list[Any]:
    return [e for e in task.get("extension") or [] if not (isinstance(e, dict) and e.get("url") == FOCUS_VERSION_URL)]


def _field_of(entry: Any) -> str | None:
    if not isinstance(entry, dict):
        return None
    codes = [
        c.get("code") for c in ((entry.get("type") or {}).get("coding") or []) if isinstance(c, dict) and c.get("system") == FIELD_SYSTEM
    ]
    return codes[0] if len(codes) == 1 and codes[0] in FIELDS else None


_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def _past_date(value: Any, *, full_day: bool) -> str | None:
    if not isinstance(value, str) or (full_day and not _DATE.match(value)):
        return "a full date (YYYY-MM-DD) is needed" if full_day else "a date or date and time is needed"
    try:
        start, _end = date_range(value)
    except ValueError:
        return f"{value!r} is not a date"
    if full_day:
        try:
            dt.date.fromisoformat(value)
        except ValueError:
            return f"{value!r} is not a calendar date"
    if start > dt.datetime.now(dt.timezone.utc).replace(tzinfo=None):
        return f"{value} is in the future"
    if start.year < 1900:
        return f"{value} is too long ago"
    return None


def _value_problem(field: str, value: Any, task: dict[str, Any], focus_id: str) -> str | None:
    if field == "birthDate":
        return _past_date(value, full_day=True)
    if field == "occurrenceDateTime":
        return _past_date(value, full_day=False)
    if field in ("name.family", "name.given", "lotNumber"):
        if not isinstance(value, str) or not value.strip() or len(value) > MAX_TEXT_VALUE or value != value.strip():
            return f"a text of 1 to {MAX_TEXT_VALUE} characters, without surrounding spaces, is needed"
        return None
    if field == "gender":
        return None if value in GENDERS else f"gender is one of {', '.join(sorted(GENDERS))}"
    if field == "vaccineCode":
        codings = value.get("coding") if isinstance(value, dict) else None
        if not codings or not all(isinstance(c, dict) and c.get("system") and c.get("code") for c in codings):
            return "the vaccine is given as a coding with system and code"
        return None
    if field == MISSING_DOSE:
        reference = value.get("reference") if isinstance(value, dict) else None
        contained = {c.get("id"): c for c in task.get("contained") or [] if isinstance(c, dict)}
        if not isinstance(reference, str) or not reference.startswith("#") or reference[1:] not in contained:
            return "the missing dose is an Immunization in contained, referenced as #<id>"
        return _missing_dose_problem(contained[reference[1:]], focus_id)
    if field == EVIDENCE:
        if not isinstance(value, dict) or value.get("contentType") not in EVIDENCE_TYPES or not (value.get("data") or value.get("url")):
            return f"evidence is an attachment ({', '.join(sorted(EVIDENCE_TYPES))}) with data or url"
        return None
    return f"{field} cannot be corrected here"


def _missing_dose_problem(dose: dict[str, Any], patient_id: str) -> str | None:
    if dose.get("resourceType") != "Immunization":
        return "the missing dose must be an Immunization"
    if (dose.get("patient") or {}).get("reference") != f"Patient/{patient_id}":
        return f"the missing dose's patient must be Patient/{patient_id}, the record this request is about"
    if dose.get("status") != "completed":
        return "the missing dose's status is 'completed'"
    if "occurrenceDateTime" not in dose:
        return "the missing dose needs occurrenceDateTime"
    return _past_date(dose["occurrenceDateTime"], full_day=False)


def _contained_problems(task: dict[str, Any], claims: list[Claim], path: str) -> list[Issue]:
    """Only the missing doses the input points at may be contained."""
    used = {c.value["reference"][1:] for c in claims if c.field == MISSING_DOSE}
    problems = []
    for index, item in enumerate(task.get("contained") or []):
        if not isinstance(item, dict) or item.get("id") not in used:
            problems.append(Issue("contained holds only the missing dose an input points at", f"{path}.contained[{index}]", "business-rule"))
            continue
        try:
            validate_resource(item, path=f"{path}.contained[{index}]")
        except InvalidResource as exc:
            problems += exc.issues
    return problems
