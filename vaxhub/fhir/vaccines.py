"""The code table of COVID-19 vaccines used in Viet Nam's 2021-22 programme.

Each vaccine has a stable code of our own (`VAXZEVRIA`, `BBIBP-CORV`, …), its
CDC CVX code where one exists (Abdala and Hayat-Vax have none), and its EU DCC
codes: `mp` (medicinal product), `ma` (marketing-authorisation holder or
manufacturer) and `vp` (prophylaxis), from the eHealth Network value sets
(HCERT value sets v1.x, `vaccine-medicinal-product.json`,
`vaccine-mah-manf.json`, `vaccine-prophylaxis.json`; `vp` follows the
value sets' encoding instructions, preferring the specific SNOMED CT concept).

`lookup` takes any of our codes, a CVX code, a DCC product code or a spelling
seen in spreadsheets and HL7 feeds ("AZ", "Vero Cell", "J&J", "vắc xin
Pfizer"), and refuses anything else rather than guessing. Where two of our
vaccines share a CVX or DCC code (Vaxzevria and Covishield share CVX 210; adult
and paediatric Comirnaty share `EU/1/20/1528`), the code resolves to the first
in table order, the originator or adult product.

The table itself is package data (`data/vaccines.json`), read once on first use.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import date
from functools import lru_cache
from importlib import resources
from typing import Any

from vaxhub.errors import InvalidResource, Issue
from vaxhub.fhir.text import fold

VACCINE_SYSTEM = "https://vaxhub.vn/fhir/CodeSystem/vaccine"
CVX_SYSTEM = "http://hl7.org/fhir/sid/cvx"

# Viet Nam's Ministry of Health: a first booster at least 3 months after the
# primary series, a second booster at least 4 months after the first.
BOOSTER_INTERVAL_DAYS = 90
SECOND_BOOSTER_INTERVAL_DAYS = 120

# Words that decorate a product name in free text without naming a product.
_NOISE = re.compile(
    r"\b(?:vac ?-? ?xin|vaccine|vaccin|vakzin|covid ?-? ?19|covid|sars ?-? ?cov ?-? ?2)\b"
)
_NOT_ALNUM = re.compile(r"[^a-z0-9]")


@dataclass(frozen=True, slots=True)
class Vaccine:
    """One vaccine product as recorded in Viet Nam.

    `interval_days` is the recommended interval between doses of the primary
    series and `min_interval_days` the shortest accepted one (both `None` for a
    one-dose series). `in_use_from` is the approximate date the product entered
    the national programme; `used_as_booster` says whether it was offered as a
    booster there.
    """

    code: str
    display: str
    manufacturer: str
    cvx: str | None
    cvx_display: str | None
    dcc_mp: str
    dcc_ma: str
    dcc_vp: str
    primary_doses: int
    interval_days: int | None
    min_interval_days: int | None
    min_age_years: int
    max_age_years: int | None
    in_use_from: date
    used_as_booster: bool
    aliases: tuple[str, ...]

    def days_to_next_dose(self, doses_given: int) -> int:
        """Recommended days from dose number `doses_given` to the next dose,
        within the primary series or on to the first and second boosters."""
        if doses_given < 1:
            raise ValueError("doses_given counts doses already given, from 1")
        if doses_given < self.primary_doses:
            assert self.interval_days is not None
            return self.interval_days
        if doses_given == self.primary_doses:
            return BOOSTER_INTERVAL_DAYS
        return SECOND_BOOSTER_INTERVAL_DAYS

    def suits_age(self, age_years: int) -> bool:
        return age_years >= self.min_age_years and (
            self.max_age_years is None or age_years <= self.max_age_years
        )


def spelling_key(text: str) -> str:
    """The key under which a spelling is matched: folded (no diacritics, no
    case), decorations such as "vắc xin" or "COVID-19" removed, then only
    letters and digits, so "Astra-Zeneca", "ASTRA ZENECA" and "astrazeneca"
    meet."""
    folded = fold(text)
    stripped = _NOISE.sub(" ", folded)
    key = _NOT_ALNUM.sub("", stripped)
    # A bare "COVID-19 vaccine" names no product: keep its full form, which no
    # vaccine carries, so it is refused rather than matched to an empty key.
    return key or _NOT_ALNUM.sub("", folded)


class _Table:
    def __init__(self, vaccines: tuple[Vaccine, ...]):
        self.vaccines = vaccines
        self.by_code = {v.code: v for v in vaccines}
        self.by_cvx: dict[str, Vaccine] = {}
        self.by_mp: dict[str, Vaccine] = {}
        self.by_spelling: dict[str, Vaccine] = {}
        for v in vaccines:
            if v.cvx is not None:
                self.by_cvx.setdefault(v.cvx, v)
            self.by_mp.setdefault(v.dcc_mp, v)
        # Codes first, so a spelling can never shadow a code.
        for v in vaccines:
            for spelling in (v.code, v.dcc_mp):
                self.by_spelling.setdefault(spelling_key(spelling), v)
        for v in vaccines:
            for spelling in (v.display, *v.aliases):
                key = spelling_key(spelling)
                held = self.by_spelling.setdefault(key, v)
                if held is not v:
                    raise ValueError(
                        f"vaccine table: spelling {spelling!r} of {v.code} "
                        f"already names {held.code}"
                    )


def _vaccine_from_json(row: dict[str, Any]) -> Vaccine:
    return Vaccine(
        code=row["code"],
        display=row["display"],
        manufacturer=row["manufacturer"],
        cvx=row["cvx"],
        cvx_display=row["cvx_display"],
        dcc_mp=row["dcc_mp"],
        dcc_ma=row["dcc_ma"],
        dcc_vp=row["dcc_vp"],
        primary_doses=row["primary_doses"],
        interval_days=row["interval_days"],
        min_interval_days=row["min_interval_days"],
        min_age_years=row["min_age_years"],
        max_age_years=row["max_age_years"],
        in_use_from=date.fromisoformat(row["in_use_from"]),
        used_as_booster=row["used_as_booster"],
        aliases=tuple(row["aliases"]),
    )


@lru_cache(maxsize=1)
def _table() -> _Table:
    raw = resources.files("vaxhub.fhir").joinpath("data/vaccines.json").read_text("utf-8")
    rows = json.loads(raw)["vaccines"]
    return _Table(tuple(_vaccine_from_json(row) for row in rows))


def _unknown(kind: str, value: object) -> InvalidResource:
    known = ", ".join(v.code for v in _table().vaccines)
    message = (
        f"unknown vaccine {kind} {value!r}: not one of the COVID-19 vaccines used "
        f"in Viet Nam ({known})"
    )
    return InvalidResource(message, [Issue(message, code="code-invalid")])


def all_vaccines() -> tuple[Vaccine, ...]:
    """Every vaccine in the table, in table order."""
    return _table().vaccines


def lookup(code_or_name: str) -> Vaccine:
    """The vaccine named by one of our codes, a CVX code, an EU DCC `mp` code
    or a known spelling. Raises `InvalidResource` for anything else."""
    if not isinstance(code_or_name, str) or not code_or_name.strip():
        raise _unknown("name", code_or_name)
    table = _table()
    text = code_or_name.strip()
    found = table.by_code.get(text) or table.by_mp.get(text) or table.by_cvx.get(text)
    if found is None:
        found = table.by_spelling.get(spelling_key(text))
    if found is None:
        raise _unknown("name", code_or_name)
    return found


def by_cvx(cvx: str | int) -> Vaccine:
    """The vaccine with this CDC CVX code (http://hl7.org/fhir/sid/cvx)."""
    found = _table().by_cvx.get(str(cvx).strip())
    if found is None:
        raise _unknown("CVX code", cvx)
    return found


def by_dcc_product(mp: str) -> Vaccine:
    """The vaccine with this EU DCC medicinal-product (`v.mp`) code."""
    found = _table().by_mp.get(mp.strip()) if isinstance(mp, str) else None
    if found is None:
        raise _unknown("EU DCC product code", mp)
    return found


def vaccine_codeable_concept(vaccine: Vaccine) -> dict[str, Any]:
    """FHIR R4 CodeableConcept for `Immunization.vaccineCode`: the CVX coding
    where there is one, and always our own coding."""
    coding: list[dict[str, str]] = []
    if vaccine.cvx is not None:
        cvx: dict[str, str] = {"system": CVX_SYSTEM, "code": vaccine.cvx}
        if vaccine.cvx_display:
            cvx["display"] = vaccine.cvx_display
        coding.append(cvx)
    coding.append({"system": VACCINE_SYSTEM, "code": vaccine.code, "display": vaccine.display})
    return {"coding": coding, "text": vaccine.display}
