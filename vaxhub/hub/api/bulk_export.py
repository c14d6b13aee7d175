"""FHIR Bulk Data export over HTTP (Bulk Data Access IG 2.0.0,
https://hl7.org/fhir/uv/bulkdata/STU2/export.html).

- Kick-off: `GET|POST /fhir/$export`, `/fhir/Patient/$export`,
  `/fhir/Group/{id}/$export` with `Prefer: respond-async` → 202 and the status
  URL in `Content-Location`.
- Status: `GET /fhir/$export-status/{job}` → 202 with `X-Progress` while the
  job runs, 200 with the manifest when done; `DELETE` cancels it and removes
  its files (202).
- Files: `GET /fhir/$export-file/{job}/{file}` (`application/fhir+ndjson`),
  with the access token of the client that started the job.

The kick-off and every file download are audited as exports of health data
(AuditEvent subtype `export`): the request, the Group and its members, the
file and how many resources it held.
"""

from __future__ import annotations

from datetime import timezone
from email.utils import format_datetime

from fastapi import APIRouter, Depends, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import FileResponse, Response

from vaxhub.errors import Issue, NotFound, UnsupportedRequest
from vaxhub.fhir.outcome import informational, operation_outcome
from vaxhub.hub.api.access import interaction, principal
from vaxhub.hub.api.fhir_http import FhirResponse, base_url, prefers, read_json_body
from vaxhub.hub.audit.trail import Interaction
from vaxhub.hub.bulk_export.access import granted_types, may_see_job, require_exporter
from vaxhub.hub.bulk_export.files import FILE_NAME, job_folder, remove_job_files
from vaxhub.hub.bulk_export.jobs import ExportJob, ExportJobs
from vaxhub.hub.bulk_export.manifest import manifest, status_url
from vaxhub.hub.bulk_export.request import GROUP, PATIENT, SYSTEM, exportable_types, parameters_items, parse_export_request
from vaxhub.hub.bulk_export.runner import BackgroundExporter
from vaxhub.hub.bulk_export.selection import require_group
from vaxhub.hub.security.principal import Principal
from vaxhub.hub.storage.store import FhirStore, format_instant
from vaxhub.settings import Settings

NDJSON = "application/fhir+ndjson"


def wants_async(request: Request) -> bool:
    for header in request.headers.getlist("prefer"):
        for token in header.split(","):
            if token.split(";")[0].strip().lower() == "respond-async":
                return True
    return False


