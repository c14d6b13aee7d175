"""The Ministry's backlog column set and loose matching of header cells.

Person columns: họ và tên, giới tính, ngày sinh, số điện thoại, số CCCD/CMND,
số thẻ BHYT, dân tộc, quốc tịch, tỉnh, huyện, xã, địa chỉ. Dose columns, once
per dose: loại vắc xin, ngày tiêm, lô vắc xin, mã cơ sở tiêm, numbered ("Mũi 1
- Loại vắc xin", "ngày tiêm mũi 2", "Dose 3 date") or not (one dose per row).

Headers are matched after folding (no diacritics, no case, punctuation as
spaces), so "Họ và tên", "HO VA TEN" and "ho_va_ten" meet; English headers too;
a near miss ("Ngay sinh:", "Ho ten") is accepted by a fuzzy ratio (rapidfuzz).
The header row is found among the first rows, below any title rows.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from rapidfuzz import fuzz

from vaxhub.fhir.text import fold

PERSON_FIELDS: dict[str, tuple[str, ...]] = {
    "full_name": ("họ và tên", "họ tên", "họ và tên người tiêm", "tên", "full name", "name", "patient name"),
    "gender": ("giới tính", "giới", "phái", "sex", "gender"),
    "birth_date": ("ngày sinh", "ngày tháng năm sinh", "năm sinh", "date of birth", "birth date", "birthdate", "dob"),
    "phone": ("số điện thoại", "điện thoại", "sđt", "số đt", "phone", "phone number", "mobile", "telephone"),
    "id_number": (
        "số cccd/cmnd", "cccd/cmnd", "số cmnd/cccd", "cmnd/cccd", "số cccd", "cccd", "cmnd", "số cmnd", "số định danh",
        "số định danh cá nhân", "id number", "national id", "citizen id", "identity number",
    ),
    "bhyt": ("số thẻ bhyt", "thẻ bhyt", "bhyt", "mã thẻ bhyt", "health insurance card", "health insurance number", "insurance number"),
    "ethnicity": ("dân tộc", "ethnicity", "ethnic group"),
    "nationality": ("quốc tịch", "nationality", "citizenship"),
    "province": ("tỉnh", "tỉnh/thành phố", "tỉnh/tp", "tỉnh thành", "province", "city/province"),
    "district": ("huyện", "quận/huyện", "huyện/quận", "district"),
    "commune": ("xã", "xã/phường", "phường/xã", "xã/phường/thị trấn", "commune", "ward"),
    "address": ("địa chỉ", "địa chỉ chi tiết", "số nhà", "địa chỉ nơi ở", "address", "street address", "home address"),
}
DOSE_FIELDS: dict[str, tuple[str, ...]] = {
    "vaccine": ("loại vắc xin", "tên vắc xin", "vắc xin", "loại vaccine", "vaccine", "vaccine type", "vaccine name"),
    "date": ("ngày tiêm", "ngày tiêm chủng", "vaccination date", "date of vaccination", "date given", "dose date", "date"),
    "lot": ("lô vắc xin", "số lô", "lô", "số lô vắc xin", "lot", "lot number", "batch", "batch number"),
    "site": ("mã cơ sở tiêm", "mã cơ sở", "cơ sở tiêm", "mã điểm tiêm", "site code", "facility code", "vaccination site"),
}
LABELS: dict[str, str] = {
    "full_name": "họ và tên", "gender": "giới tính", "birth_date": "ngày sinh", "phone": "số điện thoại",
    "id_number": "số CCCD/CMND", "bhyt": "số thẻ BHYT", "ethnicity": "dân tộc", "nationality": "quốc tịch",
    "province": "tỉnh", "district": "huyện", "commune": "xã", "address": "địa chỉ",
    "vaccine": "loại vắc xin", "date": "ngày tiêm", "lot": "lô vắc xin", "site": "mã cơ sở tiêm",
}
# Columns a row report adds; a report sent back as a fixed file keeps them, and they mean nothing here.
REPORT_HEADERS = ("Dòng gốc / Source row", "Kết quả / Result", "Lỗi cần sửa / Problems")
_REPORT_KEYS = {fold(h) for h in REPORT_HEADERS}
_NOT_ALNUM = re.compile(r"[^a-z0-9]+")
_DOSE_NUMBER = re.compile(r"\b(?:mui|dose|lan|m|d)\s*(?:thu|so|no)?\s*(\d{1,2})\b|^(\d{1,2})\b|\b(\d{1,2})$")
FUZZY_THRESHOLD = 88
REQUIRED = ("full_name",)


def header_key(text: object) -> str:
    return _NOT_ALNUM.sub(" ", fold(str(text or ""))).strip()


_PERSON_KEYS = {header_key(a): name for name, aliases in PERSON_FIELDS.items() for a in aliases}
_DOSE_KEYS = {header_key(a): name for name, aliases in DOSE_FIELDS.items() for a in aliases}


@dataclass(frozen=True)
class Column:
    index: int  # 0-based position in the row
    header: str  # as written in the file
    field: str  # "full_name", … or a dose field
    dose: int | None = None  # dose number for dose fields (1 when unnumbered)


@dataclass
class ColumnMap:
    person: dict[str, Column] = field(default_factory=dict)
    doses: dict[int, dict[str, Column]] = field(default_factory=dict)
    unused: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    @property
    def matched(self) -> int:
        return len(self.person) + sum(len(d) for d in self.doses.values())

    def header_of(self, field_name: str, dose: int | None = None) -> str:
        column = self.doses.get(dose or 0, {}).get(field_name) if dose else self.person.get(field_name)
        return column.header if column else LABELS.get(field_name, field_name)


def _best(key: str, table: dict[str, str]) -> str | None:
    if key in table:
        return table[key]
    if len(key) < 4:
        return None
    best, score = None, 0.0
    for alias, name in table.items():
        s = fuzz.ratio(key, alias)
        if s > score:
            best, score = name, s
    return best if score >= FUZZY_THRESHOLD else None


def classify_header(text: object) -> tuple[str, int | None] | None:
    """(field, dose number or None) for one header cell, or None when it names nothing we read."""
    key = header_key(text)
    if not key or key in _REPORT_KEYS:
        return None
    person = _best(key, _PERSON_KEYS)
    if person is not None and key in _PERSON_KEYS:
        return person, None
    match = _DOSE_NUMBER.search(key)
    if match:
        number = int(next(g for g in match.groups() if g))
        rest = (key[: match.start()] + " " + key[match.end() :]).strip()
        rest = re.sub(r"\s+", " ", rest)
        dose_field = _best(rest, _DOSE_KEYS) if rest else None
        if dose_field and 1 <= number <= 20:
            return dose_field, number
    dose_field = _best(key, _DOSE_KEYS)
    if dose_field:
        return dose_field, 1
    return (person, None) if person else None


def match_columns(headers: list[object]) -> ColumnMap:
    """Map a header row to fields; report duplicates and missing required columns."""
    found = ColumnMap()
    for index, cell in enumerate(headers):
        text = str(cell).strip() if cell is not None else ""
        if not text:
            continue
        hit = classify_header(text)
        if hit is None:
            if header_key(text) not in _REPORT_KEYS:
                found.unused.append(text)
            continue
        name, dose = hit
        column = Column(index, text, name, dose)
        slot = found.person if dose is None else found.doses.setdefault(dose, {})
        if name in slot:
            found.problems.append(f"columns {slot[name].header!r} and {text!r} both read as {LABELS[name]!r}")
            continue
        slot[name] = column
    for name in REQUIRED:
        if name not in found.person:
            found.problems.append(f"no column for {LABELS[name]!r} (Vietnamese or English header)")
    if not any("vaccine" in d and "date" in d for d in found.doses.values()):
        found.problems.append("no dose columns: each dose needs 'loại vắc xin' and 'ngày tiêm'")
    return found


def find_header_row(rows: list[list[object]]) -> int | None:
    """Index of the first of `rows` that reads as a header (three or more fields)."""
    for i, row in enumerate(rows):
        if sum(1 for cell in row if cell is not None and str(cell).strip() and classify_header(cell)) >= 3:
            return i
    return None
