"""Health certificates over HTTP: issue, download, verify, revoke, trust lists.

Who may do what:

| caller | may |
|---|---|
| system client (site, registry) with `system/Patient.r` and `system/Immunization.r` | issue and download anyone's certificate (the read access `Patient/$health-cards-issue` asks for) |
| citizen | issue and download their own; any other Patient id answers 404, as if unknown |
| operator with the `certificates` role | all of the above; override the identity check with a reason; revoke; import trust lists |
| verifier | `POST /certificates/verify` and the public trust lists, nothing else |
| anyone, no token | `GET /certificates/trust-list`, `/certificates/revocation-list`, `/shc/.well-known/jwks.json` |

Every authorised request leaves one AuditEvent: issuance writes it in the
issuing transaction; downloads, verifications and refusals record theirs
before the response leaves. Errors are OperationOutcomes with 4xx.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator, Callable
from typing import Any

from fastapi import APIRouter, Body, Depends, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from vaxhub.certificates.qr_reader import MAX_IMAGE_BYTES, certificate_in_image
from vaxhub.certificates.verify import MAX_TEXT_LENGTH
from vaxhub.errors import Forbidden, InvalidResource, Issue, MalformedInput, NotFound, UnsupportedRequest, VaxhubError
from vaxhub.fhir.outcome import status_for
from vaxhub.hub.api.access import interaction, principal, recorded
from vaxhub.hub.audit.trail import AuditTrail, Interaction, outcome_for_status
from vaxhub.hub.certificates.downloads import DOWNLOADS, PDF, StoredCertificate, render_download, render_download_served
from vaxhub.hub.certificates.issuance import CERTIFICATES_ROLE
from vaxhub.hub.certificates.linked_records import linked_patient_ids
from vaxhub.hub.certificates.service import CARD_ISSUER_PATH, CertificateService
from vaxhub.hub.security.policy import require
from vaxhub.hub.security.principal import OPERATOR, PATIENT, VERIFIER, Principal
from vaxhub.hub.storage.store import FhirStore

NO_STORE = {"Cache-Control": "no-store"}
ATTACHMENTS = {"card.smart-health-card", "certificate.pdf"}


class IssueRequest(BaseModel):
    override_reason: str | None = Field(
        None, max_length=1000,
        description="Operators with the 'certificates' role only: issue although the registry has not verified the identity, for this reason (audited).",
    )


class RevokeCertificate(BaseModel):
    uvci: str = Field(..., min_length=10, max_length=80, description="The certificate's UVCI (URN:UVCI:01:VN:…).")
    reason: str = Field(..., min_length=1, max_length=1000)


class RevokeSigner(BaseModel):
    signer: str = Field(..., min_length=8, max_length=128, description="SHA-256 fingerprint (hex), DCC kid (base64) or SHC kid of one of our document signers.")
    reason: str = Field(..., min_length=1, max_length=1000)


class VerifyRequest(BaseModel):
    qr: str = Field(..., max_length=MAX_TEXT_LENGTH, description="What the QR code holds: HC1:…, shc:/…, a JWS or a .smart-health-card file.")


def _root(request: Request) -> str:
    return str(request.base_url).rstrip("/")


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


# -- who may -----------------------------------------------------------------------


def _is_certificate_operator(who: Principal) -> bool:
    return who.kind == OPERATOR and CERTIFICATES_ROLE in who.roles


def require_operator(who: Principal) -> None:
    if not _is_certificate_operator(who):
        raise Forbidden(f"This needs an operator token with the '{CERTIFICATES_ROLE}' role")


def require_patient_access(who: Principal, patient_id: str, store: FhirStore) -> None:
    """Issue or read `patient_id`'s certificates: a citizen only their own (else 404)."""
    if who.kind == VERIFIER:
        raise Forbidden("Verifier tokens may verify certificates and read trust lists only")
    if _is_certificate_operator(who):
        return
    if who.kind == OPERATOR:
        raise Forbidden(f"Operators need the '{CERTIFICATES_ROLE}' role for certificates")
    if who.kind == PATIENT and (who.patient_id is None or patient_id not in linked_patient_ids(store, who.patient_id)):
        raise NotFound(f"Patient/{patient_id} is not known")
    require(who, "Patient", "r")
    require(who, "Immunization", "r")


