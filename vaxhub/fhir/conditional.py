"""Transaction entries keyed on business identifiers, shared by the HL7 v2 and
spreadsheet translators.

Every record that enters from the edge is a conditional create (FHIR R4
http.html#ccreate: `ifNoneExist: identifier=system|value`) or, for corrections,
a conditional update, so that sending the same thing twice stores it once.
Site-scoped identifier systems follow the synthetic data's convention:
`https://vaxhub.vn/fhir/sid/site/{site}/patient` and `/immunization`.
"""

from __future__ import annotations

import hashlib
import uuid
from urllib.parse import quote

from vaxhub.fhir.synthetic import site_immunization_system, site_patient_system

__all__ = [
    "derived_key",
    "identifier_condition",
    "post_entry",
    "put_entry",
    "site_immunization_system",
    "site_patient_system",
]

_ESCAPED = str.maketrans({"\\": "\\\\", ",": "\\,", "|": "\\|", "$": "\\$"})


def derived_key(*parts: str) -> str:
    """A stable identifier value from the parts that name a record when its
    source gives it no number (a spreadsheet row, a VXU without ORC-3)."""
    digest = hashlib.sha256("\x1f".join(parts).encode("utf-8")).hexdigest()
    return f"k-{digest[:24]}"


def identifier_condition(identifiers: list[dict]) -> str:
    """`identifier=s1|v1,s2|v2` (any of them) in search syntax, values escaped
    (http.html#escaping) and percent-encoded for the query string."""
    tokens = [f"{i['system'].translate(_ESCAPED)}|{i['value'].translate(_ESCAPED)}" for i in identifiers]
    return "identifier=" + quote(",".join(tokens), safe="|,/:\\")


def post_entry(resource: dict, condition_identifiers: list[dict], full_url: str | None = None) -> dict:
    return {
        "fullUrl": full_url or f"urn:uuid:{uuid.uuid4()}",
        "resource": resource,
        "request": {"method": "POST", "url": resource["resourceType"], "ifNoneExist": identifier_condition(condition_identifiers)},
    }


def put_entry(resource: dict, condition_identifiers: list[dict]) -> dict:
    """A conditional update: replaces the resource holding the identifier, or creates it."""
    return {
        "fullUrl": f"urn:uuid:{uuid.uuid4()}",
        "resource": resource,
        "request": {"method": "PUT", "url": f"{resource['resourceType']}?{identifier_condition(condition_identifiers)}"},
    }
