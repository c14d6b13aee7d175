"""Refuse request lines carrying control characters, before any route sees them.

A percent-encoded NUL or other C0 control character has no meaning in a FHIR
id, search value or operation name, and PostgreSQL text columns refuse NUL
outright: without this guard such a request reached the database and failed
there. The guard sits inside the audit middleware, so the refusal is still
recorded (with the character made printable by the trail).
"""

from __future__ import annotations

import re
from urllib.parse import unquote_to_bytes

from starlette.types import ASGIApp, Receive, Scope, Send

from vaxhub import errors as e
from vaxhub.hub.api.outcomes import error_response

_CONTROL = re.compile(rb"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_CONTROL_TEXT = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


class RefuseControlCharacters:
    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            where = None
            if _CONTROL_TEXT.search(scope.get("path", "")):
                where = "path"
            elif _CONTROL.search(unquote_to_bytes(scope.get("query_string", b"").replace(b"+", b" "))):
                where = "query"
            if where is not None:
                error = e.MalformedInput(f"The request {where} holds a control character", [e.Issue(f"control character in the {where}", None, "invalid")])
                await error_response(error)(scope, receive, send)
                return
        await self.app(scope, receive, send)
