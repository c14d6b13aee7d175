"""The completion manifest (Bulk Data IG 2.0.0, "Response - Complete Status")."""

from __future__ import annotations

from typing import Any

from vaxhub.hub.bulk_export.jobs import ExportJob
from vaxhub.hub.storage.store import format_instant


def file_url(base: str, job_id: str, name: str) -> str:
    return f"{base}/$export-file/{job_id}/{name}"


def status_url(base: str, job_id: str) -> str:
    return f"{base}/$export-status/{job_id}"


def manifest(job: ExportJob, base: str) -> dict[str, Any]:
    """What a finished job's status poll answers; files need the access token."""
    def entries(files: list[dict]) -> list[dict]:
        return [{"type": f["type"], "url": file_url(base, job.id, f["file"]), "count": f["count"]} for f in files]

    return {
        "transactionTime": format_instant(job.transaction_time),
        "request": job.request_url,
        "requiresAccessToken": True,
        "output": entries(job.output),
        "error": entries(job.errors),
    }
