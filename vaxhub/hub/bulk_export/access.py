"""Who may export, and what.

Bulk export hands over whole populations, so it is limited to national
registry (`system`) and operator clients that were registered with the
`bulk-export` role; a client bound to a site writes as that site and does not
read the nation's records in bulk. Each exported type also needs read and
search in the token's scopes (SMART v2 `system/*.rs`, or per type): with
`_type` every named type must be covered (403 otherwise); without it the
export holds the covered types only. A job belongs to the client that
started it; operators holding the role may watch and cancel anyone's.
"""

from __future__ import annotations

from vaxhub.errors import AuthenticationFailed, Forbidden
from vaxhub.hub.security.principal import ANONYMOUS, OPERATOR, SYSTEM, Principal

BULK_EXPORT_ROLE = "bulk-export"


def require_exporter(who: Principal) -> None:
    if who.kind == ANONYMOUS:
        raise AuthenticationFailed("An access token is required")
    if who.kind not in (SYSTEM, OPERATOR):
        raise Forbidden("Bulk export is for registry and operator clients")
    if BULK_EXPORT_ROLE not in who.roles:
        raise Forbidden(f"Bulk export needs a client registered with the '{BULK_EXPORT_ROLE}' role")
    if who.site_code is not None:
        raise Forbidden(f"Bulk export is national; a client bound to site {who.site_code} cannot use it")


def granted_types(who: Principal, requested: tuple[str, ...] | None, exportable: tuple[str, ...]) -> tuple[str, ...]:
    """The types to export: each must allow read and search in the token's scopes."""
    def covered(rtype: str) -> bool:
        return who.may(rtype, "r") and who.may(rtype, "s")

    if requested:
        refused = [t for t in requested if not covered(t)]
        if refused:
            raise Forbidden(f"The token's scopes do not allow reading and searching {', '.join(refused)}")
        return requested
    types = tuple(t for t in exportable if covered(t))
    if not types:
        raise Forbidden("The token's scopes allow reading none of the exported types")
    return types


def may_see_job(who: Principal, owner_client_id: str) -> bool:
    """The job's own client, or a national operator with the export role."""
    if who.client_id == owner_client_id:
        return True
    return who.kind == OPERATOR and BULK_EXPORT_ROLE in who.roles and who.site_code is None