# -- audit -------------------------------------------------------------------------


def _audited(trail: AuditTrail):
    async def audited(request: Request) -> AsyncIterator[Interaction]:
        """The request's Interaction, recorded once whatever happens (refusals included).

        A coroutine: FastAPI runs a plain generator's entry and exit each on
        the thread pool, and only the exit has I/O to do."""
        current = getattr(request.state, "interaction", None)
        if current is None:
            client = request.client
            current = Interaction(
                action="operation", method=request.method, path=request.url.path,
                query=request.url.query, source_ip=client.host if client else None,
            )
            request.state.interaction = current
        try:
            yield current
        except Exception as exc:
            if not current.recorded:
                if isinstance(exc, VaxhubError):
                    status, message = status_for(exc), exc.message
                else:
                    status, message = (400, "invalid request") if isinstance(exc, RequestValidationError) else (500, "internal error")
                current.outcome = outcome_for_status(status)
                current.description = current.description or message
                await run_in_threadpool(trail.record, current)
            raise
        else:
            if not current.recorded:
                await run_in_threadpool(trail.record, current)

    return audited


# -- routers -----------------------------------------------------------------------


def build_public_router(service: CertificateService) -> APIRouter:
    """Trust material verifiers fetch without a token: nothing in it is personal."""
    router = APIRouter(tags=["Certificates: public trust material"])

    @router.get("/certificates/trust-list", summary="Our CSCA and current document signers (EU gateway entry shape) and the SHC issuer JWKS")
    def trust_list(request: Request) -> JSONResponse:
        document = service.trust.trust_list(_now(), service.card_issuer(_root(request)))
        return JSONResponse(document, headers={"Cache-Control": "public, max-age=300"})

    @router.get("/certificates/revocation-list", summary="Revoked certificates (EU DCC hash batches, SHC revocation ids) and withdrawn signers")
    def revocation_list() -> JSONResponse:
        return JSONResponse(service.trust.revocation_list(_now()), headers={"Cache-Control": "public, max-age=60"})

    @router.get(f"{CARD_ISSUER_PATH}/.well-known/jwks.json", summary="SMART Health Card issuer keys (iss + /.well-known/jwks.json)")
    def card_jwks() -> JSONResponse:
        # SHC "Determining keys associated with an issuer": verifiers in browsers fetch it cross-origin.
        return JSONResponse(service.trust.card_jwks(_now()), headers={"Access-Control-Allow-Origin": "*", "Cache-Control": "public, max-age=300"})

    return router


