"""The social insurance cross-check the worker makes after the population call.

The population registry is the reference for identity; the social insurance
registry is only compared with the claim, so that operators see where the two
registries (and the site) disagree. The cross-check never decides the job:
any failure is recorded as `error` beside the population result, and it is
not retried (the next re-check of the Patient asks again).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from vaxhub.adapters.agreement import BHXH_PATTERN, CCCD_PATTERN, disagreeing_fields
from vaxhub.adapters.ports import PersonClaim, SocialInsurance, VerificationResult
from vaxhub.adapters.social_insurance_rest import ApiKeyAuth, RestSocialInsurance
from vaxhub.hub.observability.request_context import outgoing_headers
from vaxhub.settings import Settings

log = logging.getLogger(__name__)

INSURANCE_REGISTRY_NAME = "social-insurance"
INSURANCE_STATUSES = ("consistent", "mismatch", "not_enrolled", "skipped", "error")


@dataclass(frozen=True)
class InsuranceCheck:
    """The cross-check's outcome; `mismatches` maps each disagreeing field to
    (claimed, insurance registry value)."""

    status: str
    mismatches: dict[str, tuple[str, str]] = field(default_factory=dict)
    message: str | None = None

    def mismatch_document(self) -> dict[str, Any] | None:
        if not self.mismatches:
            return None
        return {name: {"claimed": claimed, "registry": held} for name, (claimed, held) in self.mismatches.items()}


def _lookup_key(claim: PersonClaim, result: VerificationResult) -> dict[str, str] | None:
    if claim.bhxh and BHXH_PATTERN.match(claim.bhxh.strip()):
        return {"bhxh": claim.bhxh.strip()}
    # A claim made with an old CMND still reaches the insurance registry through
    # the CCCD the population registry says replaced it.
    for cccd in (claim.cccd, result.current_id):
        if cccd and CCCD_PATTERN.match(cccd.strip()):
            return {"cccd": cccd.strip()}
    return None


def cross_check_many(insurance: SocialInsurance, checks: Sequence[tuple[PersonClaim, VerificationResult]]) -> list[InsuranceCheck]:
    """Look each person up in the social insurance registry and compare name,
    birth date (at the precision both know) and sex with their claim: one
    `lookup_many` call when the client has it (the REST client does), else
    one lookup each."""
    outcomes: list[InsuranceCheck | None] = [None] * len(checks)
    asked: list[tuple[int, dict[str, str]]] = []
    for index, (claim, result) in enumerate(checks):
        key = _lookup_key(claim, result)
        if key is None:
            outcomes[index] = InsuranceCheck("skipped", message="no well-formed BHXH number or CCCD to look up")
        else:
            asked.append((index, key))
    if not asked:
        return outcomes  # type: ignore[return-value]
    # Anything going wrong here, a bug included, must still let the worker record
    # the population results: an exception escaping would leave the jobs in flight.
    try:
        many = getattr(insurance, "lookup_many", None)
        records = many([key for _, key in asked]) if many else [insurance.lookup(**key) for _, key in asked]
        for (index, _key), record in zip(asked, records, strict=True):
            claim = checks[index][0]
            if record is None:
                outcomes[index] = InsuranceCheck("not_enrolled")
                continue
            mismatches = disagreeing_fields(claim, full_name=record.full_name, birth_date=record.birth_date, sex=record.sex)
            outcomes[index] = InsuranceCheck("mismatch" if mismatches else "consistent", mismatches=mismatches)
    except Exception as exc:
        log.warning("social insurance cross-check failed: %s", exc)
        failed = InsuranceCheck("error", message=f"{type(exc).__name__}: {exc}"[:2000])
        for index, _key in asked:
            outcomes[index] = failed
    return outcomes  # type: ignore[return-value]


def build_social_insurance(settings: Settings) -> RestSocialInsurance | None:
    """The REST client the worker threads share, or None when no social
    insurance registry is configured (the cross-check is then not made)."""
    if not settings.social_insurance_url:
        return None
    if not settings.social_insurance_api_key:
        raise ValueError("VAXHUB_SOCIAL_INSURANCE_URL is set without VAXHUB_SOCIAL_INSURANCE_API_KEY")
    return RestSocialInsurance(
        settings.social_insurance_url,
        auth=ApiKeyAuth(settings.social_insurance_api_key),
        timeout=settings.registry_timeout,
        request_headers=outgoing_headers,  # the job's request id, as X-Request-ID
    )
