"""The citizen portal: look up one's record, sign in with a one-time code,
see doses and certificate colour, download the certificate, ask for a correction.

The session is the patient access token the OTP login issues (the same token
the app would get), kept in an HttpOnly, SameSite=Strict cookie limited to
`/portal` and expiring with the token. Every read of health data goes through
the API's policy and leaves an AuditEvent naming the citizen. The lookup
answers the same whether or not the details match anyone.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from vaxhub.errors import AuthenticationFailed, InvalidResource, NotFound, VaxhubError
from vaxhub.fhir.outcome import status_for
from vaxhub.hub.audit.trail import SERIOUS_FAILURE, SUCCESS, Interaction, outcome_for_status
from vaxhub.hub.certificates.downloads import StoredCertificate, render_download_served
from vaxhub.hub.security.login_audit import record_login
from vaxhub.hub.security.person_scope import scoped_to_person
from vaxhub.hub.security.principal import NOBODY, PATIENT, Principal
from vaxhub.hub.web import WebContext
from vaxhub.hub.web.corrections import file_correction, person_corrections
from vaxhub.hub.web.csrf import CSRF_FIELD, secure_cookies
from vaxhub.hub.web.health_record import own_patient, read_health_record
from vaxhub.hub.web.pages import PageRoute
from vaxhub.hub.web.portal_lookup import find_patient, read_lookup_form

SESSION_COOKIE = "vaxhub_portal"
CHALLENGE_COOKIE = "vaxhub_challenge"
COOKIE_PATH = "/portal"
CHALLENGE_SECONDS = 300
# What the portal offers to download: the printable PDF, the QR images, the SHC file.
PORTAL_DOWNLOADS = {"certificate.pdf": "attachment", "dcc.png": "attachment", "shc.png": "attachment", "card.smart-health-card": "attachment"}
MAX_FORM_FIELDS = 10


async def read_form(request: Request) -> FormData:
    return await request.form(max_files=0, max_fields=MAX_FORM_FIELDS)


def _see_other(url: str) -> RedirectResponse:
    return RedirectResponse(url, status_code=303)


def build_router(web: WebContext) -> APIRouter:
    router = APIRouter(prefix="/portal", route_class=PageRoute, include_in_schema=False)
    pages = web.pages

    def set_cookie(request: Request, response: Response, name: str, value: str, seconds: int) -> None:
        response.set_cookie(name, value, max_age=seconds, httponly=True, samesite="strict", secure=secure_cookies(request), path=COOKIE_PATH)

    def session(request: Request) -> Principal | None:
        """The signed-in citizen, with their person's compartment; None when signed out or expired."""
        token = request.cookies.get(SESSION_COOKIE)
        if not token:
            return None
        try:
            who = web.tokens.verify(token)
        except AuthenticationFailed:
            return None
        if who.kind != PATIENT or not who.patient_id:
            return None
        return scoped_to_person(who, web.engine)

    def signed_in(request: Request) -> Principal:
        who = session(request)
        if who is None:
            raise AuthenticationFailed("Your session has ended; look up your record again")
        return who

    def lookup_page(request: Request, *, status: int = 200, errors: set[str] | None = None, form: dict[str, Any] | None = None) -> Response:
        return pages.render(request, "portal_lookup.html", {"errors": errors or set(), "form": form or {}}, status=status)

    @router.get("")
    def start(request: Request) -> Response:
        if session(request) is not None:
            return _see_other("/portal/record")
        return lookup_page(request)

    @router.post("/lookup")
    async def lookup(request: Request) -> Response:
        form = await read_form(request)
        pages.csrf.check(request, form.get(CSRF_FIELD))
        web.throttle(request, "portal-lookup")
        typed = {k: form.get(k) for k in ("name", "birth_date", "phone")}
        try:
            details = read_lookup_form(typed)
        except InvalidResource as exc:
            shown = {k: v for k, v in typed.items() if isinstance(v, str)}
            return lookup_page(request, status=400, errors={i.expression or "" for i in exc.issues}, form=shown)
        challenge = await run_in_threadpool(web.otp.start_for_patient, lambda: find_patient(web.store, details), details.phone)
        response = _see_other("/portal/code")
        set_cookie(request, response, CHALLENGE_COOKIE, challenge, CHALLENGE_SECONDS)
        pages.finish(request, response)
        return response

    @router.get("/code")
    def code_page(request: Request) -> Response:
        if not request.cookies.get(CHALLENGE_COOKIE):
            return _see_other("/portal")
        return pages.render(request, "portal_code.html", {"wrong": False})

    @router.post("/code")
    async def sign_in(request: Request) -> Response:
        form = await read_form(request)
        pages.csrf.check(request, form.get(CSRF_FIELD))
        challenge = request.cookies.get(CHALLENGE_COOKIE, "")
        code = form.get("code")
        source_ip = request.client.host if request.client else None
        try:
            who = await run_in_threadpool(web.otp.verify, challenge, code if isinstance(code, str) else "")
        except AuthenticationFailed as exc:
            reason = exc.message  # bound here: the closure below must not reach for `exc`
            await run_in_threadpool(lambda: record_login(
                web.trail, method="portal-otp", outcome=SERIOUS_FAILURE, who=NOBODY, path=request.url.path, source_ip=source_ip, detail=reason
            ))
            return pages.render(request, "portal_code.html", {"wrong": True}, status=401)
        token, lifetime = web.tokens.issue(who, web.settings.patient_token_seconds)
        await run_in_threadpool(lambda: record_login(
            web.trail, method="portal-otp", outcome=SUCCESS, who=who, path=request.url.path, source_ip=source_ip,
            detail=f"portal session of {lifetime} s",
        ))
        pages.csrf.rotate(request)  # a new session, a new form key
        response = _see_other("/portal/record")
        set_cookie(request, response, SESSION_COOKIE, token, lifetime)
        response.delete_cookie(CHALLENGE_COOKIE, path=COOKIE_PATH)
        pages.finish(request, response)
        return response

    @router.get("/record")
    def record(request: Request) -> Response:
        who = session(request)
        if who is None:
            return _see_other("/portal")
        audit = web.interaction(request, "read", who)
        health = read_health_record(web.store, web.certificates, who, audit)
        web.trail.record(audit)
        return pages.render(request, "portal_record.html", {"record": health, "downloads": list(PORTAL_DOWNLOADS)})

    @router.post("/certificate")
    async def issue(request: Request) -> Response:
        form = await read_form(request)
        pages.csrf.check(request, form.get(CSRF_FIELD))
        who = signed_in(request)
        audit = web.interaction(request, "issue-certificate", who)
        try:
            await run_in_threadpool(
                lambda: web.certificates.issue(who.patient_id or "", who=who, root=web.root(request), interaction=audit)
            )
        except VaxhubError as exc:
            if not audit.recorded:  # refused: the attempt is audited too
                audit.outcome = outcome_for_status(status_for(exc))
                audit.description = exc.message[:500]
                web.trail.record(audit)
            raise
        return _see_other("/portal/record#certificate")

    @router.get("/certificate/{name}")
    async def download(name: str, request: Request) -> Response:
        def found() -> tuple[StoredCertificate, Interaction]:
            who = signed_in(request)
            if name not in PORTAL_DOWNLOADS:
                raise NotFound(f"no download {name!r}")
            patient = own_patient(web.store, who)
            certificate = web.certificates.latest(patient.id)
            audit = web.interaction(request, "read", who)
            audit.touched("Patient", patient.id, patient.version, patient.content)
            audit.description = f"downloaded {certificate.uvci} as {name} from the citizen portal"
            return certificate, audit

        certificate, audit = await run_in_threadpool(found)
        service = web.certificates
        body, media_type = await render_download_served(certificate, name, cache=service.renders, pdfs=service.pdfs)
        await run_in_threadpool(web.trail.record, audit)
        filename = f"{certificate.uvci.rsplit(':', 1)[-1][:12].lower()}-{name}"
        return Response(body, media_type=media_type, headers={
            "Cache-Control": "no-store", "X-Content-Type-Options": "nosniff",
            "Content-Disposition": f'{PORTAL_DOWNLOADS[name]}; filename="{filename}"',
        })

    @router.get("/correction")
    def correction_form(request: Request) -> Response:
        who = session(request)
        if who is None:
            return _see_other("/portal")
        audit = web.interaction(request, "read", who)
        health = read_health_record(web.store, web.certificates, who, audit)
        requests = person_corrections(web.store, who, audit)
        web.trail.record(audit)
        return pages.render(request, "portal_correction.html", {"record": health, "filed": None, "error": False, "requests": requests})

    @router.post("/correction")
    async def correction(request: Request) -> Response:
        form = await read_form(request)
        pages.csrf.check(request, form.get(CSRF_FIELD))
        who = signed_in(request)
        patient = own_patient(web.store, who)
        audit = web.interaction(request, "create", who)
        try:
            task_id = await run_in_threadpool(
                file_correction, web.store, who, patient, form.get("focus"), form.get("description"), audit, form.get("field"), form.get("value")
            )
        except InvalidResource:
            read = web.interaction(request, "read", who)
            health = read_health_record(web.store, web.certificates, who, read)
            requests = person_corrections(web.store, who, read)
            web.trail.record(read)
            return pages.render(request, "portal_correction.html", {"record": health, "filed": None, "error": True, "requests": requests}, status=400)
        return pages.render(request, "portal_correction.html", {"record": None, "filed": task_id, "error": False, "requests": []}, status=201)

    @router.post("/sign-out")
    async def sign_out(request: Request) -> Response:
        form = await read_form(request)
        pages.csrf.check(request, form.get(CSRF_FIELD))
        response = _see_other("/portal")
        response.delete_cookie(SESSION_COOKIE, path=COOKIE_PATH)
        pages.csrf.rotate(request)
        pages.finish(request, response)
        return response

    return router
