"""When a claimed value agrees with the registry's value.

The in-memory fake and the SOAP simulator both decide agreement here, so
they cannot disagree with each other.

- Names agree when they are the same letters in any case, spacing or Unicode
  form (NFC/NFD): "NGUYỄN  văn An" agrees with "Nguyễn Văn An". A different
  spelling, including missing or different diacritics ("Nguyen Van An"), is a
  mismatch: the registry is the reference for the spelling.
- Birth dates agree at the precision both sides know: a year-only "1990"
  agrees with "1990-03-04"; "1990-03-04" and "1990-04-03" do not.
- Sex codes agree when equal after case folding.
"""

from __future__ import annotations

import re

from vaxhub.adapters.ports import PersonClaim
from vaxhub.fhir.text import nfc

CCCD_PATTERN = re.compile(r"^\d{12}$")
CMND_PATTERN = re.compile(r"^(\d{9}|\d{12})$")
BHXH_PATTERN = re.compile(r"^\d{10}$")
PARTIAL_DATE_PATTERN = re.compile(r"^\d{4}(-\d{2}(-\d{2})?)?$")


def names_agree(claimed: str, registered: str) -> bool:
    """Same letters, ignoring case, whitespace runs and Unicode normal form."""
    return nfc(claimed).casefold() == nfc(registered).casefold()


def birth_dates_agree(claimed: str, registered: str) -> bool:
    """Equal at the precision of the less precise of the two ISO dates."""
    claimed, registered = claimed.strip(), registered.strip()
    if not (PARTIAL_DATE_PATTERN.match(claimed) and PARTIAL_DATE_PATTERN.match(registered)):
        return claimed == registered
    precision = min(len(claimed), len(registered))
    return claimed[:precision] == registered[:precision]


def sexes_agree(claimed: str, registered: str) -> bool:
    return claimed.strip().casefold() == registered.strip().casefold()


def disagreeing_fields(
    claim: PersonClaim, *, full_name: str, birth_date: str, sex: str
) -> dict[str, tuple[str, str]]:
    """`{field: (claimed, registered)}` for each compared field that disagrees."""
    checks = (
        ("full_name", claim.full_name, full_name, names_agree),
        ("birth_date", claim.birth_date, birth_date, birth_dates_agree),
        ("sex", claim.sex, sex, sexes_agree),
    )
    return {name: (mine, theirs) for name, mine, theirs, agree in checks if not agree(mine, theirs)}


SEX_CODES = frozenset({"male", "female", "other", "unknown"})


def claim_problem(claim: PersonClaim) -> str | None:
    """Why the claim cannot be put to the registry as it stands, or None."""
    if claim_identifier(claim) is None:
        return "the claim has no well-formed CCCD (12 digits) or CMND (9 or 12 digits)"
    if not 1 <= len(nfc(claim.full_name)) <= 200:
        return "the claim's name is empty or longer than 200 characters"
    if not PARTIAL_DATE_PATTERN.match(claim.birth_date.strip()):
        return f"birth date {claim.birth_date!r} is not YYYY, YYYY-MM or YYYY-MM-DD"
    if claim.sex not in SEX_CODES:
        return f"sex {claim.sex!r} is not one of {', '.join(sorted(SEX_CODES))}"
    return None


def claim_identifier(claim: PersonClaim) -> tuple[str, str] | None:
    """`("cccd", value)` or `("cmnd", value)` to ask the registry with, or None
    when the claim carries no well-formed identifier."""
    if claim.cccd and CCCD_PATTERN.match(claim.cccd.strip()):
        return "cccd", claim.cccd.strip()
    if claim.cmnd and CMND_PATTERN.match(claim.cmnd.strip()):
        return "cmnd", claim.cmnd.strip()
    return None
