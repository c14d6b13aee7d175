"""Export jobs live in the database: a `vaxhub export work` process runs them,
a worker that dies loses its job to another after its lease, a cancelled job
leaves no files, a failing one is retried and then reported, and finished
files expire."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from tests.integration.bulk_export.conftest import download, export_hub, kick_off, person, wait_done
from vaxhub.hub.bulk_export.jobs import MAX_ATTEMPTS, ExportJobs
from vaxhub.hub.bulk_export.runner import ExportOptions, ExportRunner
from vaxhub.hub.bulk_export.tables import BulkExportJobRow
from vaxhub.hub.storage.store import utcnow

VAXHUB = Path(sys.executable).with_name("vaxhub")


@pytest.fixture
def queued_hub(engine, tmp_path, sms):
    """A hub that queues exports but runs none itself; yields (app, raw, registry headers, one stored person)."""
    from fastapi.testclient import TestClient

    with export_hub(engine, tmp_path / "hub-data", sms, export_in_process=False) as (app, raw, login):
        with TestClient(app, headers=login("national-admin", "system/*.cruds")) as w:
            stored = person(w, 1, doses=2)
        yield app, raw, login("national-registry", "system/*.rs", roles="bulk-export"), stored


def job_row(engine, job_id: str):
    with engine.connect() as conn:
        return conn.execute(select(BulkExportJobRow).where(BulkExportJobRow.id == job_id)).one()


def runner_for(app, jobs: ExportJobs, name: str, **options) -> ExportRunner:
    settings = app.state.settings
    return ExportRunner(app.state.store, jobs, ExportOptions(settings.export_path(), **options), name=name)


def test_the_cli_worker_in_another_process_claims_and_finishes_the_job(queued_hub, engine):
    app, raw, registry, (pat, doses) = queued_hub
    url = kick_off(raw, "/fhir/$export", registry)
    time.sleep(0.2)
    waiting = raw.get(url, headers=registry)
    assert waiting.status_code == 202 and waiting.headers["x-progress"] == "queued"  # nobody runs it in the API

    settings = app.state.settings
    env = {**os.environ, "VAXHUB_DATABASE_URL": settings.database_url, "VAXHUB_DATA_DIR": str(settings.data_dir),
           "VAXHUB_AUTO_MIGRATE": "false", "VAXHUB_EXPORT_POLL_SECONDS": "0.1"}
    done = subprocess.run([str(VAXHUB), "export", "work", "--until-idle", "--name", "cli-export-worker"],
                          env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "1 exports finished" in done.stderr

    got = download(raw, wait_done(raw, url, registry, timeout=5), registry)
    assert {r["id"] for r in got["Patient"]} == {pat["id"]} and len(got["Immunization"]) == len(doses)
    row = job_row(engine, url.rsplit("/", 1)[1])
    assert (row.state, row.leased_by, row.attempts, row.resources_written) == ("done", "cli-export-worker", 1, 3)


def test_a_job_whose_worker_died_is_taken_over_when_its_lease_expires(queued_hub, engine):
    app, raw, registry, _stored = queued_hub
    url = kick_off(raw, "/fhir/Patient/$export", registry)
    jobs = ExportJobs(engine, lease_seconds=0.5, settle_seconds=0)
    dead = jobs.claim("worker-killed-with-sigkill")
    assert dead is not None and jobs.claim("impatient") is None  # leased: nobody else may take it yet
    time.sleep(0.6)

    survivor = runner_for(app, jobs, "survivor")
    assert survivor.run_next() == "done"
    assert jobs.complete(dead, output=[], errors=[], written=0) is False  # the dead lease publishes nothing

    manifest = wait_done(raw, url, registry, timeout=5)
    assert {e["type"]: e["count"] for e in manifest["output"]} == {"Patient": 1, "Immunization": 2}
    row = job_row(engine, url.rsplit("/", 1)[1])
    assert (row.leased_by, row.attempts) == ("survivor", 2)
    folders = list((app.state.settings.export_path() / row.id).iterdir())
    assert [f.name for f in folders] == [row.output_dir]  # one attempt's files, the finishing one


def test_cancelling_a_running_job_stops_its_worker_and_leaves_no_files(queued_hub, engine):
    app, raw, registry, _stored = queued_hub
    url = kick_off(raw, "/fhir/$export", registry)
    jobs = ExportJobs(engine, lease_seconds=60, settle_seconds=0)
    lease = jobs.claim("slow-worker")
    assert lease is not None
    assert raw.delete(url, headers=registry).status_code == 202

    # A heartbeat after every page: the worker learns of the cancellation at its first one.
    outcome = runner_for(app, jobs, "slow-worker", page_size=1, lease_seconds=0.0001).run_job(lease)

    assert outcome == "lost"
    assert not (app.state.settings.export_path() / lease.job.id).exists()
    assert job_row(engine, lease.job.id).state == "cancelled"
    assert raw.get(url, headers=registry).status_code == 404


def test_a_failing_job_is_retried_then_reported_as_failed(queued_hub, engine, tmp_path):
    app, raw, registry, _stored = queued_hub
    url = kick_off(raw, "/fhir/$export", registry)
    now = [utcnow()]
    jobs = ExportJobs(engine, lease_seconds=60, settle_seconds=0, clock=lambda: now[0])
    blocked = tmp_path / "not-a-folder"
    blocked.write_text("a file where the export folder should be")
    broken = ExportRunner(app.state.store, jobs, ExportOptions(blocked), name="broken-disk")

    outcomes = []
    for _ in range(MAX_ATTEMPTS):
        outcomes.append(broken.run_next())
        now[0] += timedelta(seconds=10)  # past the retry delay
    assert outcomes == ["retry"] * MAX_ATTEMPTS
    assert broken.run_next() is None

    r = raw.get(url, headers=registry)
    assert r.status_code == 500
    assert r.json()["issue"][0]["diagnostics"] == f"The export failed after {MAX_ATTEMPTS} attempts; start a new export"
    row = job_row(engine, url.rsplit("/", 1)[1])
    assert row.state == "failed" and "not-a-folder" in row.error  # the detail stays with operators


def test_finished_files_expire_after_the_retention(queued_hub, engine):
    app, raw, registry, _stored = queued_hub
    url = kick_off(raw, "/fhir/$export", registry)
    now = [utcnow()]
    jobs = ExportJobs(engine, settle_seconds=0, retention_hours=1, clock=lambda: now[0])
    runner = runner_for(app, jobs, "sweeper")
    assert runner.run_next() == "done"
    manifest = wait_done(raw, url, registry, timeout=5)
    assert runner.sweep() == 0

    now[0] += timedelta(hours=1, seconds=1)
    assert runner.sweep() == 1

    assert not (app.state.settings.export_path() / url.rsplit("/", 1)[1]).exists()
    assert raw.get(url, headers=registry).status_code == 404
    assert raw.get(manifest["output"][0]["url"], headers=registry).status_code == 404


def test_a_stopping_worker_gives_its_job_back_without_spending_an_attempt(queued_hub, engine):
    import threading

    app, raw, registry, _stored = queued_hub
    url = kick_off(raw, "/fhir/$export", registry)
    jobs = ExportJobs(engine, settle_seconds=0)
    runner = runner_for(app, jobs, "shutting-down")
    stop = threading.Event()
    stop.set()
    runner.run(stop)  # binds the stop signal, claims nothing
    lease = jobs.claim("shutting-down")
    assert lease is not None

    assert runner.run_job(lease) == "given back"

    row = job_row(engine, lease.job.id)
    assert (row.state, row.attempts, row.lease_token) == ("queued", 0, None)
    assert not (app.state.settings.export_path() / row.id).exists()
    assert runner_for(app, jobs, "next-worker").run_next() == "done"
    assert wait_done(raw, url, registry, timeout=5)["output"]
