"""Dates as written in Vietnamese records, read into FHIR `date` strings.

FHIR R4 `date` (http://hl7.org/fhir/R4/datatypes.html#date) allows year,
year-month or full date. The precision written is the precision kept: "1990"
stays "1990", never 1990-01-01.

Accepted forms:

- ISO: "2021-07-15", "2021-07", "2021", and an ISO dateTime (its date part);
  "2021/07/15" as well;
- day first, as in Vietnamese practice: "15/07/2021", "5/7/2021",
  "15-07-2021", "15.07.2021", optionally followed by a time. "03/04/2021" is
  3 April 2021, never 4 March;
- month-year: "07/2021", "7-2021";
- eight digits "15072021" (ddmmyyyy, as on the chip-CCCD QR) or "20210715"
  (yyyymmdd, HL7 v2 DTM). When both readings are calendar dates the
  ddmmyyyy year is below 1300 (its first two digits are the yyyymmdd month),
  so ddmmyyyy is taken only with a year from 1300 on, else yyyymmdd;
- "ngày 15 tháng 07 năm 2021";
- `datetime.date` / `datetime.datetime` (its date);
- numbers as Excel serial dates in the 1900 date system (serial 1 is
  1900-01-01; Excel counts a 29 February 1900 that never was, serial 60, so
  later serials are one day ahead). A whole number 1800–2200 is a year typed
  into a cell, not a serial of 1904–1906.

Impossible dates raise `InvalidResource` with a message naming the date.
"""

from __future__ import annotations

import calendar
import math
import re
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Literal

from vaxhub.fhir.text import fold

from .issues import invalid

Precision = Literal["year", "month", "day"]

_TIME = r"(?:[ T]\d{1,2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:Z|[+-]\d{2}:?\d{2})?)?"
_ISO_DAY = re.compile(r"(\d{4})-(\d{1,2})-(\d{1,2})" + _TIME)
_ISO_MONTH = re.compile(r"(\d{4})-(\d{1,2})")
_YEAR = re.compile(r"\d{4}")
_YEAR_FIRST = re.compile(r"(\d{4})([/.])(\d{1,2})\2(\d{1,2})" + _TIME)
_DAY_FIRST = re.compile(r"(\d{1,2})([/.-])(\d{1,2})\2(\d{4})" + _TIME)
_MONTH_YEAR = re.compile(r"(\d{1,2})[/.-](\d{4})")
_EIGHT_DIGITS = re.compile(r"\d{8}")
_WORDS = re.compile(r"ngay\s*(\d{1,2})\s*thang\s*(\d{1,2})\s*nam\s*(\d{4})")

# Serials for the years 1904-1906 double as plausible years typed into cells.
_YEAR_AS_NUMBER = range(1800, 2201)
_EXCEL_EPOCH = date(1899, 12, 31)
_EXCEL_PHANTOM_LEAP_DAY = 60
_DDMMYYYY_MIN_YEAR = 1300


@dataclass(frozen=True)
class FhirDate:
    """A FHIR date string and how precise it is."""

    value: str  # "1990", "1990-05", "1990-05-17"
    precision: Precision

    @property
    def year(self) -> int:
        return int(self.value[:4])

    def as_date(self) -> date | None:
        """The calendar date when the precision is a day, else None."""
        return date.fromisoformat(self.value) if self.precision == "day" else None

    def __str__(self) -> str:
        return self.value


def _check_year(year: int, shown: str, expression: str | None) -> None:
    if not 1 <= year <= 9999:
        raise invalid(f"{shown!r} is not a date: year {year} is out of range", expression)


def _check_month(year: int, month: int, shown: str, expression: str | None) -> None:
    _check_year(year, shown, expression)
    if not 1 <= month <= 12:
        raise invalid(f"{shown!r} is not a date: there is no month {month}", expression)


def _day(year: int, month: int, day: int, shown: str, expression: str | None) -> FhirDate:
    _check_month(year, month, shown, expression)
    last = calendar.monthrange(year, month)[1]
    if day < 1:
        raise invalid(f"{shown!r} is not a date: there is no day {day}", expression)
    if day > last:
        raise invalid(
            f"{shown!r} is not a date: {calendar.month_name[month]} {year} has {last} days",
            expression,
        )
    return FhirDate(f"{year:04d}-{month:02d}-{day:02d}", "day")


def _month(year: int, month: int, shown: str, expression: str | None) -> FhirDate:
    _check_month(year, month, shown, expression)
    return FhirDate(f"{year:04d}-{month:02d}", "month")


def _year(year: int, shown: str, expression: str | None) -> FhirDate:
    _check_year(year, shown, expression)
    return FhirDate(f"{year:04d}", "year")


def _is_valid_day(year: int, month: int, day: int) -> bool:
    return 1 <= year and 1 <= month <= 12 and 1 <= day <= calendar.monthrange(year, month)[1]


def date_from_ddmmyyyy(text: str, expression: str | None = None) -> FhirDate:
    """Strict eight-digit day-month-year, as on the chip-CCCD QR."""
    if not _EIGHT_DIGITS.fullmatch(text):
        raise invalid(f"{text!r} is not a date in the form ddmmyyyy", expression)
    return _day(int(text[4:]), int(text[2:4]), int(text[:2]), text, expression)