def build_router(service: CertificateService, store: FhirStore, trail: AuditTrail) -> APIRouter:
    router = APIRouter(prefix="/certificates", tags=["Certificates"], dependencies=[Depends(_audited(trail), scope="function")])
    caller = Depends(principal)
    audited = Depends(interaction)

    def _download(cert: StoredCertificate, name: str, audit: Interaction) -> Response:
        _audit_download(cert, name, audit)
        body, media_type = render_download(cert, name, cache=service.renders)
        return _answer(cert, name, body, media_type, audit)

    def _audit_download(cert: StoredCertificate, name: str, audit: Interaction) -> None:
        if name not in DOWNLOADS:
            raise NotFound(f"no download {name!r}; one of {', '.join(sorted(DOWNLOADS))}")
        audit.action = "read"
        audit.touched("Patient", cert.patient_id, None, {"resourceType": "Patient"})
        audit.description = f"downloaded {cert.uvci} as {name}"

    def _answer(cert: StoredCertificate, name: str, body: bytes, media_type: str, audit: Interaction) -> Response:
        disposition = "attachment" if name in ATTACHMENTS else "inline"
        filename = f"{cert.uvci.rsplit(':', 1)[-1][:12].lower()}-{name}"
        return recorded(trail, audit, Response(body, media_type=media_type, headers={**NO_STORE, "Content-Disposition": f'{disposition}; filename="{filename}"'}))

    def _certificate_for(who: Principal, uvci: str) -> StoredCertificate:
        if who.kind == VERIFIER:
            raise Forbidden("Verifier tokens may verify certificates and read trust lists only")
        cert = service.find(uvci)
        try:
            require_patient_access(who, cert.patient_id, store)
        except NotFound:
            raise NotFound(f"no certificate {uvci}") from None  # a citizen learns nothing of others' certificates
        return cert

    @router.post("/patients/{patient_id}", status_code=201, summary="Issue a certificate (EU DCC, SMART Health Card, WHO DDCC:VS) from the person's completed doses")
    def issue(
        patient_id: str, request: Request, body: IssueRequest | None = Body(None),
        who: Principal = caller, audit: Interaction = audited,
    ) -> JSONResponse:
        require_patient_access(who, patient_id, store)
        issued = service.issue(
            patient_id, who=who, root=_root(request), interaction=audit,
            override_reason=body.override_reason if body else None,
        )
        summary = service.find(issued.uvci).summary()
        return JSONResponse(summary, status_code=201, headers={**NO_STORE, "Location": f"{_root(request)}/certificates/{issued.uvci}"})

    @router.get("/patients/{patient_id}", summary="Certificates issued for a person, newest first")
    def list_for_patient(patient_id: str, who: Principal = caller, audit: Interaction = audited) -> JSONResponse:
        require_patient_access(who, patient_id, store)
        audit.action = "search"
        audit.touched("Patient", patient_id, None, {"resourceType": "Patient"})
        return recorded(trail, audit, JSONResponse({"patient": patient_id, "certificates": [c.summary() for c in service.for_patient(patient_id)]}, headers=NO_STORE))

    @router.get("/patients/{patient_id}/latest/{name}", summary="Download the person's latest valid certificate")
    async def latest(patient_id: str, name: str, who: Principal = caller, audit: Interaction = audited) -> Response:
        def find() -> StoredCertificate:
            require_patient_access(who, patient_id, store)
            return service.latest(patient_id)

        return await _serve_download(find, name, audit)

    @router.post("/verify", summary="Verify a certificate: QR text (JSON {qr}, text/plain) or a QR image (multipart field `image`, or an image body)")
    async def verify(request: Request, _who: Principal = caller, audit: Interaction = audited) -> JSONResponse:
        text = await _qr_text(request)

        def check() -> JSONResponse:
            report = service.verify(text)
            audit.description = f"verified a {report.format or 'unrecognised'} certificate: {'valid' if report.valid else ', '.join(report.codes)}"
            return recorded(trail, audit, JSONResponse(report.to_json(), headers=NO_STORE))

        return await run_in_threadpool(check)

    @router.post("/revocations", summary="Revoke a certificate by UVCI (every format)")
    def revoke(body: RevokeCertificate, who: Principal = caller, audit: Interaction = audited) -> JSONResponse:
        require_operator(who)
        result = service.trust.revoke_certificate(body.uvci.strip(), reason=body.reason, revoked_by=who.display)
        audit.action = "update"
        audit.touched("Patient", result["patient"], None, {"resourceType": "Patient"})
        audit.description = f"revoked {body.uvci}: {body.reason[:200]}"
        return JSONResponse(result)

    @router.post("/signer-revocations", summary="Withdraw a compromised document signer: everything it signed is refused")
    def revoke_signer(body: RevokeSigner, who: Principal = caller, audit: Interaction = audited) -> JSONResponse:
        require_operator(who)
        result = service.trust.revoke_signer(body.signer, reason=body.reason, revoked_by=who.display)
        audit.action = "update"
        audit.description = f"withdrew signer {result['fingerprint']}: {body.reason[:200]}"
        return JSONResponse(result)

    @router.get("/trust-lists", summary="Imported foreign trust lists")
    def trust_lists(who: Principal = caller) -> JSONResponse:
        require_operator(who)
        return JSONResponse({"lists": service.trust.lists()})

    @router.put("/trust-lists/{name}", summary="Import (or replace) a foreign trust list: EU gateway DSC list, PEM/DER certificates, or an SHC issuer JWKS")
    async def import_trust_list(
        name: str, request: Request,
        issuer: str | None = Query(None, description="The SHC `iss` the JWKS belongs to, when the document does not say."),
        who: Principal = caller, audit: Interaction = audited,
    ) -> JSONResponse:
        require_operator(who)
        document = await _body(request, 5 * 1024 * 1024)
        result = await run_in_threadpool(service.trust.import_list, name, document, issuer=issuer, imported_by=who.display)
        audit.action = "update"
        audit.description = f"imported trust list {name}: {result['signers']} signers, {result['card_keys']} SHC keys"
        return JSONResponse(result)

    @router.delete("/trust-lists/{name}", status_code=204, summary="Stop trusting an imported list")
    def delete_trust_list(name: str, who: Principal = caller, audit: Interaction = audited) -> Response:
        require_operator(who)
        service.trust.delete_list(name)
        audit.action = "delete"
        audit.description = f"removed trust list {name}"
        return Response(status_code=204)

    @router.get("/{uvci}", summary="One certificate's summary")
    def summary(uvci: str, who: Principal = caller, audit: Interaction = audited) -> JSONResponse:
        cert = _certificate_for(who, uvci)
        audit.action = "read"
        audit.touched("Patient", cert.patient_id, None, {"resourceType": "Patient"})
        return JSONResponse(cert.summary(), headers=NO_STORE)

    async def _serve_download(find: Callable[[], StoredCertificate], name: str, audit: Interaction) -> Response:
        if name != PDF or not service.pdfs.started:
            return await run_in_threadpool(lambda: _download(find(), name, audit))  # one trip to a request thread

        def found() -> StoredCertificate:
            cert = find()
            _audit_download(cert, name, audit)
            return cert

        cert = await run_in_threadpool(found)
        body, media_type = await render_download_served(cert, name, cache=service.renders, pdfs=service.pdfs)
        return await run_in_threadpool(_answer, cert, name, body, media_type, audit)

    @router.get("/{uvci}/{name}", summary="Download a certificate: " + ", ".join(sorted(DOWNLOADS)))
    async def download(uvci: str, name: str, who: Principal = caller, audit: Interaction = audited) -> Response:
        return await _serve_download(lambda: _certificate_for(who, uvci), name, audit)

    return router


