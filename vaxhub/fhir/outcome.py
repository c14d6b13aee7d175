"""OperationOutcome (hl7.org/fhir/R4/operationoutcome.html) from vaxhub errors,
and the one table from error class to HTTP status."""

from __future__ import annotations

from vaxhub import errors as e

STATUS: list[tuple[type[e.VaxhubError], int]] = [
    (e.MalformedInput, 400),
    (e.UnsupportedRequest, 400),
    (e.InvalidResource, 422),
    (e.InputError, 400),
    (e.NotFound, 404),
    (e.Gone, 410),
    (e.Conflict, 409),
    (e.PreconditionFailed, 412),
    (e.AuthenticationFailed, 401),
    (e.Forbidden, 403),
    (e.RateLimited, 429),
    (e.ExternalServiceError, 503),
]


def status_for(error: e.VaxhubError) -> int:
    for cls, status in STATUS:
        if isinstance(error, cls):
            return status
    return 500


def operation_outcome(issues: list[e.Issue]) -> dict:
    out = []
    for issue in issues:
        item: dict = {"severity": issue.severity, "code": issue.code, "diagnostics": issue.message}
        if issue.expression:
            item["expression"] = [issue.expression]
        out.append(item)
    return {"resourceType": "OperationOutcome", "issue": out}


def informational(message: str) -> dict:
    return {"resourceType": "OperationOutcome", "issue": [{"severity": "information", "code": "informational", "diagnostics": message}]}
