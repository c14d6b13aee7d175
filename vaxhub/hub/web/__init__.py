"""The hub's web pages, rendered on the server (Jinja2), for people without the app.

- `/portal`: the citizen portal. Name, birth date and phone → a one-time code
  by SMS → a short session (the patient token in an HttpOnly, SameSite=Strict
  cookie) to see one's doses and certificate colour, download the
  certificate and ask for a correction.
- `/verify`: the public verifier page. Camera scan (zxing-wasm, shipped with
  the page), paste or upload a QR, and a green or red answer with reasons.
- `/dashboard`: the operator dashboard (sign in with an operator access
  token): doses per day, coverage, identity verification results, backlogs.

Vietnamese by default, English with `?lang=en`; every script and style is
served by the hub itself (no CDN). `install_pages(app, otp=…)` adds them to
the app built by `vaxhub.hub.app.build_app`.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles
from sqlalchemy import Engine
from starlette.requests import Request

from vaxhub.hub.api.flat_routes import add_routes
from vaxhub.hub.api.access import RateLimiter
from vaxhub.hub.audit.trail import AuditTrail, Interaction
from vaxhub.hub.certificates.service import CertificateService
from vaxhub.hub.security.citizen_login import OtpLogin
from vaxhub.hub.security.principal import NOBODY, Principal
from vaxhub.hub.security.tokens import TokenService
from vaxhub.hub.storage.store import FhirStore
from vaxhub.hub.web.csrf import CsrfGuard
from vaxhub.hub.web.pages import Pages
from vaxhub.settings import Settings

STATIC_DIR = Path(__file__).parent / "static"
STATIC_PATH = "/web-static"


@dataclass
class WebContext:
    """What the page routers use, taken from the app the composition root built."""

    settings: Settings
    engine: Engine
    store: FhirStore
    tokens: TokenService
    trail: AuditTrail
    certificates: CertificateService
    otp: OtpLogin
    rate_limiter: RateLimiter
    pages: Pages

    def root(self, request: Request) -> str:
        return (self.settings.public_url or str(request.base_url)).rstrip("/")

    def interaction(self, request: Request, action: str, who: Principal = NOBODY) -> Interaction:
        """The audit record of one page request (recorded by the route)."""
        client = request.client
        return Interaction(action=action, method=request.method, path=request.url.path, source_ip=client.host if client else None, principal=who)

    def throttle(self, request: Request, what: str) -> None:
        """The hub's rate limit, per client address, for pages anyone may use."""
        client = request.client
        self.rate_limiter.take(f"{what}:{client.host if client else 'unknown'}", exact=True)


def _form_secret(tokens: TokenService) -> bytes:
    """A key for the CSRF tokens, derived from the hub's signing key (shared by every hub process)."""
    private = tokens.key.private_numbers().private_value.to_bytes(32, "big")
    return hashlib.sha256(b"vaxhub web forms\0" + private).digest()


def install_pages(app: FastAPI, *, otp: OtpLogin) -> None:
    from vaxhub.hub.web import dashboard, portal, verifier

    pages = Pages(CsrfGuard(_form_secret(app.state.tokens)))
    web = WebContext(
        settings=app.state.settings, engine=app.state.engine, store=app.state.store, tokens=app.state.tokens,
        trail=app.state.audit, certificates=app.state.certificates, otp=otp, rate_limiter=app.state.rate_limiter, pages=pages,
    )
    app.state.pages = pages
    add_routes(app, portal.build_router(web))
    add_routes(app, verifier.build_router(web))
    add_routes(app, dashboard.build_router(web))
    add_routes(app, dashboard.build_data_router(web))
    app.mount(STATIC_PATH, StaticFiles(directory=STATIC_DIR), name="web-static")