def _refuse_declared_size(request: Request, limit: int) -> None:
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise MalformedInput(f"request body larger than {limit} bytes")


async def _body(request: Request, limit: int) -> bytes:
    """The request body, read no further than `limit` bytes (a chunked body may not say its size)."""
    _refuse_declared_size(request, limit)
    data = bytearray()
    async for chunk in request.stream():
        data += chunk
        if len(data) > limit:
            raise MalformedInput(f"request body larger than {limit} bytes")
    return bytes(data)


async def _qr_text(request: Request) -> str:
    """The certificate text of a verification request, decoding an image server-side."""
    media = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media == "multipart/form-data":
        _refuse_declared_size(request, MAX_IMAGE_BYTES + 64 * 1024)
        form = await request.form(max_files=1, max_fields=2)
        upload = form.get("image")
        if upload is None or isinstance(upload, str):
            qr = form.get("qr")
            if isinstance(qr, str):
                return qr
            raise InvalidResource("send the QR image as the form field `image` (or its text as `qr`)", [Issue("missing image", "image", "required")])
        data = await upload.read(MAX_IMAGE_BYTES + 1)
        return await run_in_threadpool(certificate_in_image, data)
    if media.startswith("image/"):
        return await run_in_threadpool(certificate_in_image, await _body(request, MAX_IMAGE_BYTES))
    raw = await _body(request, MAX_TEXT_LENGTH * 4)
    if media == "" or media.endswith("json"):
        try:
            parsed: Any = VerifyRequest.model_validate_json(raw)
        except ValueError:
            raise MalformedInput('expected JSON {"qr": "HC1:… or shc:/…"}') from None
        return parsed.qr
    if media == "text/plain":
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            raise MalformedInput("the text is not UTF-8") from None
    raise UnsupportedRequest(f"cannot verify a {media} body: send JSON {{qr}}, text/plain, an image or a multipart form")
