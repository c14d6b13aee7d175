"""Who may do what to which record.

- System clients act within their SMART scopes; a client registered with a
  site code writes only as that site: identifiers of another site's namespace
  are refused, new records are stamped with the site as owner
  (`meta.source`), and records owned by another site cannot be changed.
- Citizens read only their own compartment, plus directory data
  (Organization, Location), and write nothing but `CITIZEN_CREATABLE` reports
  about themselves. Their compartment is their person's: every
  record the master patient index linked to the same person. Anything else
  is reported as not found, so a token learns nothing about other people's
  records.
- Verifiers reach no FHIR data at all.
"""

from __future__ import annotations

from typing import Any

from vaxhub.errors import AuthenticationFailed, Forbidden
from vaxhub.fhir.search_params import PATIENT_COMPARTMENT, compartment_patient
from vaxhub.hub.security.principal import ANONYMOUS, DIRECTORY_TYPES, PATIENT, VERIFIER, Principal
from vaxhub.hub.storage.store import Stored

SITE_SYSTEM_PREFIX = "https://vaxhub.vn/fhir/sid/site/"
OWNER_PREFIX = "urn:vaxhub:site:"
WRITE_PERMISSION = {"create": "c", "update": "u", "delete": "d"}
# The only writes a citizen makes: reports about their own records (a reaction,
# a correction request), each checked against their compartment
# (`vaxhub.hub.healthbook.citizen_reports`).
CITIZEN_CREATABLE = frozenset({"AdverseEvent", "Task"})
# Correction requests change only through the sites' work queue
# (`/ops/corrections`), which applies them; a generic write would skip that.
QUEUE_MANAGED = frozenset({"Task"})


def require(principal: Principal, rtype: str, permission: str) -> None:
    """Refuse unless the principal may use `permission` (one of c r u d s) on `rtype`."""
    if principal.kind == ANONYMOUS:
        raise AuthenticationFailed("An access token is required")
    if principal.kind == VERIFIER:
        raise Forbidden("Verifier tokens may verify certificates and read trust lists only")
    if principal.kind == PATIENT:
        if permission not in ("r", "s") and not (permission == "c" and rtype in CITIZEN_CREATABLE):
            raise Forbidden("A citizen's token may read, not write")
        if rtype not in PATIENT_COMPARTMENT and rtype not in DIRECTORY_TYPES:
            raise Forbidden(f"A citizen's token cannot read {rtype} resources")
    if not principal.may(rtype, permission):
        raise Forbidden(f"The token's scopes do not allow '{permission}' on {rtype}")


def compartment_filter(principal: Principal, rtype: str) -> str | None:
    """The patient id a search must be limited to, if any."""
    if principal.kind == PATIENT and rtype in PATIENT_COMPARTMENT:
        return principal.patient_id or "\0"  # a citizen token without a patient sees nothing
    return None


def citizen_compartment(principal: Principal) -> frozenset[str]:
    """The patient ids whose compartments a citizen may read: their own record
    and, once the master patient index linked it, every record of the same
    person and its golden Patient (`vaxhub.hub.security.person_scope`)."""
    linked = getattr(principal, "person_records", None)
    if linked:
        return linked
    return frozenset({principal.patient_id}) if principal.patient_id else frozenset()


def visible(principal: Principal, rtype: str, res_id: str, content: dict | None) -> bool:
    if principal.kind != PATIENT or rtype in DIRECTORY_TYPES:
        return True
    return content is not None and compartment_patient(rtype, res_id, content) in citizen_compartment(principal)


def owner_of(content: dict | None) -> str | None:
    source = ((content or {}).get("meta") or {}).get("source") or ""
    return source[len(OWNER_PREFIX) :] if source.startswith(OWNER_PREFIX) else None


class SiteWriteGuard:
    """Checks and stamps every write of one principal inside a unit of work."""

    def __init__(self, principal: Principal):
        self.principal = principal

    def on_write(self, rtype: str, action: str, resource: dict | None, current: Stored | None) -> dict | None:
        require(self.principal, rtype, WRITE_PERMISSION[action])
        if self.principal.kind == PATIENT:
            # A citizen writes only into their own compartment, whatever the route.
            if resource is None or compartment_patient(rtype, "", resource) not in citizen_compartment(self.principal):
                raise Forbidden(f"A citizen may write {rtype} resources about themselves only")
            return resource
        if rtype in QUEUE_MANAGED:
            raise Forbidden(f"{rtype} resources are filed by citizens and handled through /ops/corrections")
        site = self.principal.site_code
        if current is not None and current.content is not None:
            owner = owner_of(current.content)
            if owner != site and site is not None:
                raise Forbidden(f"{rtype}/{current.id} belongs to {'site ' + owner if owner else 'the national programme'}; site {site} cannot change it")
        if resource is None or site is None:
            return resource
        for ident in resource.get("identifier") or []:
            system = ident.get("system") or "" if isinstance(ident, dict) else ""
            if system.startswith(SITE_SYSTEM_PREFIX) and system[len(SITE_SYSTEM_PREFIX) :].split("/")[0] != site:
                raise Forbidden(f"Site {site} cannot write identifiers of another site ({system})")
        meta: dict[str, Any] = {**(resource.get("meta") or {}), "source": f"{OWNER_PREFIX}{site}"}
        return {**resource, "meta": meta}
