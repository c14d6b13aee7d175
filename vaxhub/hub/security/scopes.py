"""SMART on FHIR scopes (SMART App Launch 2.x, "Scopes and Launch Context").

A scope is `context/resource.permissions`: context `system`, `patient` or
`user`; resource a FHIR type or `*`; permissions a subset of `cruds` in that
order (create, read, update, delete, search). The SMART 1 forms `.read`
(= `rs`) and `.write` (= `cud`) and `.*` are accepted too.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from vaxhub.errors import Issue, UnsupportedRequest

_SCOPE = re.compile(r"^(?P<context>system|patient|user)/(?P<resource>\*|[A-Z][A-Za-z]+)\.(?P<perms>read|write|\*|c?r?u?d?s?)$")
PERMISSIONS = "cruds"


@dataclass(frozen=True)
class Scope:
    context: str
    resource: str
    permissions: frozenset[str]

    def allows(self, context: str, resource: str, permission: str) -> bool:
        return self.context == context and self.resource in ("*", resource) and permission in self.permissions

    def __str__(self) -> str:
        return f"{self.context}/{self.resource}.{''.join(p for p in PERMISSIONS if p in self.permissions)}"


def parse_scope(text: str) -> Scope:
    match = _SCOPE.match(text)
    if not match or match["perms"] == "":
        raise UnsupportedRequest(f"{text!r} is not a SMART scope", [Issue(f"Invalid scope {text!r}", "scope", "invalid")])
    perms = {"read": "rs", "write": "cud", "*": PERMISSIONS}.get(match["perms"], match["perms"])
    return Scope(match["context"], match["resource"], frozenset(perms))


def parse_scopes(text: str) -> list[Scope]:
    return [parse_scope(part) for part in text.split() if "/" in part]


def grant(requested: str | None, allowed: list[Scope]) -> list[Scope]:
    """The scopes to grant: each requested scope narrowed to what the client may have.

    With no request, everything allowed is granted (SMART Backend Services lets
    the server choose). A requested scope with nothing left after narrowing is dropped.
    """
    if not requested:
        return list(allowed)
    granted: list[Scope] = []
    for scope in parse_scopes(requested):
        for permitted in allowed:
            if permitted.context != scope.context or permitted.resource not in ("*", scope.resource):
                continue
            perms = scope.permissions & permitted.permissions
            if perms:
                narrowed = Scope(scope.context, scope.resource, frozenset(perms))
                if narrowed not in granted:
                    granted.append(narrowed)
    return granted


def format_scopes(scopes: list[Scope]) -> str:
    return " ".join(str(s) for s in scopes)