def _from_eight_digits(text: str, expression: str | None) -> FhirDate:
    day, month, year = int(text[:2]), int(text[2:4]), int(text[4:])
    if not (year >= _DDMMYYYY_MIN_YEAR and _is_valid_day(year, month, day)):
        y, m, d = int(text[:4]), int(text[4:6]), int(text[6:])
        if _is_valid_day(y, m, d):
            return _day(y, m, d, text, expression)
    return _day(year, month, day, text, expression)


def excel_serial_to_date(serial: float, expression: str | None = None) -> date:
    """Calendar date of an Excel serial (1900 date system); the fraction,
    a time of day, is dropped."""
    if isinstance(serial, bool) or not math.isfinite(serial):
        raise invalid(f"{serial!r} is not an Excel serial date", expression)
    whole = math.floor(serial)
    if whole < 1:
        raise invalid(f"Excel serial {serial!r} is before 1900-01-01", expression)
    if whole == _EXCEL_PHANTOM_LEAP_DAY:
        raise invalid(
            "Excel serial 60 is 1900-02-29, a day that does not exist "
            "(Excel treats 1900 as a leap year)",
            expression,
        )
    offset = whole if whole < _EXCEL_PHANTOM_LEAP_DAY else whole - 1
    try:
        return _EXCEL_EPOCH + timedelta(days=offset)
    except OverflowError as exc:
        raise invalid(f"Excel serial {serial!r} is after 9999-12-31", expression) from exc


def date_to_excel_serial(value: date) -> int:
    """Excel serial (1900 date system) of a date from 1900-03-01 on."""
    if value < date(1900, 3, 1):
        raise ValueError("serials before 1900-03-01 are ambiguous in Excel")
    return (value - _EXCEL_EPOCH).days + 1


def _from_number(value: float, expression: str | None) -> FhirDate:
    if float(value).is_integer() and int(value) in _YEAR_AS_NUMBER:
        return _year(int(value), str(int(value)), expression)
    return FhirDate(excel_serial_to_date(value, expression).isoformat(), "day")


def _from_text(raw: str, expression: str | None) -> FhirDate:
    text = raw.strip()
    if not text:
        raise invalid("date is empty", expression, code="required")
    if _YEAR.fullmatch(text):
        return _year(int(text), text, expression)
    if m := _ISO_MONTH.fullmatch(text):
        return _month(int(m[1]), int(m[2]), text, expression)
    if m := _ISO_DAY.fullmatch(text):
        return _day(int(m[1]), int(m[2]), int(m[3]), text, expression)
    if m := _YEAR_FIRST.fullmatch(text):
        return _day(int(m[1]), int(m[3]), int(m[4]), text, expression)
    if m := _DAY_FIRST.fullmatch(text):
        return _day(int(m[4]), int(m[3]), int(m[1]), text, expression)
    if m := _MONTH_YEAR.fullmatch(text):
        return _month(int(m[2]), int(m[1]), text, expression)
    if _EIGHT_DIGITS.fullmatch(text):
        return _from_eight_digits(text, expression)
    if m := _WORDS.fullmatch(fold(text)):
        return _day(int(m[3]), int(m[2]), int(m[1]), text, expression)
    raise invalid(
        f"{text!r} is not a date (expected e.g. 15/07/2021, 2021-07-15, 07/2021 or 1990)",
        expression,
    )


def parse_date(
    value: str | date | int | float,
    *,
    not_after: date | None = None,
    expression: str | None = None,
) -> FhirDate:
    """Read any accepted form (see the module docstring) into a FHIR date.

    `not_after` rejects dates later than it, compared at the precision given:
    "2030" is later than 2026-05-01, "2026" is not.
    """
    if isinstance(value, datetime):
        result = FhirDate(value.date().isoformat(), "day")
    elif isinstance(value, date):
        result = FhirDate(value.isoformat(), "day")
    elif isinstance(value, bool):
        raise invalid(f"{value!r} is not a date", expression)
    elif isinstance(value, (int, float)):
        result = _from_number(value, expression)
    elif isinstance(value, str):
        result = _from_text(value, expression)
    else:
        raise invalid(f"{value!r} is not a date", expression)
    if not_after is not None:
        _check_not_after(result, not_after, "date", expression)
    return result


def _check_not_after(result: FhirDate, limit: date, label: str, expression: str | None) -> None:
    # Compare at the precision written: "2026" is not after 2026-05-01.
    if result.value > limit.isoformat()[: len(result.value)]:
        raise invalid(
            f"{label} {result.value} is in the future (after {limit.isoformat()})", expression
        )


def parse_birth_date(
    value: str | date | int | float,
    *,
    today: date | None = None,
    expression: str | None = "Patient.birthDate",
) -> FhirDate:
    """`parse_date` for a birth date, which may not be in the future."""
    result = parse_date(value, expression=expression)
    _check_not_after(result, today or date.today(), "birth date", expression)
    return result
