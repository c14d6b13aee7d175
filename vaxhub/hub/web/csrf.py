"""Cross-site request forgery protection for the forms of the web pages.

Each browser gets a random session key in an HttpOnly, SameSite=Strict cookie;
every form carries HMAC(hub secret, key) in a hidden field, and a POST is
accepted only when the field matches the cookie's key. Nothing is kept on the
server (any hub process checks any form), a token cannot be guessed without
the cookie, and signing in replaces the key, so a token from before the
sign-in is worthless after it.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass

from starlette.requests import Request
from starlette.responses import Response

from vaxhub.errors import Forbidden

CSRF_COOKIE = "vaxhub_csrf"
CSRF_FIELD = "csrf"
KEY_BYTES = 32


def secure_cookies(request: Request) -> bool:
    """Cookies get the Secure flag whenever the page was reached over HTTPS."""
    return request.url.scheme == "https" or request.headers.get("x-forwarded-proto") == "https"


@dataclass(frozen=True)
class CsrfGuard:
    secret: bytes

    def _token(self, key: str) -> str:
        return hmac.new(self.secret, f"csrf:{key}".encode(), hashlib.sha256).hexdigest()

    def key_of(self, request: Request) -> str:
        """The browser's session key, or a new one (set on the response by `keep`)."""
        fresh = getattr(request.state, "csrf_key", None)
        if fresh is not None:
            return fresh
        current = request.cookies.get(CSRF_COOKIE, "")
        if len(current) == KEY_BYTES * 2 and all(c in "0123456789abcdef" for c in current):
            return current
        request.state.csrf_key = secrets.token_hex(KEY_BYTES)
        return request.state.csrf_key

    def token_for(self, request: Request) -> str:
        return self._token(self.key_of(request))

    def keep(self, request: Request, response: Response) -> None:
        """Send the cookie when this response introduced a new key."""
        fresh = getattr(request.state, "csrf_key", None)
        if fresh is not None:
            response.set_cookie(CSRF_COOKIE, fresh, httponly=True, samesite="strict", secure=secure_cookies(request), path="/")

    def rotate(self, request: Request) -> None:
        """Start a new key (after signing in); `keep` sends it."""
        request.state.csrf_key = secrets.token_hex(KEY_BYTES)

    def check(self, request: Request, form_token: object) -> None:
        key = request.cookies.get(CSRF_COOKIE)
        if not key or not isinstance(form_token, str) or not hmac.compare_digest(self._token(key), form_token):
            raise Forbidden("The form has expired or did not come from this site; reload the page and try again")
