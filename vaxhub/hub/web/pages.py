"""Rendering the pages: one Jinja2 environment per language, and the error page.

`PageRoute` is the route class of every page: a domain error (bad input,
refused, not found, rate limited) becomes an HTML page in the visitor's
language with the matching 4xx status, instead of the API's OperationOutcome.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Coroutine
from urllib.parse import urlencode

from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response

from vaxhub.errors import RateLimited, VaxhubError
from vaxhub.fhir.outcome import status_for
from vaxhub.hub.web.csrf import CSRF_FIELD, CsrfGuard, secure_cookies
from vaxhub.hub.web.i18n import LANGUAGE_COOKIE, LANGUAGES, Formats, language_of, requested_language, translations

SECURITY_HEADERS = {
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",
    # Everything is served from the hub itself; the QR reader compiles WebAssembly.
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self' 'wasm-unsafe-eval'; style-src 'self'; img-src 'self' data: blob:; "
        "media-src 'self' blob:; connect-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'"
    ),
}


@dataclass
class Pages:
    csrf: CsrfGuard
    _environments: dict[str, Environment] = field(default_factory=dict)

    def environment(self, language: str) -> Environment:
        if language not in self._environments:
            env = Environment(
                loader=PackageLoader("vaxhub.hub.web", "templates"),
                autoescape=select_autoescape(["html"]),
                extensions=["jinja2.ext.i18n"],
                undefined=StrictUndefined,
                trim_blocks=True,
                lstrip_blocks=True,
            )
            env.install_gettext_translations(translations(language), newstyle=True)  # type: ignore[attr-defined]
            formats = Formats(language)
            env.filters.update(date=formats.date, instant=formats.instant, number=formats.number, percent=formats.percent, country=formats.country)
            self._environments[language] = env
        return self._environments[language]

    def render(self, request: Request, template: str, context: dict[str, Any] | None = None, *, status: int = 200) -> HTMLResponse:
        language = language_of(request)
        page = self.environment(language).get_template(template)
        html = page.render(
            request=request,
            language=language,
            languages=list(LANGUAGES),
            switch_url=lambda lang: _switch_url(request, lang),
            csrf_field=CSRF_FIELD,
            csrf_token=self.csrf.token_for(request),
            **(context or {}),
        )
        response = HTMLResponse(html, status_code=status, headers=SECURITY_HEADERS)
        self.finish(request, response)
        return response

    def finish(self, request: Request, response: Response) -> None:
        """Cookies every page response carries: the CSRF key when new, the chosen language."""
        self.csrf.keep(request, response)
        asked = requested_language(request)
        if asked is not None:
            response.set_cookie(LANGUAGE_COOKIE, asked, max_age=365 * 86400, httponly=True, samesite="strict", secure=secure_cookies(request), path="/")

    def error(self, request: Request, status: int, message: str, *, headers: dict[str, str] | None = None) -> HTMLResponse:
        response = self.render(request, "error.html", {"status": status, "message": message}, status=status)
        response.headers.update(headers or {})
        return response


def _switch_url(request: Request, language: str) -> str:
    query = [(k, v) for k, v in request.query_params.multi_items() if k != "lang"] + [("lang", language)]
    return f"{request.url.path}?{urlencode(query)}"


class PageRoute(APIRoute):
    """A page: domain errors answer as HTML pages with their 4xx status."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def page_handler(request: Request) -> Response:
            pages: Pages = request.app.state.pages
            try:
                return await handler(request)
            except RateLimited as exc:
                return pages.error(request, 429, exc.message, headers={"Retry-After": str(exc.retry_after)})
            except VaxhubError as exc:
                return pages.error(request, status_for(exc), exc.message)
            except RequestValidationError:
                return pages.error(request, 400, "The form was not filled in as expected")
            except HTTPException as exc:
                if exc.status_code >= 500:
                    raise
                return pages.error(request, exc.status_code, str(exc.detail))

        return page_handler


__all__ = ["PageRoute", "Pages", "SECURITY_HEADERS"]
