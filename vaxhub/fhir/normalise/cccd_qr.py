"""The QR code on the chip CCCD card, read into a FHIR Patient.

The code holds seven fields separated by "|":

    CCCD|CMND|full name|ddmmyyyy|sex|address|issue ddmmyyyy
    001203012345|013456789|Nguyễn Văn An|12052003|Nam|Số 1 Tràng Tiền, Hoàn Kiếm, Hà Nội|10082021

The CMND field is empty for people who never held a 9-digit card. Sex is
"Nam" (male) or "Nữ" (female). A malformed field raises `InvalidResource`
naming the field; a CCCD that disagrees with the printed sex or birth year
is kept, with warnings.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from vaxhub.errors import Issue
from vaxhub.fhir.text import fold, nfc

from .dates import FhirDate, date_from_ddmmyyyy
from .identifiers import Cccd, cross_check_cccd, fhir_identifier, parse_cccd, parse_cmnd
from .issues import invalid
from .names import VietnameseName, split_name

FIELDS = ("CCCD", "CMND", "full name", "date of birth", "sex", "address", "date of issue")
_SEX = {"nam": "male", "nu": "female"}


def _where(index: int) -> str:
    return f"CCCD QR field {index + 1} ({FIELDS[index]})"


@dataclass(frozen=True)
class CccdQrCard:
    """The contents of a chip-CCCD QR code, checked."""

    cccd: Cccd
    cmnd: str | None
    name: VietnameseName
    birth_date: FhirDate
    gender: str  # FHIR AdministrativeGender
    address: str
    issued: FhirDate
    warnings: tuple[Issue, ...] = ()

    def to_patient(self) -> dict:
        """FHIR R4 Patient: both numbers, name, gender, birth date, address.
        The card's issue date is the CCCD identifier's period start."""
        cccd = fhir_identifier(self.cccd.number, "cccd")
        cccd["period"] = {"start": self.issued.value}
        identifiers = [cccd]
        if self.cmnd:
            identifiers.append(fhir_identifier(self.cmnd, "cmnd"))
        patient: dict = {
            "resourceType": "Patient",
            "identifier": identifiers,
            "name": [self.name.to_fhir()],
            "gender": self.gender,
            "birthDate": self.birth_date.value,
        }
        if self.address:
            patient["address"] = [{"use": "home", "text": self.address, "country": "VN"}]
        return patient


def parse_cccd_qr(text: str, *, today: date | None = None) -> CccdQrCard:
    """Split and check a chip-CCCD QR string (see the module docstring)."""
    fields = nfc(text).split("|")
    # Some readers append empty fields; anything else is not this format.
    while len(fields) > len(FIELDS) and not fields[-1].strip():
        fields.pop()
    if len(fields) != len(FIELDS):
        raise invalid(
            f"CCCD QR must have {len(FIELDS)} fields separated by '|' "
            f"({'|'.join(FIELDS)}), got {len(fields)}",
            "CCCD QR",
            code="structure",
        )
    fields = [field.strip() for field in fields]
    raw_cccd, raw_cmnd, raw_name, raw_birth, raw_sex, address, raw_issued = fields
    if not raw_cccd:
        raise invalid("CCCD number is missing", _where(0), code="required")
    cccd = parse_cccd(raw_cccd, today=today, expression=_where(0))
    cmnd = parse_cmnd(raw_cmnd, expression=_where(1)) if raw_cmnd else None
    if not raw_name:
        raise invalid("full name is missing", _where(2), code="required")
    name = split_name(raw_name, order="family-first")
    birth_date = date_from_ddmmyyyy(raw_birth, _where(3))
    gender = _SEX.get(fold(raw_sex))
    if gender is None:
        raise invalid(f"sex must be 'Nam' or 'Nữ', got {raw_sex!r}", _where(4))
    issued = date_from_ddmmyyyy(raw_issued, _where(6))
    current = today or date.today()
    for fhir_date, index in ((birth_date, 3), (issued, 6)):
        if fhir_date.value > current.isoformat():
            raise invalid(f"{fhir_date.value} is in the future", _where(index))
    if issued.value < birth_date.value:
        raise invalid(
            f"the card was issued ({issued.value}) before its holder was born "
            f"({birth_date.value})",
            _where(6),
        )
    warnings = cross_check_cccd(
        cccd, gender=gender, birth_date=birth_date.value, expression=_where(0)
    )
    return CccdQrCard(cccd, cmnd, name, birth_date, gender, address, issued, tuple(warnings))


def cccd_qr_to_patient(text: str, *, today: date | None = None) -> dict:
    """FHIR Patient dict straight from a chip-CCCD QR string."""
    return parse_cccd_qr(text, today=today).to_patient()
