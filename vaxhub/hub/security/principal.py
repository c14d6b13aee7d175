"""Who is calling: the identity and rights carried by a verified access token."""

from __future__ import annotations

from dataclasses import dataclass, field

from vaxhub.hub.security.scopes import Scope

# Kinds of caller, each with its own kind of access.
SYSTEM = "system"  # hospitals, vaccination sites, national registries
PATIENT = "patient"  # a citizen, through the health-book app or the portal
VERIFIER = "verifier"  # border and travel checkers
OPERATOR = "operator"  # review queues, corrections, dead letters, dashboards
ANONYMOUS = "anonymous"

# Resource types that are directory data rather than a person's health data:
# a citizen may read them to show where and by whom a dose was given.
DIRECTORY_TYPES = frozenset({"Organization", "Location"})


@dataclass(frozen=True)
class Principal:
    kind: str
    subject: str  # client id, or patient id for citizens
    client_id: str | None = None
    site_code: str | None = None  # the site a system client writes as; an operator's site
    patient_id: str | None = None  # the one patient a citizen token is bound to
    scopes: tuple[Scope, ...] = field(default=())
    roles: frozenset[str] = field(default=frozenset())
    token_id: str | None = None

    def may(self, resource: str, permission: str) -> bool:
        context = "patient" if self.kind == PATIENT else "system"
        return any(s.allows(context, resource, permission) for s in self.scopes)

    @property
    def display(self) -> str:
        return f"{self.kind}:{self.subject}"


NOBODY = Principal(ANONYMOUS, "anonymous")
