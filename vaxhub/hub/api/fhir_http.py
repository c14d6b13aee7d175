"""HTTP details of the FHIR REST interface: media types, bodies, headers.

Bodies are read and parsed here rather than by FastAPI's model binding, so
that a malformed body becomes a FHIR OperationOutcome (400) and so that the
ingest path pays for one JSON parse and one fhir.resources validation only.
"""

from __future__ import annotations

from email.utils import format_datetime
from datetime import timezone
from typing import Any

import orjson
from fastapi import Request
from starlette.responses import Response

from vaxhub.errors import Issue, MalformedInput, UnsupportedRequest
from vaxhub.hub.storage.store import Stored

FHIR_JSON = "application/fhir+json"
ACCEPTED_BODY_TYPES = ("application/fhir+json", "application/json", "application/json+fhir")


class FhirResponse(Response):
    media_type = FHIR_JSON

    def render(self, content: Any) -> bytes:
        if content is None:
            return b""
        return orjson.dumps(content)


async def read_json_body(request: Request, max_bytes: int) -> Any:
    content_type = request.headers.get("content-type", FHIR_JSON).split(";")[0].strip().lower()
    if content_type not in ACCEPTED_BODY_TYPES:
        raise UnsupportedRequest(
            f"Content-Type {content_type!r} is not accepted; send application/fhir+json",
            [Issue(f"Unsupported Content-Type {content_type}", "Content-Type", "not-supported")],
        )
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > max_bytes:
        raise MalformedInput(f"The body is larger than {max_bytes} bytes", [Issue("Body too large", None, "too-long")])
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > max_bytes:
            raise MalformedInput(f"The body is larger than {max_bytes} bytes", [Issue("Body too large", None, "too-long")])
    if not body.strip():
        raise MalformedInput("The request has no body; a FHIR resource was expected")
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise MalformedInput(f"The body is not valid JSON: {exc}", [Issue(f"Invalid JSON: {exc}", None, "structure")]) from None


def prefers(request: Request, key: str) -> str | None:
    """The value of one `Prefer` token (RFC 7240), e.g. return=minimal."""
    for header in request.headers.getlist("prefer"):
        for token in header.split(","):
            name, _, value = token.strip().partition("=")
            if name.strip().lower() == key:
                return value.strip().strip('"') or None
    return None


def version_headers(stored: Stored) -> dict[str, str]:
    return {
        "ETag": stored.etag,
        "Last-Modified": format_datetime(stored.last_updated.replace(tzinfo=timezone.utc), usegmt=True),
    }


def base_url(request: Request, configured: str | None) -> str:
    if configured:
        return configured.rstrip("/")
    return str(request.base_url).rstrip("/") + "/fhir"
