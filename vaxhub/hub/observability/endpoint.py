"""`GET /metrics`: the Prometheus exposition, for monitoring only.

Served on the API's own port and protected there, rather than on a second
port: the hub runs behind load balancers and under process managers that
expose one port, and a second listener per worker process would need its own
supervision. Two credentials are accepted, as a bearer token:

- `VAXHUB_METRICS_TOKEN`, the static token a Prometheus scrape job sends
  (`authorization: {credentials_file: …}`); Prometheus cannot sign the
  short-lived private_key_jwt assertions the hub's own tokens need;
- a hub access token of an operator with the `monitoring` role, for people
  and tools that already log in to the hub.

Anything else is refused (401 without a credential, 403 with a token that is
not allowed). The figures are operational: no personal data, so no audit event.
"""

from __future__ import annotations

import hmac

from fastapi import APIRouter, Request
from fastapi.responses import Response
from sqlalchemy import Engine
from starlette.concurrency import run_in_threadpool

from vaxhub.errors import AuthenticationFailed, Forbidden
from vaxhub.hub.observability.collectors import DatabaseCollector
from vaxhub.hub.observability.metrics import render
from vaxhub.hub.security.principal import OPERATOR
from vaxhub.hub.security.tokens import TokenService
from vaxhub.settings import PLACEHOLDER_SECRETS, Settings

MONITORING_ROLE = "monitoring"
MIN_TOKEN_LENGTH = 24


def metrics_token(settings: Settings) -> bytes | None:
    """The configured scrape token; a short or placeholder one is refused outside development."""
    if settings.metrics_token is None:
        return None
    token = settings.metrics_token.get_secret_value()
    weak = token.strip().lower() in PLACEHOLDER_SECRETS or len(token) < MIN_TOKEN_LENGTH
    if weak and settings.environment != "development":
        raise ValueError(f"VAXHUB_METRICS_TOKEN must be a random secret of {MIN_TOKEN_LENGTH} characters or more")
    return token.encode("utf-8") if token else None


def build_router(settings: Settings, engine: Engine, tokens: TokenService) -> APIRouter:
    router = APIRouter(tags=["Operations"])
    scrape_token = metrics_token(settings)
    database = DatabaseCollector(engine)

    def authorise(request: Request) -> None:
        scheme, _, credential = request.headers.get("authorization", "").partition(" ")
        credential = credential.strip()
        if scheme.lower() != "bearer" or not credential:
            raise AuthenticationFailed("GET /metrics needs the metrics token or an operator token with the monitoring role")
        if scrape_token is not None and hmac.compare_digest(credential.encode("utf-8"), scrape_token):
            return
        who = tokens.verify(credential)  # 401 for anything that is not a valid hub token
        if who.kind != OPERATOR or MONITORING_ROLE not in who.roles:
            raise Forbidden("GET /metrics is for monitoring: an operator token with the monitoring role")

    @router.get("/metrics", summary="Prometheus metrics (metrics token or monitoring operators)", response_class=Response)
    async def metrics(request: Request) -> Response:
        authorise(request)
        body, content_type = await run_in_threadpool(render, database)
        return Response(body, media_type=content_type, headers={"Cache-Control": "no-store"})

    return router
