"""The operator dashboard: sign in with an operator token, then charts and tables.

Operators already get access tokens from `POST /auth/token` (SMART Backend
Services with their registered key, `vaxhub token moh-operator --key …`).
The sign-in page takes that token and keeps it, unchanged, in an HttpOnly,
SameSite=Strict cookie limited to `/dashboard`, expiring with the token: the
page never holds more than the operator already had, and a shorter token
means a shorter session. Only `operator` tokens are accepted; an operator
bound to a site sees that site only. The figures are aggregates, with no
personal data; `GET /dashboard/data` serves them as JSON to the charts (and
to scripts, with the token as a bearer).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import jwt
from fastapi import APIRouter
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response

from vaxhub.errors import AuthenticationFailed, Forbidden, InvalidResource, Issue, UnsupportedRequest
from vaxhub.fhir.normalise.provinces import historical_province_by_code
from vaxhub.hub.api.access import bearer_token
from vaxhub.hub.security.principal import OPERATOR, Principal
from vaxhub.hub.web import WebContext
from vaxhub.hub.web.csrf import CSRF_FIELD, secure_cookies
from vaxhub.hub.web.dashboard_data import DashboardFilter, dashboard_figures
from vaxhub.hub.web.pages import PageRoute

OPERATOR_COOKIE = "vaxhub_operator"
COOKIE_PATH = "/dashboard"
MAX_TOKEN_LENGTH = 8192


def operator_of(web: WebContext, token: str | None) -> Principal:
    """The operator a token names; 401 for no or a bad token, 403 for another kind of caller."""
    if not token:
        raise AuthenticationFailed("Sign in with an operator access token")
    who = web.tokens.verify(token)
    if who.kind != OPERATOR:
        raise Forbidden("The dashboard is for operators: this token belongs to another kind of caller")
    return who


def read_filter(request: Request, who: Principal) -> DashboardFilter:
    """Province and date range from the query string; 400 (like a bad search parameter) when they are not valid."""
    query = request.query_params
    issues: list[Issue] = []
    province = (query.get("province") or "").strip() or None
    if province is not None:
        try:
            province = historical_province_by_code(province).code
        except InvalidResource:
            issues.append(Issue(f"unknown province code {province!r}", "province"))
    dates: dict[str, dt.date | None] = {}
    for name in ("since", "until"):
        raw = (query.get(name) or "").strip()
        try:
            dates[name] = dt.date.fromisoformat(raw) if raw else None
        except ValueError:
            issues.append(Issue(f"{name} must be a date such as 2021-08-01", name))
            dates[name] = None
    if dates["since"] and dates["until"] and dates["since"] > dates["until"]:
        issues.append(Issue("the start date is after the end date", "since"))
    if issues:
        raise UnsupportedRequest("The filter is not valid: " + "; ".join(i.message for i in issues), issues)
    return DashboardFilter(province=province, since=dates["since"], until=dates["until"], site_code=who.site_code)


def _figures(web: WebContext, request: Request, who: Principal) -> dict[str, Any]:
    web.rate_limiter.take(who.client_id or who.subject)
    wanted = read_filter(request, who)
    figures = dashboard_figures(web.engine, wanted)
    audit = web.interaction(request, "search", who)
    audit.description = "dashboard figures (aggregates, no personal data)"
    web.trail.record(audit)
    return figures


def build_router(web: WebContext) -> APIRouter:
    router = APIRouter(prefix="/dashboard", route_class=PageRoute, include_in_schema=False)
    pages = web.pages

    def signed_in(request: Request) -> Principal | None:
        try:
            return operator_of(web, request.cookies.get(OPERATOR_COOKIE))
        except (AuthenticationFailed, Forbidden):
            return None

    @router.get("/sign-in")
    def sign_in_page(request: Request) -> Response:
        return pages.render(request, "dashboard_sign_in.html", {"problem": None})

    @router.post("/sign-in")
    async def sign_in(request: Request) -> Response:
        form = await request.form(max_files=0, max_fields=4)
        pages.csrf.check(request, form.get(CSRF_FIELD))
        web.throttle(request, "dashboard-sign-in")
        token = form.get("token")
        token = token.strip() if isinstance(token, str) else ""
        try:
            if len(token) > MAX_TOKEN_LENGTH:
                raise AuthenticationFailed("That is not an access token")
            operator_of(web, token)
        except (AuthenticationFailed, Forbidden) as exc:
            status = 403 if isinstance(exc, Forbidden) else 401
            return pages.render(request, "dashboard_sign_in.html", {"problem": exc.message}, status=status)
        expires = int(jwt.decode(token, options={"verify_signature": False})["exp"])
        lifetime = max(1, expires - int(web.tokens.clock()))
        pages.csrf.rotate(request)
        response = RedirectResponse("/dashboard", status_code=303)
        response.set_cookie(OPERATOR_COOKIE, token, max_age=lifetime, httponly=True, samesite="strict", secure=secure_cookies(request), path=COOKIE_PATH)
        pages.finish(request, response)
        return response

    @router.post("/sign-out")
    async def sign_out(request: Request) -> Response:
        form = await request.form(max_files=0, max_fields=4)
        pages.csrf.check(request, form.get(CSRF_FIELD))
        response = RedirectResponse("/dashboard/sign-in", status_code=303)
        response.delete_cookie(OPERATOR_COOKIE, path=COOKIE_PATH)
        pages.csrf.rotate(request)
        pages.finish(request, response)
        return response

    @router.get("")
    async def dashboard(request: Request) -> Response:
        who = signed_in(request)
        if who is None:
            return RedirectResponse("/dashboard/sign-in", status_code=303)
        figures = await run_in_threadpool(_figures, web, request, who)
        query = request.url.query
        return pages.render(request, "dashboard.html", {
            "figures": figures, "operator": who, "data_url": "/dashboard/data" + (f"?{query}" if query else ""),
        })

    return router


def build_data_router(web: WebContext) -> APIRouter:
    """The figures as JSON (errors as OperationOutcome, like the API)."""
    router = APIRouter(prefix="/dashboard", tags=["Operations: dashboard"])

    @router.get("/data", summary="Dashboard figures: doses per day, coverage, verification results, backlogs (aggregates)")
    def data(request: Request) -> JSONResponse:
        who = operator_of(web, bearer_token(request) or request.cookies.get(OPERATOR_COOKIE))
        return JSONResponse(_figures(web, request, who), headers={"Cache-Control": "no-store"})

    return router
