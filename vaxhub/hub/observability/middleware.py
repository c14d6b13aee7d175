"""The outermost HTTP middleware: each request's id, and its count and duration per route.

The caller's `X-Request-ID` is kept when sane (`request_context.sane_request_id`),
otherwise a fresh id is made; either way it is bound for everything the
request does and returned in the response's `X-Request-ID`. The metrics are
labelled with the matched route's template, read after routing, so that
`/fhir/Patient/123` and `/fhir/Patient/456` are one series; paths no route
matched share the label `unmatched`.

Each request also leaves one access line on the `vaxhub.access` logger
(method, route template, status, milliseconds, and the request id through the
formatter). The raw path and query are left out on purpose: they carry
identity card numbers and names.
"""

from __future__ import annotations

import logging
import time

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from vaxhub.hub.observability.metrics import HTTP_DURATION, HTTP_REQUESTS
from vaxhub.hub.observability.request_context import REQUEST_ID_HEADER, bound_request_id, new_request_id, sane_request_id

access_log = logging.getLogger("vaxhub.access")
_HEADER = REQUEST_ID_HEADER.lower().encode("latin-1")
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


def route_template(scope: Scope) -> str:
    route = scope.get("route")
    path = getattr(route, "path", None)
    return path if isinstance(path, str) and path else "unmatched"


def caller_request_id(scope: Scope) -> str | None:
    for name, value in scope.get("headers") or ():
        if name == _HEADER:
            return sane_request_id(value.decode("latin-1"))
    return None


class RequestObservation:
    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = caller_request_id(scope) or new_request_id()
        method = scope.get("method", "GET") if scope.get("method") in _METHODS else "OTHER"
        status = 500  # unless a response starts: an exception escaping the app is answered 500
        started = time.perf_counter()

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", ()), (_HEADER, request_id.encode("latin-1"))]
            await send(message)

        with bound_request_id(request_id):
            try:
                await self.app(scope, receive, send_with_id)
            finally:
                route = route_template(scope)
                seconds = time.perf_counter() - started
                HTTP_REQUESTS.labels(method, route, str(status)).inc()
                HTTP_DURATION.labels(method, route).observe(seconds)
                if access_log.isEnabledFor(logging.INFO):
                    duration_ms = round(seconds * 1000, 1)
                    access_log.info("%s %s %s %.1f ms", method, route, status, duration_ms,
                                    extra={"method": method, "route": route, "status": status, "duration_ms": duration_ms})
