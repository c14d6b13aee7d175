"""Vietnamese personal identifiers: CCCD, CMND, BHXH and BHYT numbers.

- CCCD / personal identification number (Circular 07/2016/TT-BCA, Art. 7;
  Circular 59/2021/TT-BCA): 12 digits `PPP G YY RRRRRR`: the province of
  birth registration (historical codes, see `provinces`), a century-and-sex
  digit (0/1: 1900s male/female, 2/3: 2000s, 4/5: 2100s, 6/7: 2200s,
  8/9: 1800s), the last two digits of the birth year and six random digits.
  There is no check digit, so a typo is only caught when it breaks the layout
  or disagrees with the record (`cross_check_cccd`).
- CMND (old identity card, Decree 05/1999/NĐ-CP): 9 digits, or 12 digits on
  cards issued 2012–2016. A 12-digit CMND looks like a CCCD; `classify`
  reads 12 digits as a CCCD, and `parse_cmnd` accepts either length.
- BHXH (social insurance) number: 10 digits.
- BHYT (health insurance) card, Decision 1351/QĐ-BHXH (2015): 15 characters:
  a two-letter beneficiary category ("DN", "HT", "TE"…), a benefit-level digit
  1–5, a two-digit province code and the holder's 10-digit BHXH number.

Errors raise `InvalidResource`; cross-checks return warning `Issue`s.
Separators people type ("001 203 012 345", "GD-4-79-7931234567") are dropped.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date
from typing import Literal

from vaxhub.errors import InvalidResource, Issue

from .issues import invalid, warning
from .provinces import HistoricalProvince, historical_province_by_code

# Identifier.system URIs, one per kind, used across vaxhub.
CCCD_SYSTEM = "https://vaxhub.vn/fhir/sid/cccd"
CMND_SYSTEM = "https://vaxhub.vn/fhir/sid/cmnd"
BHXH_SYSTEM = "https://vaxhub.vn/fhir/sid/bhxh"
BHYT_SYSTEM = "https://vaxhub.vn/fhir/sid/bhyt"
IDENTIFIER_TYPE_SYSTEM = "http://terminology.hl7.org/CodeSystem/v2-0203"

IdentifierKind = Literal["cccd", "cmnd", "bhxh", "bhyt"]
Sex = Literal["male", "female"]

SYSTEMS: dict[str, str] = {
    "cccd": CCCD_SYSTEM,
    "cmnd": CMND_SYSTEM,
    "bhxh": BHXH_SYSTEM,
    "bhyt": BHYT_SYSTEM,
}

_SEPARATORS = re.compile(r"[\s.\-_/]+")
_BHYT = re.compile(r"([A-Z]{2})(\d)(\d{2})(\d{10})")
# Century of the birth year by the CCCD's fourth digit // 2.
_CENTURY_BY_PAIR = {0: 1900, 1: 2000, 2: 2100, 3: 2200, 4: 1800}
_PAIR_BY_CENTURY = {century: pair for pair, century in _CENTURY_BY_PAIR.items()}


def compact(raw: str) -> str:
    """The identifier without spaces, dots, dashes or slashes, upper-cased."""
    return _SEPARATORS.sub("", str(raw)).upper()


@dataclass(frozen=True)
class Cccd:
    """A parsed CCCD number."""

    number: str
    province: HistoricalProvince
    sex: Sex
    birth_year: int
    serial: str  # the six random digits


def parse_cccd(raw: str, *, today: date | None = None, expression: str | None = None) -> Cccd:
    """Parse and check a 12-digit CCCD.

    Raises `InvalidResource` when it is not 12 digits, its province code is
    not one of the 63, or its birth year is after `today`'s year.
    """
    number = compact(raw)
    if not (len(number) == 12 and number.isdigit()):
        raise invalid(f"CCCD must be 12 digits, got {raw!r}", expression)
    code = number[:3]
    try:
        province = historical_province_by_code(code)
    except InvalidResource:
        raise invalid(
            f"CCCD {number} starts with {code}, which is not a province code", expression
        ) from None
    digit = int(number[3])
    birth_year = _CENTURY_BY_PAIR[digit // 2] + int(number[4:6])
    current_year = (today or date.today()).year
    if birth_year > current_year:
        raise invalid(
            f"CCCD {number} encodes birth year {birth_year}, which is in the future", expression
        )
    sex: Sex = "female" if digit % 2 else "male"
    return Cccd(number, province, sex, birth_year, number[6:])


def build_cccd(province_code: str | int, sex: Sex, birth_year: int, serial: str | int) -> str:
    """Compose a CCCD from its parts (for fixtures and simulators)."""
    province = historical_province_by_code(province_code)
    century = birth_year // 100 * 100
    if century not in _PAIR_BY_CENTURY:
        raise ValueError(f"birth year {birth_year} has no CCCD century digit")
    digit = _PAIR_BY_CENTURY[century] * 2 + (1 if sex == "female" else 0)
    serial_text = f"{int(serial):06d}"
    if len(serial_text) != 6:
        raise ValueError("the serial has six digits")
    return f"{province.cccd_code}{digit}{birth_year % 100:02d}{serial_text}"


def cross_check_cccd(
    cccd: Cccd | str,
    *,
    gender: str | None = None,
    birth_date: str | date | None = None,
    expression: str | None = None,
) -> list[Issue]:
    """Warnings where a record disagrees with what its CCCD encodes.

    `gender` is a FHIR AdministrativeGender code; "other"/"unknown" are not
    compared. `birth_date` is a FHIR date string ("1990", "1990-05-17") or a
    date. Returns an empty list when everything agrees.
    """
    parsed = cccd if isinstance(cccd, Cccd) else parse_cccd(cccd, expression=expression)
    found: list[Issue] = []
    if gender in ("male", "female") and gender != parsed.sex:
        found.append(
            warning(
                f"CCCD {parsed.number} encodes sex {parsed.sex}, the record says {gender}",
                expression,
            )
        )
    if birth_date is not None:
        year = birth_date.year if isinstance(birth_date, date) else int(str(birth_date)[:4])
        if year != parsed.birth_year:
            found.append(
                warning(
                    f"CCCD {parsed.number} encodes birth year {parsed.birth_year}, "
                    f"the record says {year}",
                    expression,
                )
            )
    return found


def parse_cmnd(raw: str, *, expression: str | None = None) -> str:
    """Check an old identity card number: 9 or 12 digits."""
    number = compact(raw)
    if not (number.isdigit() and len(number) in (9, 12)):
        raise invalid(f"CMND must be 9 or 12 digits, got {raw!r}", expression)
    return number


def parse_bhxh(raw: str, *, expression: str | None = None) -> str:
    """Check a social insurance number: 10 digits."""
    number = compact(raw)
    if not (number.isdigit() and len(number) == 10):
        raise invalid(f"BHXH number must be 10 digits, got {raw!r}", expression)
    return number


@dataclass(frozen=True)
class Bhyt:
    """A parsed health insurance card number."""

    number: str  # 15 characters, e.g. "DN4797931234567"
    category: str  # beneficiary category, two letters
    benefit_level: int  # 1–5
    province_code: str  # two digits, the issuing province
    bhxh: str  # the holder's 10-digit BHXH number


def parse_bhyt(raw: str, *, expression: str | None = None) -> Bhyt:
    """Parse a 15-character BHYT card number and read its BHXH number."""
    number = compact(raw)
    match = _BHYT.fullmatch(number)
    if match is None:
        raise invalid(
            "BHYT card number must be 2 letters, 1 digit, a 2-digit province "
            f"code and a 10-digit BHXH number, got {raw!r}",
            expression,
        )
    level = int(match[2])
    if not 1 <= level <= 5:
        raise invalid(
            f"BHYT card {number} has benefit level {level}; levels run from 1 to 5", expression
        )
    return Bhyt(number, match[1], level, match[3], match[4])


def classify(raw: str, *, expression: str | None = None) -> IdentifierKind:
    """Which kind of identifier a raw string is, by its form alone.

    12 digits read as a CCCD (a 12-digit CMND has the same form), 9 digits
    as a CMND, 10 digits as a BHXH number, 2 letters and 13 digits as a BHYT
    card. Anything else raises `InvalidResource`.
    """
    number = compact(raw)
    if number.isdigit():
        kind = {12: "cccd", 9: "cmnd", 10: "bhxh"}.get(len(number))
        if kind is not None:
            return kind  # type: ignore[return-value]
    elif _BHYT.fullmatch(number):
        return "bhyt"
    raise invalid(
        f"{raw!r} is not a CCCD (12 digits), CMND (9 digits), BHXH number "
        "(10 digits) or BHYT card (2 letters, 13 digits)",
        expression,
    )


_TYPES: dict[str, tuple[str, str, str]] = {
    # kind: (v2-0203 code, its display, local name)
    "cccd": ("NI", "National unique individual identifier", "CCCD"),
    "cmnd": ("NI", "National unique individual identifier", "CMND"),
    "bhxh": ("SB", "Social Beneficiary Identifier", "BHXH"),
    "bhyt": ("NH", "National Health Plan Identifier", "BHYT"),
}
# CMND cards lapsed on 31 Dec 2024 (Law on Identification 2023, Art. 46):
# the number still helps matching, which is what FHIR's "old" use is for.
_USES = {"cccd": "official", "cmnd": "old"}


def _fhir_identifier(kind: IdentifierKind, value: str) -> dict:
    code, display, text = _TYPES[kind]
    identifier: dict = {}
    if kind in _USES:
        identifier["use"] = _USES[kind]
    identifier["type"] = {
        "coding": [{"system": IDENTIFIER_TYPE_SYSTEM, "code": code, "display": display}],
        "text": text,
    }
    identifier["system"] = SYSTEMS[kind]
    identifier["value"] = value
    return identifier


def fhir_identifier(
    raw: str,
    kind: IdentifierKind | None = None,
    *,
    today: date | None = None,
    expression: str | None = None,
) -> dict:
    """FHIR Identifier dict for a raw number, of the given kind or the one
    `classify` finds; the value is checked and written in compact form."""
    kind = kind or classify(raw, expression=expression)
    if kind == "cccd":
        value = parse_cccd(raw, today=today, expression=expression).number
    elif kind == "cmnd":
        value = parse_cmnd(raw, expression=expression)
    elif kind == "bhxh":
        value = parse_bhxh(raw, expression=expression)
    elif kind == "bhyt":
        value = parse_bhyt(raw, expression=expression).number
    else:
        raise invalid(f"unknown identifier kind {kind!r}", expression, code="not-supported")
    return _fhir_identifier(kind, value)
