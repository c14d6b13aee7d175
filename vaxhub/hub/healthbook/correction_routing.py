"""Which queue a correction request lands in, and which queues an operator works.

A request about a dose goes to the site that recorded it: the site code its
record is stamped with (`meta.source`, as sites write only as themselves), else
the site Organization that performed it. A request about personal details goes
to the site that wrote the Patient record, or that manages it. A missing dose,
or a record no site owns, goes to the person's province (their first address's
province). With neither, `owner` is left out and the national programme's
operators handle it.

`Task.owner` names the queue by identifier, which is what the queue is searched
on (`owner-identifier`): `https://vaxhub.vn/fhir/sid/site|79001` for a site
(with a reference to its Organization when the hub holds one) or
`https://vaxhub.vn/fhir/sid/province|79` for a province.

Operators: one registered with a site code works that site's queue; one
registered with a two-digit province code in place of a site code works that
province's queue; one without either is national and sees every queue.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import select

from vaxhub.fhir.search_params import parse_reference
from vaxhub.hub.healthbook.provinces import UNKNOWN_PROVINCE, province_code
from vaxhub.fhir.normalise.provinces import historical_province_by_code
from vaxhub.hub.security.policy import owner_of
from vaxhub.hub.security.principal import Principal
from vaxhub.hub.storage.store import Stored, Writer
from vaxhub.hub.storage.tables import IdentifierClaimRow

SITE_SYSTEM = "https://vaxhub.vn/fhir/sid/site"
PROVINCE_SYSTEM = "https://vaxhub.vn/fhir/sid/province"
CLAIM = IdentifierClaimRow.__table__


@dataclass(frozen=True)
class Queue:
    """One work queue: a site's or a province's (`system`, `code`)."""

    system: str
    code: str

    @property
    def token(self) -> str:
        return f"{self.system}|{self.code}"


def route_correction(writer: Writer, focus: Stored, patient: Stored, *, missing_dose: bool) -> dict[str, Any] | None:
    """`Task.owner` for a request about `focus` (a record of `patient`); None for the national queue."""
    site = None if missing_dose else _site_of(writer, focus)
    if site is not None:
        owner: dict[str, Any] = {"identifier": {"system": SITE_SYSTEM, "value": site}, "display": f"site {site}"}
        organisation = _site_organisation(writer, site)
        if organisation is not None:
            owner["reference"] = f"Organization/{organisation}"
        return owner
    province = _province_of(patient.content or {})
    if province is None:
        return None
    return {"identifier": {"system": PROVINCE_SYSTEM, "value": province}, "display": historical_province_by_code(province).name}


def operator_queue(who: Principal) -> Queue | None:
    """The queue an operator works; None for a national operator (every queue)."""
    code = who.site_code
    if not code:
        return None
    if len(code) == 2 and code.isdigit():
        return Queue(PROVINCE_SYSTEM, code)
    return Queue(SITE_SYSTEM, code)


def queue_of(task: dict[str, Any]) -> Queue | None:
    ident = (task.get("owner") or {}).get("identifier") if isinstance(task.get("owner"), dict) else None
    if isinstance(ident, dict) and ident.get("system") in (SITE_SYSTEM, PROVINCE_SYSTEM) and isinstance(ident.get("value"), str):
        return Queue(ident["system"], ident["value"])
    return None


def in_queue_of(who: Principal, task: dict[str, Any]) -> bool:
    wanted = operator_queue(who)
    return wanted is None or queue_of(task) == wanted


def _site_of(writer: Writer, record: Stored) -> str | None:
    content = record.content or {}
    stamped = owner_of(content)
    if stamped:
        return stamped
    if record.rtype == "Immunization":
        actors = [p.get("actor") for p in content.get("performer") or [] if isinstance(p, dict)]
    else:
        actors = [content.get("managingOrganization")]
    for actor in actors:
        reference = actor.get("reference") if isinstance(actor, dict) else None
        parsed = parse_reference(reference) if isinstance(reference, str) else None
        if parsed and parsed[0] == "Organization":
            code = _site_code_of_organisation(writer, parsed[1])
            if code:
                return code
    return None


def _site_code_of_organisation(writer: Writer, organisation_id: str) -> str | None:
    row = writer.conn.execute(
        select(CLAIM.c.value).where(CLAIM.c.res_type == "Organization", CLAIM.c.res_id == organisation_id, CLAIM.c.system == SITE_SYSTEM)
    ).first()
    return row.value if row else None


def _site_organisation(writer: Writer, site: str) -> str | None:
    row = writer.conn.execute(
        select(CLAIM.c.res_id).where(CLAIM.c.res_type == "Organization", CLAIM.c.value == site, CLAIM.c.system == SITE_SYSTEM)
    ).first()
    return row.res_id if row else None


def _province_of(patient: dict[str, Any]) -> str | None:
    addresses = [a for a in patient.get("address") or [] if isinstance(a, dict)]
    state = addresses[0].get("state") if addresses else None
    code = province_code(state if isinstance(state, str) else None)
    return None if code == UNKNOWN_PROVINCE else code
