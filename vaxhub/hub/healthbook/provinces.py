"""A Patient's province as the hub reports it: the first address's `state`,
mapped to one of the 63 historical provinces the programme ran with."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from sqlalchemy import ColumnElement

from vaxhub.errors import InvalidResource
from vaxhub.fhir.normalise.provinces import historical_province, historical_province_by_code

UNKNOWN_PROVINCE = "??"


def patient_state(table: Any) -> ColumnElement:
    """SQL for a Patient row's first address's state, as stored."""
    return table.c.content[("address", 0, "state")].as_string()


@lru_cache(maxsize=1024)
def province_code(state: str | None) -> str:
    """Two-digit historical province code of a stored state; `??` when unknown."""
    if not state:
        return UNKNOWN_PROVINCE
    try:
        return historical_province(state).code
    except InvalidResource:
        return UNKNOWN_PROVINCE


def wanted_province(code_or_name: str | None) -> str | None:
    """A province filter as its two-digit code; InvalidResource when it names none."""
    if code_or_name is None or not code_or_name.strip():
        return None
    text = code_or_name.strip()
    return historical_province_by_code(text).code if text.isdigit() else historical_province(text).code
