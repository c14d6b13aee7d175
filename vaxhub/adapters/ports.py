"""The ports through which vaxhub asks national registries about people.

Two outside services, each a small `typing.Protocol`:

- `PopulationRegistry`: the national population registry (Bộ Công an,
  reached over X-Road/SOAP): does this person exist with these details, and
  which 12-digit CCCD replaced an old 9- or 12-digit CMND?
- `SocialInsurance`: the social insurance registry (BHXH, reached over REST):
  who holds this insurance number, and is their health insurance card valid?

Each port has an in-memory fake (`vaxhub.adapters.fakes`) and a real client
(`vaxhub.adapters.population_soap`, `vaxhub.adapters.social_insurance_rest`);
one contract suite (`tests/contract/test_registry_contract.py`) runs against
all of them. Adapters raise `vaxhub.adapters.errors.RegistryError`
subclasses when the service fails; a definitive answer about the person is a
`VerificationResult`, never an exception.

Dates are ISO 8601 strings at the precision known: "1990", "1990-03" or
"1990-03-04" (many people born before 1975 have a year-only birth date).
Sex uses the FHIR AdministrativeGender codes ("male", "female", "other",
"unknown").
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Protocol, runtime_checkable

#: Fields of a `PersonClaim` that the population registry compares.
COMPARED_FIELDS = ("full_name", "birth_date", "sex")


class VerificationStatus(StrEnum):
    """Outcome of checking a claim against the population registry."""

    VERIFIED = "verified"  # every compared field agrees
    MISMATCH = "mismatch"  # the person exists, at least one field disagrees
    NOT_FOUND = "not_found"  # no person holds the id claimed
    ERROR = "error"  # the claim cannot be checked as given (no usable id)


@dataclass(frozen=True)
class PersonClaim:
    """What a vaccination site tells us about a person.

    At least one of `cccd` (12-digit citizen identity card) and `cmnd` (old
    9- or 12-digit identity card) is needed to ask the registry; when both are
    given the CCCD is used. `birth_date` may be year-only ("1990").
    """

    full_name: str
    birth_date: str
    sex: str
    cccd: str | None = None
    cmnd: str | None = None
    bhxh: str | None = None


@dataclass(frozen=True)
class VerificationResult:
    """The registry's answer about a `PersonClaim`.

    `mismatches` maps each disagreeing field to `(claimed, registry value)`,
    e.g. `{"birth_date": ("1990-03-04", "1990-04-03")}`; the registry value is
    None where the protocol withholds it. `current_id` is the person's current
    CCCD as the registry holds it (also for a claim made with an old CMND).
    """

    status: VerificationStatus
    current_id: str | None = None
    mismatches: Mapping[str, tuple[str, str | None]] = field(default_factory=dict)
    message: str | None = None

    @property
    def verified(self) -> bool:
        return self.status is VerificationStatus.VERIFIED


@dataclass(frozen=True)
class Coverage:
    """A health insurance card (thẻ BHYT): 15-character card number and its validity."""

    card_number: str
    valid_from: dt.date
    valid_to: dt.date

    def is_valid_on(self, day: dt.date) -> bool:
        return self.valid_from <= day <= self.valid_to


@dataclass(frozen=True)
class InsuranceRecord:
    """What the social insurance registry holds about one insured person."""

    bhxh: str
    full_name: str
    birth_date: str
    sex: str
    cccd: str | None = None
    coverage: Coverage | None = None


@runtime_checkable
class PopulationRegistry(Protocol):
    """The national population registry."""

    def verify(self, claim: PersonClaim) -> VerificationResult:
        """Compare the claim's name, birth date and sex with the registry's record."""
        ...

    def lookup_by_old_id(self, cmnd: str) -> str | None:
        """The current 12-digit CCCD of the holder of an old CMND, or None."""
        ...


@runtime_checkable
class SocialInsurance(Protocol):
    """The social insurance registry."""

    def lookup(self, bhxh: str | None = None, cccd: str | None = None) -> InsuranceRecord | None:
        """The insured person with this BHXH number (preferred) or CCCD, or None."""
        ...
