"""In-memory fakes of the registry ports, backed by a `SyntheticRegistry`.

They answer exactly as the real clients do against the simulators (the
contract suite checks it) and record each call in `calls`, so tests of the
hub can assert what was asked without patching anything.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from vaxhub.adapters.agreement import (
    CMND_PATTERN,
    claim_identifier,
    claim_problem,
    disagreeing_fields,
)
from vaxhub.adapters.ports import (
    InsuranceRecord,
    PersonClaim,
    VerificationResult,
    VerificationStatus,
)
from vaxhub.adapters.registry_data import SyntheticRegistry


def verify_against_registry(registry: SyntheticRegistry, claim: PersonClaim) -> VerificationResult:
    """The population registry's decision about `claim`, shared by the fake and
    the SOAP simulator."""
    problem = claim_problem(claim)
    identifier = claim_identifier(claim)
    if problem or identifier is None:
        return VerificationResult(VerificationStatus.ERROR, message=problem)
    kind, value = identifier
    citizen = registry.by_cccd(value) if kind == "cccd" else registry.by_cmnd(value)
    if citizen is None:
        return VerificationResult(VerificationStatus.NOT_FOUND)
    mismatches = disagreeing_fields(
        claim, full_name=citizen.full_name, birth_date=citizen.birth_date, sex=citizen.sex
    )
    status = VerificationStatus.MISMATCH if mismatches else VerificationStatus.VERIFIED
    return VerificationResult(status, current_id=citizen.cccd, mismatches=mismatches)


class InMemoryPopulationRegistry:
    """`PopulationRegistry` answered from a `SyntheticRegistry`."""

    def __init__(self, registry: SyntheticRegistry):
        self.registry = registry
        self.calls: list[tuple[str, object]] = []

    verifies_in_batches = True

    def verify(self, claim: PersonClaim) -> VerificationResult:
        self.calls.append(("verify", claim))
        return verify_against_registry(self.registry, claim)

    def verify_many(self, claims: Sequence[PersonClaim]) -> list[VerificationResult]:
        self.calls.append(("verify_many", list(claims)))
        return [verify_against_registry(self.registry, claim) for claim in claims]

    def lookup_by_old_id(self, cmnd: str) -> str | None:
        self.calls.append(("lookup_by_old_id", cmnd))
        if not CMND_PATTERN.match(cmnd.strip()):
            raise ValueError(f"not an old identity card number: {cmnd!r}")
        citizen = self.registry.by_cmnd(cmnd.strip())
        return citizen.cccd if citizen else None


class InMemorySocialInsurance:
    """`SocialInsurance` answered from a `SyntheticRegistry`."""

    def __init__(self, registry: SyntheticRegistry):
        self.registry = registry
        self.calls: list[tuple[str, object]] = []

    def lookup(self, bhxh: str | None = None, cccd: str | None = None) -> InsuranceRecord | None:
        self.calls.append(("lookup", {"bhxh": bhxh, "cccd": cccd}))
        if not bhxh and not cccd:
            raise ValueError("lookup needs a BHXH number or a CCCD")
        return self._record(bhxh, cccd)

    def lookup_many(self, keys: Sequence[Mapping[str, str]]) -> list[InsuranceRecord | None]:
        self.calls.append(("lookup_many", [dict(key) for key in keys]))
        return [self._record(key.get("bhxh"), key.get("cccd")) for key in keys]

    def _record(self, bhxh: str | None, cccd: str | None) -> InsuranceRecord | None:
        citizen = self.registry.by_bhxh(bhxh) if bhxh else self.registry.by_cccd(cccd or "")
        return citizen.insurance_record() if citizen else None
