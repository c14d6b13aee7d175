"""Telephone numbers to E.164 and FHIR ContactPoint.

Vietnamese numbers arrive as "0912 345 678", "84.912.345.678",
"+84-912-345-678", "912345678" (Excel drops the leading zero), or in the
11-digit mobile form retired in 2018. Those old prefixes are rewritten to
the 10-digit ones the Ministry of Information and Communications assigned
(conversion from 15 Sep 2018, old numbers withdrawn after 30 Jun 2019; the
last seven digits are kept). Validation and formatting are left to
`phonenumbers` (Google libphonenumber metadata), except for the commonest
case: a Vietnamese mobile number in national form is checked against that
library's own patterns for Viet Nam, read from its metadata when this module
loads, without parsing it (a tenth of translating a VXU message went to
parsing two phone numbers).
"""

from __future__ import annotations

import re

import phonenumbers
from phonenumbers import PhoneNumberType

from .issues import invalid

# Old 11-digit mobile prefix -> 10-digit prefix, by operator.
OLD_MOBILE_PREFIXES: dict[str, str] = {
    # Viettel
    "0162": "032", "0163": "033", "0164": "034", "0165": "035",
    "0166": "036", "0167": "037", "0168": "038", "0169": "039",
    # MobiFone
    "0120": "070", "0121": "079", "0122": "077", "0126": "076", "0128": "078",
    # VinaPhone
    "0123": "083", "0124": "084", "0125": "085", "0127": "081", "0129": "082",
    # Vietnamobile
    "0186": "056", "0188": "058",
    # Gmobile
    "0199": "059",
}

_SEPARATORS = re.compile(r"[\s.\-()/]+")


def _national_form(digits: str) -> str | None:
    """A Vietnamese number in national form "0…", or None if `digits` is
    not written as one."""
    if digits.startswith("+84"):
        return "0" + digits[3:]
    if digits.startswith("0084"):
        return "0" + digits[4:]
    if digits.startswith("84") and len(digits) in (11, 12):
        return "0" + digits[2:]
    if digits.startswith("0") and not digits.startswith("00"):
        return digits
    if digits.isdigit() and (len(digits) == 9 or (len(digits) == 10 and digits[0] == "1")):
        return "0" + digits  # leading zero lost in a spreadsheet
    return None


def upgrade_old_mobile(national: str) -> str:
    """Rewrite an 11-digit mobile number ("01683456789") to its 10-digit
    form ("0383456789"); other numbers are returned unchanged."""
    if len(national) == 11 and national[:4] in OLD_MOBILE_PREFIXES:
        return OLD_MOBILE_PREFIXES[national[:4]] + national[4:]
    return national


def _mobile_patterns() -> tuple[re.Pattern[str], list[re.Pattern[str]]]:
    """libphonenumber's pattern for Vietnamese mobile numbers (without the
    trunk 0), and those of every other type it checks before mobile."""
    metadata = phonenumbers.PhoneMetadata.metadata_for_region("VN")
    others = [metadata.general_desc] + [getattr(metadata, kind) for kind in (
        "premium_rate", "toll_free", "shared_cost", "voip", "personal_number", "pager", "uan", "voicemail", "fixed_line")]
    return re.compile(metadata.mobile.national_number_pattern), [re.compile(d.national_number_pattern) for d in others if d is not None]


_MOBILE, _OTHER_TYPES = _mobile_patterns()
_GENERAL = _OTHER_TYPES[0]


def _vietnamese_mobile(national: str) -> str | None:
    """E.164 of a national-form number ("0912345678") that libphonenumber
    would read as a valid Vietnamese mobile number; None for anything else."""
    nsn = national[1:]
    if len(nsn) != 9 or not (nsn.isascii() and nsn.isdigit()) or not _MOBILE.fullmatch(nsn) or not _GENERAL.fullmatch(nsn):
        return None
    if any(pattern.fullmatch(nsn) for pattern in _OTHER_TYPES[1:]):
        return None  # also another type: left to the library's own order of checks
    return "+84" + nsn


def _read(raw: str | int, expression: str | None) -> tuple[str, int]:
    """(E.164, libphonenumber's PhoneNumberType) of a valid number; raises `InvalidResource`."""
    digits = _SEPARATORS.sub("", str(raw).strip())
    if not digits:
        raise invalid("phone number is empty", expression, code="required")
    national = _national_form(digits)
    text = upgrade_old_mobile(national) if national is not None else digits
    if national is not None and (e164 := _vietnamese_mobile(text)) is not None:
        return e164, PhoneNumberType.MOBILE
    try:
        number = phonenumbers.parse(text, "VN")
    except phonenumbers.NumberParseException:
        raise invalid(f"{raw!r} is not a phone number", expression) from None
    if not phonenumbers.is_valid_number(number):
        raise invalid(f"{raw!r} is not a valid phone number", expression)
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164), phonenumbers.number_type(number)


def normalise_phone(raw: str | int, *, expression: str | None = None) -> str:
    """The number in E.164 ("+84912345678"); raises `InvalidResource`."""
    return _read(raw, expression)[0]


def is_mobile(raw: str | int) -> bool:
    """Whether a valid number is a mobile one."""
    return _read(raw, None)[1] in (PhoneNumberType.MOBILE, PhoneNumberType.FIXED_LINE_OR_MOBILE)


def contact_point(
    raw: str | int,
    *,
    use: str | None = None,
    rank: int | None = None,
    expression: str | None = None,
) -> dict:
    """FHIR R4 ContactPoint for a phone number, value in E.164. `use`
    defaults to "mobile" for a mobile number and is left out otherwise."""
    e164, kind = _read(raw, expression)
    point: dict = {"system": "phone", "value": e164}
    if use is None and kind == PhoneNumberType.MOBILE:
        use = "mobile"
    if use is not None:
        point["use"] = use
    if rank is not None:
        point["rank"] = rank
    return point
