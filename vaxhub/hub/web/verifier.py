"""The public verifier page: scan, paste or upload a certificate QR; green or red.

Anyone may verify (a border officer, a restaurant): no sign-in. The page
posts what the camera read (decoded in the browser by zxing-wasm) or the
pasted text, or the uploaded image (decoded on the server by zxing-cpp), and
the hub verifies it with the same service and trust as `POST
/certificates/verify`. The answer shows only what a checker needs
(`vaxhub.hub.web.verifier_view`). Each verification is rate limited per
address and leaves an AuditEvent, like the API's.
"""

from __future__ import annotations

from fastapi import APIRouter
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import Response

from vaxhub.certificates.qr_reader import MAX_IMAGE_BYTES, certificate_in_image
from vaxhub.certificates.verify import MAX_TEXT_LENGTH
from vaxhub.errors import MalformedInput
from vaxhub.hub.web import WebContext
from vaxhub.hub.web.csrf import CSRF_FIELD
from vaxhub.hub.web.pages import PageRoute
from vaxhub.hub.web.verifier_view import checker_view

MAX_BODY = MAX_IMAGE_BYTES + 64 * 1024


def build_router(web: WebContext) -> APIRouter:
    router = APIRouter(prefix="/verify", route_class=PageRoute, include_in_schema=False)
    pages = web.pages

    def page(request: Request, *, view=None, unreadable: str | None = None, status: int = 200) -> Response:
        return pages.render(request, "verify.html", {"view": view, "unreadable": unreadable}, status=status)

    @router.get("")
    def verify_page(request: Request) -> Response:
        return page(request)

    @router.post("")
    async def verify(request: Request) -> Response:
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > MAX_BODY:
            raise MalformedInput(f"The image is too large: at most {MAX_IMAGE_BYTES // (1024 * 1024)} MB")
        form = await request.form(max_files=1, max_fields=4)
        pages.csrf.check(request, form.get(CSRF_FIELD))
        web.throttle(request, "verify")
        upload, pasted = form.get("image"), form.get("qr")
        try:
            if isinstance(upload, UploadFile) and upload.filename:
                data = await upload.read(MAX_IMAGE_BYTES + 1)
                text = await run_in_threadpool(certificate_in_image, data)
            elif isinstance(pasted, str) and pasted.strip():
                text = pasted.strip()[: MAX_TEXT_LENGTH + 1]
            else:
                raise MalformedInput("Scan, paste or upload a certificate QR code")
        except MalformedInput as exc:
            return page(request, unreadable=exc.message, status=400)
        report = await run_in_threadpool(web.certificates.verify, text)
        audit = web.interaction(request, "operation")
        audit.description = f"verified a {report.format or 'unrecognised'} certificate on the verifier page: " + (
            "valid" if report.valid else ", ".join(report.codes)
        )
        await run_in_threadpool(web.trail.record, audit)
        return page(request, view=checker_view(report))

    return router
