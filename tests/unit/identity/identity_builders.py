"""Builders for the matching tests: a site's Patient with only what matters."""

from __future__ import annotations

from vaxhub.fhir.normalise import BHXH_SYSTEM, CCCD_SYSTEM, CMND_SYSTEM
from vaxhub.identity.keys import MatchKeys, match_keys


def patient(
    name: str,
    birth: str | None = None,
    gender: str | None = None,
    *,
    cccd: str | None = None,
    cmnd: str | None = None,
    bhxh: str | None = None,
    phone: str | None = None,
    province: str | None = "Hà Nội",
) -> dict:
    """A site's FHIR R4 Patient as the tests need it."""
    resource: dict = {"resourceType": "Patient", "name": [{"use": "official", "text": name}]}
    identifiers = []
    if cccd:
        identifiers.append({"system": CCCD_SYSTEM, "value": cccd})
    if cmnd:
        identifiers.append({"system": CMND_SYSTEM, "value": cmnd, "use": "old" if cccd else "official"})
    if bhxh:
        identifiers.append({"system": BHXH_SYSTEM, "value": bhxh})
    if identifiers:
        resource["identifier"] = identifiers
    if birth:
        resource["birthDate"] = birth
    if gender:
        resource["gender"] = gender
    if phone:
        resource["telecom"] = [{"system": "phone", "value": phone}]
    if province:
        resource["address"] = [{"use": "home", "state": province}]
    return resource


def keys(*args, **kwargs) -> MatchKeys:
    return match_keys(patient(*args, **kwargs))