def build_router(store: FhirStore, jobs: ExportJobs, settings: Settings, background: BackgroundExporter | None = None) -> APIRouter:
    router = APIRouter(prefix="/fhir", tags=["Bulk Data export"])
    caller = Depends(principal)
    audited = Depends(interaction)
    export_dir = settings.export_path()

    def base(request: Request) -> str:
        return base_url(request, settings.base_url)

    async def kick_off(request: Request, who: Principal, audit: Interaction, level: str, group_id: str | None = None) -> FhirResponse:
        audit.action = "export"
        require_exporter(who)
        if not wants_async(request):
            raise UnsupportedRequest("$export runs asynchronously: send Prefer: respond-async",
                                     [Issue("Prefer: respond-async is required", "Prefer", "required")])
        items = [(k, v) for k, v in request.query_params.multi_items()]
        if request.method == "POST":
            items += await _parameters(request, settings.max_body_bytes)
        parsed = parse_export_request(level, items, lenient=prefers(request, "handling") == "lenient")
        types = granted_types(who, parsed.types, exportable_types(level))
        b = base(request)
        request_url = b + request.url.path.split("/fhir", 1)[1] + (f"?{request.url.query}" if request.url.query else "")

        def start() -> ExportJob:
            group_version = None
            if level == GROUP:
                assert group_id is not None
                group_version, members = require_group(store, group_id)
                audit.entities.append(("Group", group_id, group_version))
                audit.patients.update(members)  # whose records the export hands over
            return jobs.create(who.client_id or who.subject, parsed, types, request_url, group_id=group_id, group_version=group_version)

        job = await run_in_threadpool(start)
        audit.description = f"bulk export {job.id}: {level} level, types {','.join(types)}" + (
            f", since {format_instant(parsed.since)}" if parsed.since else "")
        if background is not None:
            background.wake()
        location = status_url(b, job.id)
        body = informational(f"Export {job.id} accepted; poll {location}")
        return FhirResponse(body, status_code=202, headers={"Content-Location": location})

    @router.get("/$export", summary="Export everything (system level)", response_class=FhirResponse)
    async def system_export(request: Request, who: Principal = caller, audit: Interaction = audited) -> FhirResponse:
        return await kick_off(request, who, audit, SYSTEM)

    @router.post("/$export", summary="Export everything (system level), Parameters body", response_class=FhirResponse)
    async def system_export_post(request: Request, who: Principal = caller, audit: Interaction = audited) -> FhirResponse:
        return await kick_off(request, who, audit, SYSTEM)

    @router.get("/Patient/$export", summary="Export every Patient compartment", response_class=FhirResponse)
    async def patient_export(request: Request, who: Principal = caller, audit: Interaction = audited) -> FhirResponse:
        return await kick_off(request, who, audit, PATIENT)

    @router.post("/Patient/$export", summary="Export Patient compartments, Parameters body", response_class=FhirResponse)
    async def patient_export_post(request: Request, who: Principal = caller, audit: Interaction = audited) -> FhirResponse:
        return await kick_off(request, who, audit, PATIENT)

    @router.get("/Group/{group_id}/$export", summary="Export the compartments of a Group's members", response_class=FhirResponse)
    async def group_export(group_id: str, request: Request, who: Principal = caller, audit: Interaction = audited) -> FhirResponse:
        return await kick_off(request, who, audit, GROUP, group_id)

    @router.post("/Group/{group_id}/$export", summary="Export a Group's members, Parameters body", response_class=FhirResponse)
    async def group_export_post(group_id: str, request: Request, who: Principal = caller, audit: Interaction = audited) -> FhirResponse:
        return await kick_off(request, who, audit, GROUP, group_id)

    def own_job(who: Principal, job_id: str) -> ExportJob:
        require_exporter(who)
        job = jobs.get(job_id)
        if not may_see_job(who, job.client_id):
            raise NotFound(f"Export job {job_id!r} is not known (or was cancelled or has expired)")
        return job

    @router.get("/$export-status/{job_id}", summary="Status of an export; the manifest when done", response_class=FhirResponse)
    def export_status(job_id: str, request: Request, who: Principal = caller, audit: Interaction = audited) -> Response:
        job = own_job(who, job_id)
        audit.description = f"bulk export {job.id} status: {job.state}"
        if job.state == "done":
            headers = {"Expires": _http_date(job)} if job.expires_at else {}
            return FhirResponse(manifest(job, base(request)), headers=headers, media_type="application/json")
        if job.state == "failed":
            issue = Issue(f"The export failed after {job.attempts} attempts; start a new export", None, "exception", "fatal")
            return FhirResponse(operation_outcome([issue]), status_code=500)
        progress = job.progress if job.state == "running" and job.progress else "queued"
        return FhirResponse(informational(f"Export {job.id}: {progress}"), status_code=202,
                            headers={"X-Progress": progress, "Retry-After": str(max(1, round(settings.export_poll_seconds)))})

    @router.delete("/$export-status/{job_id}", summary="Cancel an export and delete its files", response_class=FhirResponse)
    def export_cancel(job_id: str, who: Principal = caller, audit: Interaction = audited) -> FhirResponse:
        job = own_job(who, job_id)
        audit.description = f"bulk export {job.id} cancelled ({job.state})"
        jobs.cancel(job.id)
        remove_job_files(export_dir, job.id)
        return FhirResponse(informational(f"Export {job.id} cancelled; its files are deleted"), status_code=202)

    @router.get("/$export-file/{job_id}/{file_name}", summary="One NDJSON file of a finished export")
    def export_file(job_id: str, file_name: str, who: Principal = caller, audit: Interaction = audited) -> Response:
        audit.action = "export"
        job = own_job(who, job_id)
        entry = job.file_named(file_name) if job.state == "done" and FILE_NAME.match(file_name) else None
        if entry is None or job.output_dir is None:
            raise NotFound(f"Export {job_id} has no file {file_name!r}")
        if entry["type"] != "OperationOutcome" and not who.may(entry["type"], "r"):
            raise NotFound(f"Export {job_id} has no file {file_name!r} for this token")
        path = job_folder(export_dir, job.id) / job.output_dir / file_name
        if not path.is_file():
            raise NotFound(f"The file {file_name!r} of export {job_id} is no longer here (VAXHUB_EXPORT_DIR must be shared by every hub process)")
        if job.group_id:
            audit.entities.append(("Group", job.group_id, job.group_version))
        audit.description = f"bulk export {job.id}: {file_name}, {entry['count']} {entry['type']} resources"
        return FileResponse(path, media_type=NDJSON, filename=file_name, content_disposition_type="inline")

    return router


async def _parameters(request: Request, max_bytes: int) -> list[tuple[str, str]]:
    """The Parameters body of a POST kick-off; no body means no parameters."""
    declared = request.headers.get("content-length")
    if declared == "0" or (declared is None and "transfer-encoding" not in request.headers):
        return []
    return parameters_items(await read_json_body(request, max_bytes))


def _http_date(job: ExportJob) -> str:
    assert job.expires_at is not None
    return format_datetime(job.expires_at.replace(tzinfo=timezone.utc), usegmt=True)
