"""Spreadsheet backlog imports: upload a file, poll its job, fetch the row report.

- `POST /imports` (multipart: `file`, `site`) → 202 with the job; it runs in
  this process's background thread, its state in the database.
- `GET /imports/{id}` → the job's status and counts.
- `GET /imports/{id}/report?format=xlsx|csv` → rejected and warned rows with
  their problems, ready to fix and upload again.
- `POST /imports/{id}/resume` → 202; runs an interrupted job from its checkpoint.
"""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import quote

from fastapi import APIRouter, Depends, File, Form, Query, Request, UploadFile
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from vaxhub.errors import Forbidden, Issue, MalformedInput
from vaxhub.hub.api.access import principal
from vaxhub.hub.security.policy import require
from vaxhub.hub.security.principal import Principal
from vaxhub.hub.api.fhir_http import base_url
from vaxhub.hub.ingest.imports import ImportJobs
from vaxhub.hub.storage.store import FhirStore
from vaxhub.settings import Settings

log = logging.getLogger("vaxhub.imports")


def build_router(store: FhirStore, settings: Settings) -> APIRouter:
    router = APIRouter(prefix="/imports", tags=["Imports"])
    caller = Depends(principal)
    jobs = ImportJobs(store)
    # One job at a time per process: imports are long and the database is shared.
    runner = ThreadPoolExecutor(max_workers=1, thread_name_prefix="import")

    def run_in_background(job_id: str, base: str) -> None:
        def work() -> None:
            try:
                ImportJobs(store, base=base).run(job_id)
            except Exception:  # noqa: BLE001 - the job keeps its checkpoint; it can be resumed
                log.exception("Import job %s stopped", job_id)

        runner.submit(work)

    def accepted(request: Request, body: dict) -> JSONResponse:
        location = str(request.url_for("import_status", job_id=body["id"]))
        return JSONResponse({**body, "links": {"self": location, "report": location + "/report"}}, status_code=202, headers={"Location": location})

    def allowed(who: Principal, site: str) -> None:
        require(who, "Patient", "c")
        require(who, "Immunization", "c")
        if who.site_code is not None and who.site_code != site:
            raise Forbidden(f"Site {who.site_code} cannot import or read the imports of site {site}")

    def own_job(who: Principal, job_id: str):
        job = jobs.status(job_id)
        allowed(who, job.site_code)
        return job

    @router.post("", summary="Upload a backlog spreadsheet (.xlsx or .csv) for import", status_code=202)
    async def upload(request: Request, file: UploadFile = File(...), site: str = Form(...), who: Principal = caller) -> JSONResponse:
        allowed(who, site.strip())
        content = await file.read(settings.max_body_bytes + 1)
        if len(content) > settings.max_body_bytes:
            raise MalformedInput(f"The file is larger than {settings.max_body_bytes} bytes", [Issue("File too large", "file", "too-long")])
        job = await run_in_threadpool(jobs.create, site_code=site.strip(), filename=file.filename or "upload.csv", content=content)
        run_in_background(job.id, base_url(request, settings.base_url))
        return accepted(request, job.to_json())

    @router.get("/{job_id}", name="import_status", summary="Status and counts of an import job")
    def status(job_id: str, request: Request, who: Principal = caller) -> JSONResponse:
        body = own_job(who, job_id).to_json()
        location = str(request.url_for("import_status", job_id=job_id))
        return JSONResponse({**body, "links": {"self": location, "report": location + "/report"}})

    @router.get("/{job_id}/report", summary="Row report (rejected and warned rows) as .xlsx or .csv")
    def report(job_id: str, format: str | None = Query(None, pattern="^(xlsx|csv)$"), who: Principal = caller) -> Response:
        own_job(who, job_id)
        content, media, name = jobs.report(job_id, format)
        return Response(content, media_type=media, headers={"Content-Disposition": f"attachment; filename*=UTF-8''{quote(name)}"})

    @router.post("/{job_id}/resume", summary="Resume an interrupted import job from its checkpoint", status_code=202)
    def resume(job_id: str, request: Request, who: Principal = caller) -> JSONResponse:
        job = own_job(who, job_id)
        if job.status in ("queued", "running"):
            run_in_background(job_id, base_url(request, settings.base_url))
        return accepted(request, jobs.status(job_id).to_json())

    return router
