"""The one exception tree of vaxhub.

Domain code raises these; each edge translates them once (FHIR
OperationOutcome for REST, ACK AE/AR for HL7 v2, a row report for imports).

    VaxhubError
    ├── InputError                 the caller sent something we cannot take
    │   ├── MalformedInput         not parseable at all (bad JSON, bad ER7)     -> 400
    │   ├── InvalidResource        parseable but not a valid resource          -> 422
    │   └── UnsupportedRequest     a valid request we do not support           -> 400
    ├── NotFound                   no such resource / version                  -> 404
    ├── Gone                       the resource was deleted                    -> 410
    ├── Conflict                   the write collides with stored state        -> 409
    │   ├── VersionConflict        concurrent update lost the race
    │   └── DuplicateIdentifier    a business identifier is already held
    ├── PreconditionFailed         If-Match / conditional match failed         -> 412
    ├── AuthenticationFailed       no valid credentials                        -> 401
    ├── Forbidden                  valid credentials, not allowed              -> 403
    ├── RateLimited                the caller sent too much too fast           -> 429
    └── ExternalServiceError       a registry or other outside service failed
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Issue:
    """One problem, located: `expression` is a FHIRPath-like path
    (`Bundle.entry[3].resource.birthDate`), a segment/field, or a row/column."""

    message: str
    expression: str | None = None
    code: str = "invalid"
    severity: str = "error"


class VaxhubError(Exception):
    """Base of every error vaxhub raises on purpose."""

    def __init__(self, message: str, issues: list[Issue] | None = None):
        super().__init__(message)
        self.message = message
        self.issues: list[Issue] = issues or [Issue(message, code=self.default_code)]

    default_code = "exception"


class InputError(VaxhubError):
    default_code = "invalid"


class MalformedInput(InputError):
    default_code = "structure"


class InvalidResource(InputError):
    default_code = "invalid"


class UnsupportedRequest(InputError):
    default_code = "not-supported"


class NotFound(VaxhubError):
    default_code = "not-found"


class Gone(VaxhubError):
    default_code = "deleted"


class Conflict(VaxhubError):
    default_code = "conflict"


class VersionConflict(Conflict):
    pass


class DuplicateIdentifier(Conflict):
    default_code = "duplicate"


class PreconditionFailed(VaxhubError):
    default_code = "conflict"


class AuthenticationFailed(VaxhubError):
    default_code = "login"


class Forbidden(VaxhubError):
    default_code = "forbidden"


class RateLimited(VaxhubError):
    default_code = "throttled"

    def __init__(self, message: str, retry_after: int = 1):
        super().__init__(message)
        self.retry_after = retry_after


class ExternalServiceError(VaxhubError):
    default_code = "transient"
