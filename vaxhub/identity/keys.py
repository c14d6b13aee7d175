"""Match keys: what the master patient index compares, read from a FHIR Patient.

A site's Patient is reduced once to a `MatchKeys`: the name split into
family, middle and given parts (folded, and once more with diacritics), the
birth date at the precision written, gender, the national numbers (CCCD,
the old CMND, BHXH), the phone in national form and the province of
residence. Everything downstream (blocking, scoring, the hub's stored keys)
works on these, never on raw FHIR.

`blocking_keys` lists the short strings under which a record is filed so
that candidate pairs are only the records sharing a key (Fellegi and Sunter
1969 call this blocking; Splink's "blocking rules" are the same idea). The
keys are chosen so that a true match with the usual errors of manual entry
(no diacritics, one typo, a missing CCCD, the old CMND, a year-only birth
date, day and month swapped, a family phone) still shares at least one key,
while no key is as broad as a surname or a birth year, which would put
millions of people into one block at 45 million.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from functools import lru_cache
from typing import Any

from vaxhub.errors import InvalidResource
from vaxhub.fhir.normalise import (
    BHXH_SYSTEM,
    BHYT_SYSTEM,
    CCCD_SYSTEM,
    CMND_SYSTEM,
    compact,
    current_province,
    normalise_phone,
    parse_bhyt,
    parse_date,
    province_in_address,
    split_name,
)
from vaxhub.fhir.normalise.names import patient_full_name
from vaxhub.fhir.text import fold


@dataclass(frozen=True, slots=True)
class MatchKeys:
    """The normalised facts of one Patient record that matching compares."""

    family: str  # folded: lower case, no diacritics, Đ→d; "" when unknown
    middle: str  # folded middle name(s), "" when none
    given: str  # folded given name
    name_exact: str  # NFC lower-case full name with diacritics, tone marks placed alike
    birth_year: int | None
    birth_month: int | None  # None for year-only birth dates
    birth_day: int | None
    gender: str | None  # "male" / "female" / None
    cccd: str | None  # 12-digit citizen id
    cmnd: str | None  # old 9- or 12-digit id
    bhxh: str | None  # 10-digit social insurance number
    phone: str | None  # national form "0912345678"
    province: str | None  # current (34-province) code of residence

    def to_document(self) -> dict[str, Any]:
        """JSON-safe form, for storage beside the record."""
        return asdict(self)

    @classmethod
    def from_document(cls, doc: dict[str, Any]) -> MatchKeys:
        return cls(**{f.name: doc.get(f.name) for f in fields(cls)})

    @property
    def full_date(self) -> bool:
        return self.birth_day is not None and self.birth_month is not None


# ---------------------------------------------------------------------------
# Reading a FHIR Patient
# ---------------------------------------------------------------------------


def _name_parts(patient: dict[str, Any]) -> tuple[str, str, str, str]:
    """(family, middle, given, name_exact); a given-first spelling ("An Văn
    Nguyễn") is put back in Vietnamese order by `split_name`."""
    return _split(patient_full_name(patient))


@lru_cache(maxsize=65_536)
def _split(text: str) -> tuple[str, str, str, str]:
    # Cached: names repeat (a batch of a million records has far fewer
    # distinct spellings), and splitting is most of the work of a record.
    try:
        name = split_name(text)
    except InvalidResource:
        return "", "", "", ""
    exact = name.text.lower()
    return (
        fold(name.family or ""),
        fold(" ".join(name.middle)),
        fold(name.given_name),
        exact,
    )


def _birth_date(patient: dict[str, Any]) -> tuple[int | None, int | None, int | None]:
    raw = patient.get("birthDate")
    if not raw:
        return None, None, None
    try:
        parsed = parse_date(str(raw))
    except InvalidResource:
        return None, None, None
    parts = [int(p) for p in parsed.value.split("-")]
    return (parts[0], parts[1] if len(parts) > 1 else None, parts[2] if len(parts) > 2 else None)


def national_numbers(patient: dict[str, Any]) -> tuple[str | None, str | None, str | None]:
    """(cccd, cmnd, bhxh), as `match_keys` reads them, without the names,
    dates and phone: what deciding an old-CMND look-up needs."""
    return _identifiers(patient)


def _identifiers(patient: dict[str, Any]) -> tuple[str | None, str | None, str | None]:
    """(cccd, cmnd, bhxh). A current number wins over one marked "old"; a
    9-digit number filed as a CCCD is an old CMND; a BHYT card carries the
    holder's BHXH number in its last ten digits."""
    found: dict[str, list[tuple[bool, str]]] = {"cccd": [], "cmnd": [], "bhxh": []}
    for identifier in patient.get("identifier") or []:
        if not isinstance(identifier, dict) or not identifier.get("value"):
            continue
        system, value = identifier.get("system"), compact(str(identifier["value"]))
        old = identifier.get("use") == "old"
        if not value.isdigit() and system != BHYT_SYSTEM:
            continue
        if system == CCCD_SYSTEM and len(value) == 12:
            found["cccd"].append((old, value))
        elif system in (CCCD_SYSTEM, CMND_SYSTEM) and len(value) in (9, 12):
            found["cmnd"].append((old, value))
        elif system == BHXH_SYSTEM and len(value) == 10:
            found["bhxh"].append((old, value))
        elif system == BHYT_SYSTEM:
            try:
                found["bhxh"].append((True, parse_bhyt(value).bhxh))
            except InvalidResource:
                continue
    picked = {kind: min(values)[1] if values else None for kind, values in found.items()}
    return picked["cccd"], picked["cmnd"], picked["bhxh"]


def _phone(patient: dict[str, Any]) -> str | None:
    for point in patient.get("telecom") or []:
        if isinstance(point, dict) and point.get("system") == "phone" and point.get("value"):
            try:
                e164 = normalise_phone(str(point["value"]))
            except InvalidResource:
                continue
            if e164.startswith("+84"):
                return "0" + e164[3:]
    return None


def _province(patient: dict[str, Any]) -> str | None:
    addresses = [a for a in patient.get("address") or [] if isinstance(a, dict)]
    addresses.sort(key=lambda a: a.get("use") != "home")
    for address in addresses:
        if address.get("state"):
            try:
                return current_province(str(address["state"])).code
            except InvalidResource:
                pass
        if address.get("text"):
            province = province_in_address(str(address["text"]))
            if province is not None:
                return province.code
    return None


def match_keys(patient: dict[str, Any]) -> MatchKeys:
    """The match keys of a FHIR R4 Patient JSON dict. Missing or unreadable
    parts become empty/None rather than errors: a record with only a name
    and a year can still be matched, just with less evidence."""
    family, middle, given, exact = _name_parts(patient)
    year, month, day = _birth_date(patient)
    gender = patient.get("gender")
    cccd, cmnd, bhxh = _identifiers(patient)
    return MatchKeys(
        family=family,
        middle=middle,
        given=given,
        name_exact=exact,
        birth_year=year,
        birth_month=month,
        birth_day=day,
        gender=gender if gender in ("male", "female") else None,
        cccd=cccd,
        cmnd=cmnd,
        bhxh=bhxh,
        phone=_phone(patient),
        province=_province(patient),
    )


# ---------------------------------------------------------------------------
# Blocking
# ---------------------------------------------------------------------------


def blocking_keys(keys: MatchKeys) -> list[str]:
    """The blocks a record belongs to. Two records are compared only when
    they share one. At 45 million people each block stays small: numbers
    are unique, a phone is a household, and every name key is tied to a
    full birth date or to a birth year within one province.

    - `id:`, `cmnd:`, `bhxh:` the numbers; a 12-digit CMND is also filed
      under `id:`, since it may have become the CCCD;
    - `ph:` the phone (a household shares one);
    - `dg:` full birth date with day and month in sorted order (a swap keeps
      the key) and the given name;
    - `df:` the same date, the family name and the given name's first
      letter (a typo in the given name);
    - `dn:` the same date and the name's words sorted (no diacritics, parts
      in another order);
    - `yp:` birth year, province, family and given name (a year-only or
      mistyped birth date).
    """
    found: list[str] = []
    if keys.cccd:
        found.append(f"id:{keys.cccd}")
    if keys.cmnd:
        found.append(f"cmnd:{keys.cmnd}")
        if len(keys.cmnd) == 12 and keys.cmnd != keys.cccd:
            found.append(f"id:{keys.cmnd}")
    if keys.bhxh:
        found.append(f"bhxh:{keys.bhxh}")
    if keys.phone:
        found.append(f"ph:{keys.phone}")
    if keys.birth_year is not None and keys.given:
        if keys.birth_month is not None and keys.birth_day is not None:
            low, high = sorted((keys.birth_month, keys.birth_day))
            day = f"{keys.birth_year:04d}-{low:02d}-{high:02d}"
            found.append(f"dg:{day}:{keys.given}")
            found.append(f"df:{day}:{keys.family}:{keys.given[0]}")
            words = " ".join(sorted(f"{keys.family} {keys.middle} {keys.given}".split()))
            found.append(f"dn:{day}:{words}")
        if keys.province:
            found.append(f"yp:{keys.birth_year:04d}:{keys.province}:{keys.family}:{keys.given}")
    return found
