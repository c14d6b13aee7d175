"""Certificate colour shown in the app for one vaccine's primary series.

- no dose: none;
- at least one dose, series not complete: yellow;
- doses given ≥ the series length (e.g. Janssen 1, most others 2): green.

The series length is the caller's knowledge (vaccine product catalogue).
"""

from __future__ import annotations

from enum import Enum

from vaxhub.errors import InputError


class CertificateColour(str, Enum):
    NONE = "none"
    YELLOW = "yellow"
    GREEN = "green"


def certificate_colour(doses_given: int, series_length: int) -> CertificateColour:
    """Colour after `doses_given` doses of a vaccine whose primary series has
    `series_length` doses."""
    if series_length < 1:
        raise InputError("a primary series has at least one dose")
    if doses_given < 0:
        raise InputError("the number of doses cannot be negative")
    if doses_given == 0:
        return CertificateColour.NONE
    if doses_given >= series_length:
        return CertificateColour.GREEN
    return CertificateColour.YELLOW


def colour_for_dcc_entry(entry: dict) -> CertificateColour:
    """Colour from a DCC vaccination entry's `dn`/`sd` (whole-number floats,
    seen in real codes, are accepted)."""
    dn, sd = entry.get("dn"), entry.get("sd")
    if not isinstance(dn, (int, float)) or not isinstance(sd, (int, float)):
        raise InputError("vaccination entry lacks dn/sd")
    return certificate_colour(int(dn), max(int(sd), 1))
