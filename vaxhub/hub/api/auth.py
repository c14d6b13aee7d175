"""Token endpoint and login routes.

- `POST /auth/token`: OAuth 2.0 token endpoint. `client_credentials` with a
  `private_key_jwt` assertion (SMART Backend Services) for systems, verifiers
  and operator consoles; `token-exchange` (RFC 8693) of a national e-ID token
  for citizens. Errors follow RFC 6749 §5.2 (`{"error": …}`), not FHIR.
- `POST /auth/otp/start` and `/auth/otp/verify`: a citizen's one-time code.
- `/.well-known/smart-configuration` and `/.well-known/jwks.json`.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from vaxhub.errors import AuthenticationFailed, InputError, RateLimited, VaxhubError
from vaxhub.hub.audit.trail import MINOR_FAILURE, SERIOUS_FAILURE, SUCCESS, AuditTrail
from vaxhub.hub.security.citizen_login import ExternalIdentityProvider, OtpLogin, find_patient_by_cccd, patient_principal
from vaxhub.hub.security.clients import ASSERTION_TYPE, ClientRegistry
from vaxhub.hub.security.login_audit import claimed_client, record_login
from vaxhub.hub.security.principal import NOBODY, Principal
from vaxhub.hub.security.scopes import format_scopes, grant
from vaxhub.hub.security.tokens import TokenService
from vaxhub.hub.storage.store import FhirStore
from vaxhub.settings import Settings

TOKEN_EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange"
JWT_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:jwt"
NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


class OAuthError(Exception):
    def __init__(self, error: str, description: str, status: int = 400):
        self.error, self.description, self.status = error, description, status


def _oauth_error(exc: OAuthError) -> JSONResponse:
    headers = dict(NO_STORE)
    if exc.status == 401:
        headers["WWW-Authenticate"] = 'Bearer error="invalid_client"'
    return JSONResponse({"error": exc.error, "error_description": exc.description}, status_code=exc.status, headers=headers)


def _token_response(tokens: TokenService, who: Principal, lifetime: int) -> JSONResponse:
    token, expires_in = tokens.issue(who, lifetime)
    body: dict[str, Any] = {"access_token": token, "token_type": "Bearer", "expires_in": expires_in, "scope": format_scopes(list(who.scopes))}
    if who.patient_id:
        body["patient"] = who.patient_id
    return JSONResponse(body, headers=NO_STORE)


def build_router(
    *,
    settings: Settings,
    tokens: TokenService,
    clients: ClientRegistry,
    otp: OtpLogin,
    eid: ExternalIdentityProvider | None,
    store: FhirStore,
    trail: AuditTrail | None = None,
) -> APIRouter:
    """The routes; with a `trail`, every token issued and every login refused is audited."""
    router = APIRouter(tags=["Authorisation"])

    def root(request: Request) -> str:
        return (settings.public_url or str(request.base_url)).rstrip("/")

    @router.get("/.well-known/smart-configuration", summary="SMART configuration")
    def smart_configuration(request: Request) -> JSONResponse:
        base = root(request)
        return JSONResponse(
            {
                "issuer": settings.auth_issuer,
                "jwks_uri": f"{base}/.well-known/jwks.json",
                "token_endpoint": f"{base}/auth/token",
                "token_endpoint_auth_methods_supported": ["private_key_jwt"],
                "token_endpoint_auth_signing_alg_values_supported": ["ES256", "ES384", "RS384"],
                "grant_types_supported": ["client_credentials", TOKEN_EXCHANGE],
                "scopes_supported": ["system/*.cruds", "patient/*.rs"],
                "capabilities": ["client-confidential-asymmetric", "permission-v2", "context-standalone-patient"],
            }
        )

    @router.get("/.well-known/jwks.json", summary="The hub's public keys")
    def jwks() -> JSONResponse:
        return JSONResponse(tokens.jwks())

    def _throttled(request: Request) -> JSONResponse | None:
        """Logins share the callers' budget per source address: every refused
        login is an AuditEvent, so a flood of forged assertions must not become
        a flood of audit writes."""
        try:
            request.app.state.rate_limiter.take(f"login:{request.client.host if request.client else 'unknown'}", exact=True)
        except RateLimited as exc:
            return JSONResponse({"error": "slow_down", "error_description": exc.message}, status_code=429,
                                headers={"Retry-After": str(exc.retry_after), **NO_STORE})
        return None

    @router.post("/auth/token", summary="OAuth 2.0 token endpoint")
    async def token(request: Request) -> JSONResponse:
        if (refused := await run_in_threadpool(_throttled, request)) is not None:
            return refused
        form = await request.form()
        fields = {k: v for k, v in form.items() if isinstance(v, str)}
        token_url = f"{root(request)}/auth/token"
        return await run_in_threadpool(_issue_audited, fields, token_url, request.client.host if request.client else None)

    def _issue_audited(fields: dict[str, str], token_url: str, source_ip: str | None) -> JSONResponse:
        method = {"client_credentials": "client_credentials", TOKEN_EXCHANGE: "token-exchange"}.get(fields.get("grant_type", ""), "other")
        try:
            who, lifetime = _issue(fields, token_url)
        except OAuthError as exc:
            outcome = SERIOUS_FAILURE if exc.error in ("invalid_client", "invalid_grant") else MINOR_FAILURE
            record_login(trail, method=method, outcome=outcome, who=claimed_client(fields.get("client_assertion")),
                         path="/auth/token", source_ip=source_ip, detail=f"{exc.error}: {exc.description}")
            return _oauth_error(exc)
        response = _token_response(tokens, who, lifetime)
        record_login(trail, method=method, outcome=SUCCESS, who=who, path="/auth/token", source_ip=source_ip,
                     detail=f"token issued for {lifetime} s, scopes {format_scopes(list(who.scopes))}")
        return response

    def _issue(fields: dict[str, str], token_url: str) -> tuple[Principal, int]:
        grant_type = fields.get("grant_type")
        if grant_type == "client_credentials":
            if fields.get("client_assertion_type") != ASSERTION_TYPE or not fields.get("client_assertion"):
                raise OAuthError("invalid_request", f"client_assertion_type must be {ASSERTION_TYPE} with a client_assertion")
            try:
                client = clients.authenticate(fields["client_assertion"], token_url)
            except AuthenticationFailed as exc:
                raise OAuthError("invalid_client", exc.message, 401) from None
            try:
                scopes = grant(fields.get("scope"), list(client.scopes))
            except InputError as exc:
                raise OAuthError("invalid_scope", exc.message) from None
            if not scopes:
                raise OAuthError("invalid_scope", "None of the requested scopes is allowed for this client")
            who = Principal(client.kind, client.client_id, client_id=client.client_id, site_code=client.site_code, scopes=tuple(scopes), roles=client.roles)
            return who, settings.access_token_seconds
        if grant_type == TOKEN_EXCHANGE:
            if eid is None:
                raise OAuthError("unsupported_grant_type", "No national e-ID provider is configured")
            if fields.get("subject_token_type", JWT_TOKEN_TYPE) != JWT_TOKEN_TYPE or not fields.get("subject_token"):
                raise OAuthError("invalid_request", f"subject_token of type {JWT_TOKEN_TYPE} is required")
            try:
                cccd = eid.person_id(fields["subject_token"])
            except AuthenticationFailed as exc:
                raise OAuthError("invalid_grant", exc.message) from None
            patient_id = find_patient_by_cccd(store, cccd)
            if patient_id is None:
                raise OAuthError("invalid_grant", "No vaccination record is held for this person")
            return patient_principal(patient_id, "eid"), settings.patient_token_seconds
        raise OAuthError("unsupported_grant_type", f"grant_type {grant_type!r} is not supported")

    @router.post("/auth/otp/start", summary="Send a one-time code to the phone on record")
    async def otp_start(request: Request) -> JSONResponse:
        fields = await _json_or_form(request)
        if not fields.get("cccd") or not fields.get("phone"):
            return JSONResponse({"error": "invalid_request", "error_description": "cccd and phone are required"}, status_code=400)
        try:
            challenge = await run_in_threadpool(otp.start, str(fields["cccd"]), str(fields["phone"]))
        except RateLimited as exc:
            return JSONResponse({"error": "slow_down", "error_description": exc.message}, status_code=429, headers={"Retry-After": str(exc.retry_after)})
        # The same answer whether or not the person is known.
        return JSONResponse({"challenge": challenge, "message": "If the phone is on record, a code was sent"}, status_code=202)

    @router.post("/auth/otp/verify", summary="Exchange a one-time code for a patient token")
    async def otp_verify(request: Request) -> JSONResponse:
        if (refused := await run_in_threadpool(_throttled, request)) is not None:
            return refused
        fields = await _json_or_form(request)
        source_ip = request.client.host if request.client else None
        try:
            who = await run_in_threadpool(otp.verify, str(fields.get("challenge", "")), str(fields.get("code", "")))
        except VaxhubError as exc:
            reason = exc.message  # bound here: the closure below must not reach for `exc`
            await run_in_threadpool(lambda: record_login(
                trail, method="otp", outcome=SERIOUS_FAILURE, who=NOBODY, path="/auth/otp/verify", source_ip=source_ip, detail=reason
            ))
            return JSONResponse({"error": "invalid_grant", "error_description": reason}, status_code=400, headers=NO_STORE)
        response = _token_response(tokens, who, settings.patient_token_seconds)
        await run_in_threadpool(lambda: record_login(
            trail, method="otp", outcome=SUCCESS, who=who, path="/auth/otp/verify", source_ip=source_ip,
            detail=f"patient token issued for {settings.patient_token_seconds} s",
        ))
        return response

    return router


async def _json_or_form(request: Request) -> dict[str, Any]:
    if request.headers.get("content-type", "").startswith("application/json"):
        try:
            body = await request.json()
        except ValueError:
            return {}
        return body if isinstance(body, dict) else {}
    return dict(await request.form())
