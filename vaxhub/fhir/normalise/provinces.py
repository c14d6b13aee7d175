"""Vietnamese provinces: the 63 historical ones and the 34 since 1 July 2025.

Facts (tables in `provinces.json` beside this module):

- Historical codes are the two-digit provincial codes of Decision
  124/2004/QĐ-TTg; the CCCD prefixes them with a zero ("001" Hà Nội,
  "079" Hồ Chí Minh) under Circular 07/2016/TT-BCA and 59/2021/TT-BCA. They
  run 01–96 with gaps, and stay valid on CCCDs issued before the merger.
- Resolution 202/2025/QH15 merged the 63 into 34 (11 unchanged, 23 formed by
  merging two or three); the new units took office on 1 July 2025.
- Current codes are those of Decision 19/2025/QĐ-TTg. Each reuses the
  historical code of one of its members, so any code read as either old or
  new leads to the same current province.

Lookups accept any common spelling: with or without diacritics, "Tỉnh"/"TP."
prefixes, spaces, dots and hyphens ("TP.HCM", "Ha Noi", "Daklak", "BR-VT").
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources

from vaxhub.errors import InvalidResource, Issue
from vaxhub.fhir.text import fold

_NON_ALNUM = re.compile(r"[^0-9a-z]+")
# Administrative prefixes, compared after folding and dropping punctuation.
_PREFIXES = ("thanhpho", "tinh", "tp")


@dataclass(frozen=True)
class HistoricalProvince:
    """One of the 63 provinces in force until 30 June 2025."""

    code: str  # two digits, Decision 124/2004/QĐ-TTg
    name: str
    kind: str  # "city" (centrally-run) or "province"
    merged_into: str  # current code, Resolution 202/2025/QH15
    aliases: tuple[str, ...] = ()

    @property
    def cccd_code(self) -> str:
        """The three-digit form used as the first digits of a CCCD."""
        return "0" + self.code

    @property
    def folded_name(self) -> str:
        return fold(self.name)


@dataclass(frozen=True)
class CurrentProvince:
    """One of the 34 provinces in force since 1 July 2025."""

    code: str  # two digits, Decision 19/2025/QĐ-TTg
    name: str
    kind: str
    members: tuple[str, ...]  # historical codes merged into it
    aliases: tuple[str, ...] = ()

    @property
    def folded_name(self) -> str:
        return fold(self.name)


def province_key(text: str) -> str:
    """Spelling-independent key: folded, letters and digits only."""
    return _NON_ALNUM.sub("", fold(text))


def _candidate_keys(text: str) -> list[str]:
    key = province_key(text)
    keys = [key]
    for prefix in _PREFIXES:
        if key.startswith(prefix) and len(key) > len(prefix):
            keys.append(key[len(prefix):])
    return keys


@dataclass(frozen=True)
class _Tables:
    historical: dict[str, HistoricalProvince]
    current: dict[str, CurrentProvince]
    historical_by_key: dict[str, HistoricalProvince]
    current_by_key: dict[str, CurrentProvince]


@lru_cache(maxsize=1)
def _tables() -> _Tables:
    raw = json.loads(
        resources.files(__package__).joinpath("provinces.json").read_text(encoding="utf-8")
    )
    historical = {
        row["code"]: HistoricalProvince(
            row["code"], row["name"], row["kind"], row["merged_into"], tuple(row["aliases"])
        )
        for row in raw["historical"]
    }
    current = {
        row["code"]: CurrentProvince(
            row["code"],
            row["name"],
            row["kind"],
            tuple(h.code for h in historical.values() if h.merged_into == row["code"]),
            tuple(row["aliases"]),
        )
        for row in raw["current"]
    }
    historical_by_key: dict[str, HistoricalProvince] = {}
    for province in historical.values():
        for spelling in (province.name, *province.aliases):
            historical_by_key[province_key(spelling)] = province
    current_by_key: dict[str, CurrentProvince] = {}
    for province in current.values():
        for spelling in (province.name, *province.aliases):
            current_by_key[province_key(spelling)] = province
    return _Tables(historical, current, historical_by_key, current_by_key)


def historical_provinces() -> tuple[HistoricalProvince, ...]:
    """All 63 historical provinces, in code order."""
    return tuple(sorted(_tables().historical.values(), key=lambda p: p.code))


def current_provinces() -> tuple[CurrentProvince, ...]:
    """All 34 current provinces, in code order."""
    return tuple(sorted(_tables().current.values(), key=lambda p: p.code))


def _two_digit_code(code: str | int) -> str | None:
    text = str(code).strip()
    if not text.isdigit() or len(text) > 3:
        return None
    number = int(text)
    if len(text) == 3 and text[0] != "0":
        return None
    return f"{number:02d}"


def _unknown(what: str, value: object) -> InvalidResource:
    message = f"unknown {what}: {value!r}"
    return InvalidResource(message, [Issue(message, code="code-invalid")])


def historical_province_by_code(code: str | int) -> HistoricalProvince:
    """Historical province by its code: "001", "01", "1" or 1."""
    two = _two_digit_code(code)
    province = _tables().historical.get(two) if two else None
    if province is None:
        raise _unknown("historical province code", code)
    return province


def current_province_by_code(code: str | int) -> CurrentProvince:
    """Current province by a current code, or by a historical code (merged)."""
    two = _two_digit_code(code)
    tables = _tables()
    if two in tables.current:
        return tables.current[two]
    if two in tables.historical:
        return tables.current[tables.historical[two].merged_into]
    raise _unknown("province code", code)


def historical_province(spelling: str | int) -> HistoricalProvince:
    """Historical province by code or by any spelling of its name."""
    if _two_digit_code(spelling) is not None:
        return historical_province_by_code(spelling)
    tables = _tables()
    for key in _candidate_keys(str(spelling)):
        if key in tables.historical_by_key:
            return tables.historical_by_key[key]
    raise _unknown("historical province", spelling)


def current_province(spelling: str | int) -> CurrentProvince:
    """Current province for a code or spelling of a current or historical
    province: "Hà Giang" gives Tuyên Quang, "Bình Dương" gives Hồ Chí Minh."""
    if _two_digit_code(spelling) is not None:
        return current_province_by_code(spelling)
    tables = _tables()
    keys = _candidate_keys(str(spelling))
    for key in keys:
        if key in tables.current_by_key:
            return tables.current_by_key[key]
    for key in keys:
        if key in tables.historical_by_key:
            return tables.current[tables.historical_by_key[key].merged_into]
    raise _unknown("province", spelling)


def current_province_for(historical: HistoricalProvince) -> CurrentProvince:
    """The province a historical one was merged into (Resolution 202/2025/QH15)."""
    return _tables().current[historical.merged_into]


def province_in_address(address: str) -> CurrentProvince | None:
    """The current province named by the last recognisable comma-separated
    part of a free-text address ("…, Quận 1, TP.HCM"), or None."""
    for part in reversed(address.split(",")):
        # House numbers are not province codes.
        if not part.strip() or _two_digit_code(part) is not None:
            continue
        try:
            return current_province(part)
        except InvalidResource:
            continue
    return None
