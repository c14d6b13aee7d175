"""The golden Patient of a person: one FHIR Patient derived from its linked records.

Site records are never rewritten by linking; the person they make up is a
Patient of its own, owned by the hub (`meta.source` urn:vaxhub:mpi, tagged
`https://vaxhub.vn/fhir/CodeSystem/mpi|golden`), stored through the FHIR
store like any other resource, so read, search, history and audit all work.
Its content is derived, never typed:

- `link`: one `seealso` entry per linked site record (a merged-away person
  keeps one `replaced-by` link to the survivor and `active: false`);
- `name`: the spelling most records agree on once folded, written with the
  diacritics of a registry-verified record if there is one, else of the most
  common spelling that has them;
- `birthDate`: at the most precise precision the records agree on ("1990"
  when one says 1990-05-04 and another 1990-04-05); a verified record's
  date when there is one;
- `gender`: a verified record's, else the most common;
- `identifier`: the person id, and each CCCD the population registry
  verified for one of its records (system `.../sid/person-cccd`: the site
  record keeps the CCCD under the national system, which must stay unique
  to it, or the citizen's login by CCCD would find two Patients).

No `telecom` and no address: phones are shared by households and are how
citizens find their own site record (login, portal look-up); a golden copy
would make every such look-up find two Patients.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any

from vaxhub.fhir.text import fold, nfc

MPI_TAG_SYSTEM = "https://vaxhub.vn/fhir/CodeSystem/mpi"
GOLDEN_CODE = "golden"
PERSON_SYSTEM = "https://vaxhub.vn/fhir/sid/person"
PERSON_CCCD_SYSTEM = "https://vaxhub.vn/fhir/sid/person-cccd"
MPI_SOURCE = "urn:vaxhub:mpi"
RESERVED_SYSTEMS = frozenset({PERSON_SYSTEM, PERSON_CCCD_SYSTEM})
_NI = {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0203", "code": "NI"}]}


@dataclass(frozen=True)
class Member:
    """One linked site record as the golden record is built from it."""

    record_id: str
    content: dict[str, Any]
    verified_cccd: str | None = None


def is_golden(content: dict[str, Any] | None) -> bool:
    tags = ((content or {}).get("meta") or {}).get("tag") or []
    return any(isinstance(t, dict) and t.get("system") == MPI_TAG_SYSTEM and t.get("code") == GOLDEN_CODE for t in tags)


def _meta() -> dict[str, Any]:
    return {"source": MPI_SOURCE, "tag": [{"system": MPI_TAG_SYSTEM, "code": GOLDEN_CODE, "display": "Person of the master patient index"}]}


def _official_name(content: dict[str, Any]) -> dict[str, Any] | None:
    names = [n for n in content.get("name") or [] if isinstance(n, dict)]
    return next((n for n in names if n.get("use") == "official"), names[0] if names else None)


def _name_text(name: dict[str, Any]) -> str:
    if name.get("text"):
        return " ".join(nfc(str(name["text"])).split())
    return " ".join(nfc(" ".join([str(name.get("family") or ""), *(str(g) for g in name.get("given") or [])])).split())


def _best_name(members: list[Member]) -> dict[str, Any] | None:
    spelled = [(m, name, _name_text(name)) for m in members if (name := _official_name(m.content)) and _name_text(name)]
    if not spelled:
        return None
    folded = Counter(fold(text) for _, _, text in spelled)
    verified = [s for s in spelled if s[0].verified_cccd]
    agreed = fold(verified[0][2]) if verified else folded.most_common(1)[0][0]
    same = [s for s in spelled if fold(s[2]) == agreed]
    with_marks = [s for s in same if fold(s[2]) != s[2].lower()]
    pool = [s for s in verified if fold(s[2]) == agreed] or with_marks or same
    text = Counter(s[2] for s in pool).most_common(1)[0][0]
    words = text.split()
    return {"use": "official", "text": text, "family": words[0], "given": words[1:]} if len(words) > 1 else {"use": "official", "text": text}


def _date_parts(value: Any) -> tuple[int, ...]:
    parts = str(value or "").split("-")
    try:
        return tuple(int(p) for p in parts[:3]) if parts and parts[0] else ()
    except ValueError:
        return ()


def agreed_birth_date(dates: list[str], verified: list[str] = ()) -> str | None:
    """The birth date at the most precise precision the records agree on
    (records of a minority birth year are outvoted)."""
    if verified:
        return max(verified, key=len)
    parsed = [p for p in (_date_parts(d) for d in dates) if p]
    if not parsed:
        return None
    year = Counter(p[0] for p in parsed).most_common(1)[0][0]
    same_year = [p for p in parsed if p[0] == year]
    agreed = [year]
    for level in (1, 2):
        values = {p[level] for p in same_year if len(p) > level}
        if len(values) != 1:
            break
        agreed.append(values.pop())
    return "-".join([f"{agreed[0]:04d}", *(f"{v:02d}" for v in agreed[1:])])


def _gender(members: list[Member]) -> str | None:
    verified = [m.content.get("gender") for m in members if m.verified_cccd and m.content.get("gender")]
    if verified:
        return verified[0]
    known = Counter(m.content["gender"] for m in members if m.content.get("gender") in ("male", "female", "other"))
    return known.most_common(1)[0][0] if known else None


def golden_patient(person_id: str, members: list[Member]) -> dict[str, Any]:
    """The golden Patient of a person with at least one linked record."""
    ordered = sorted(members, key=lambda m: m.record_id)
    identifiers: list[dict[str, Any]] = [{"use": "official", "system": PERSON_SYSTEM, "value": person_id}]
    for cccd in sorted({m.verified_cccd for m in ordered if m.verified_cccd}):
        identifiers.append({"use": "official", "type": _NI, "system": PERSON_CCCD_SYSTEM, "value": cccd})
    patient: dict[str, Any] = {"resourceType": "Patient", "id": person_id, "meta": _meta(), "identifier": identifiers, "active": True}
    name = _best_name(ordered)
    if name:
        patient["name"] = [name]
    gender = _gender(ordered)
    if gender:
        patient["gender"] = gender
    verified_dates = [str(m.content["birthDate"]) for m in ordered if m.verified_cccd and m.content.get("birthDate")]
    birth = agreed_birth_date([str(m.content.get("birthDate") or "") for m in ordered], verified_dates)
    if birth:
        patient["birthDate"] = birth
    patient["link"] = [{"other": {"reference": f"Patient/{m.record_id}"}, "type": "seealso"} for m in ordered]
    return patient


def merged_patient(person_id: str, survivor_id: str, previous: dict[str, Any] | None) -> dict[str, Any]:
    """A merged-away person's golden Patient: inactive, pointing at the survivor."""
    patient = {k: v for k, v in (previous or {}).items() if k not in ("meta", "link", "active")}
    patient.update({"resourceType": "Patient", "id": person_id, "meta": _meta(), "active": False})
    patient.setdefault("identifier", [{"use": "official", "system": PERSON_SYSTEM, "value": person_id}])
    # Verified CCCDs move with the records; the survivor's golden carries them now.
    patient["identifier"] = [i for i in patient["identifier"] if i.get("system") != PERSON_CCCD_SYSTEM]
    patient["link"] = [{"other": {"reference": f"Patient/{survivor_id}"}, "type": "replaced-by"}]
    return patient
