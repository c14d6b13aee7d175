"""Exception handlers: the one place where the REST edge turns errors into
OperationOutcome responses (status table in `vaxhub.fhir.outcome`)."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from vaxhub import errors as e
from vaxhub.fhir.outcome import operation_outcome, status_for
from vaxhub.hub.api.fhir_http import FhirResponse

log = logging.getLogger("vaxhub.api")

def error_response(error: e.VaxhubError) -> FhirResponse:
    headers: dict[str, str] = {}
    if isinstance(error, e.AuthenticationFailed):
        headers["WWW-Authenticate"] = 'Bearer realm="vaxhub", error="invalid_token"'
    if isinstance(error, e.RateLimited):
        headers["Retry-After"] = str(error.retry_after)
    return FhirResponse(operation_outcome(error.issues), status_code=status_for(error), headers=headers)


def install_handlers(app: FastAPI) -> None:
    @app.exception_handler(e.VaxhubError)
    async def _vaxhub_error(_request: Request, exc: e.VaxhubError) -> FhirResponse:
        return error_response(exc)

    @app.exception_handler(RequestValidationError)
    async def _validation(_request: Request, exc: RequestValidationError) -> FhirResponse:
        issues = [
            e.Issue(str(err.get("msg")), ".".join(str(p) for p in err.get("loc", ())), "invalid") for err in exc.errors()
        ]
        return FhirResponse(operation_outcome(issues), status_code=400)

    @app.exception_handler(StarletteHTTPException)
    async def _http(_request: Request, exc: StarletteHTTPException) -> FhirResponse:
        code = {404: "not-found", 405: "not-supported"}.get(exc.status_code, "processing")
        issue = e.Issue(str(exc.detail), None, code)
        return FhirResponse(operation_outcome([issue]), status_code=exc.status_code, headers=getattr(exc, "headers", None))

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> FhirResponse:
        # A defect, never the client's fault: log it whole, tell the client little.
        log.exception("Unhandled error on %s %s", request.method, request.url.path)
        issue = e.Issue("Internal error; the request was not applied", None, "exception", "fatal")
        return FhirResponse(operation_outcome([issue]), status_code=500)
