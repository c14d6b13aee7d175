"""Authentication at the HTTP edge: bearer tokens, rate limits, the audited interaction.

Every data route depends on `principal`; the `AuditMiddleware` makes sure that
each request to a data route leaves exactly one AuditEvent: writes append it
inside their transaction, everything else (reads, searches, refusals) gets it
appended when the response status is known.
"""

from __future__ import annotations

from typing import TypeVar

from fastapi import Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from vaxhub.errors import AuthenticationFailed
from vaxhub.hub.audit.trail import AuditTrail, Interaction, outcome_for_status
from vaxhub.hub.security.principal import Principal
from vaxhub.hub.security.rate_limits import RateLimiter
from vaxhub.hub.security.tokens import TokenService

AUDITED_PREFIXES = ("/fhir", "/ops/", "/hl7v2", "/imports")
NOT_AUDITED = ("/fhir/metadata",)
Answer = TypeVar("Answer", bound=Response)  # `recorded` hands back the response it was given


def bearer_token(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


async def principal(request: Request) -> Principal:
    """FastAPI dependency: the verified caller (401 without a valid token).

    A coroutine: checking a token is CPU work (a kept answer, or one
    signature), and a quick rate-limit counter (Redis with short timeouts,
    memory) is asked here too; a plain-function dependency would cost every
    request a hop to the thread pool. The database counter is a write
    transaction and still runs on a thread, when the process's share of the
    caller's budget does not answer first."""
    token = bearer_token(request)
    if token is None:
        raise AuthenticationFailed("An access token is required (Authorization: Bearer …)")
    tokens: TokenService = request.app.state.tokens
    who = tokens.verify(token)
    interaction = getattr(request.state, "interaction", None)
    if interaction is not None:
        interaction.principal = who
    limiter: RateLimiter = request.app.state.rate_limiter
    caller = who.client_id or who.subject
    if not limiter.spend_locally(caller):  # far from the limit, most requests stop here (`rate_share`)
        if limiter.counter.quick:
            limiter.ask(caller)
        else:
            await run_in_threadpool(limiter.ask, caller)
    return who


def recorded(trail: AuditTrail, audit: Interaction, response: Answer) -> Answer:
    """Record a read's AuditEvent where its endpoint runs, on the request's thread.

    The response is built (its status final, its body rendered), so the
    outcome is known; left to `AuditMiddleware`, the request would go to the
    thread pool once more only to record it. An endpoint that raises is
    recorded by the middleware, with the status its error gets."""
    if not audit.recorded:
        audit.outcome = outcome_for_status(response.status_code)
        trail.record(audit)
    return response


async def interaction(request: Request) -> Interaction:
    """The audited interaction of this request (created by the middleware).

    A coroutine because it does no I/O: FastAPI runs a plain-function
    dependency on the thread pool, a hop per request that costs more than
    the dependency itself."""
    current = getattr(request.state, "interaction", None)
    if current is None:  # a route outside the audited prefixes asked for one
        current = Interaction(action="operation", method=request.method, path=request.url.path)
        request.state.interaction = current
    return current


class AuditMiddleware:
    """Creates each data request's Interaction and records it if the route did not."""

    def __init__(self, app: ASGIApp, trail: AuditTrail):
        self.app = app
        self.trail = trail

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if scope["type"] != "http" or not path.startswith(AUDITED_PREFIXES) or path in NOT_AUDITED:
            await self.app(scope, receive, send)
            return
        client = scope.get("client")
        current = Interaction(
            action=_default_action(scope["method"], path),
            method=scope["method"],
            path=path,
            query=scope.get("query_string", b"").decode("latin-1"),
            source_ip=client[0] if client else None,
        )
        scope.setdefault("state", {})["interaction"] = current
        status = 500

        async def capture(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                if not current.recorded:
                    current.outcome = outcome_for_status(status)
                    await run_in_threadpool(self.trail.record, current)
            await send(message)

        await self.app(scope, receive, capture)


def _default_action(method: str, path: str) -> str:
    parts = [p for p in path.split("/") if p]
    if method == "POST" and len(parts) == 1:
        return "transaction"
    if "_history" in parts:
        return "vread" if parts[-2:-1] == ["_history"] else "history"
    if any(p.startswith("$") for p in parts):
        return "operation"
    return {"GET": "read" if len(parts) >= 3 else "search", "POST": "create", "PUT": "update", "DELETE": "delete"}.get(method, "operation")
