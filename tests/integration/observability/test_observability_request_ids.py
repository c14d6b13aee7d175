"""One request id follows a Patient from the site's request through the
outbox to the workers and the national registries: in the response, the
API's log lines, the audit event, the queued jobs, the workers' log lines and
the headers the registry simulators received."""

from __future__ import annotations

import re
import uuid

from sqlalchemy import select

from tests.builders import patient
from tests.integration.observability.conftest import hub_settings, login
from vaxhub.adapters.registry_data import SAMPLE_CITIZENS
from vaxhub.hub.mpi.service import MasterPatientIndex
from vaxhub.hub.mpi.worker import LinkWorker
from vaxhub.hub.storage.mpi_tables import MpiRecordRow
from vaxhub.hub.storage.outbox_tables import VerificationJobRow
from vaxhub.hub.verification.worker import run_worker

AN = SAMPLE_CITIZENS[0]


def _an() -> dict:
    family, *given = AN.full_name.split(" ")
    return patient(AN.cccd, family, tuple(given), gender=AN.sex, birth_date=AN.birth_date)


def test_the_callers_request_id_is_echoed_and_an_unusable_one_replaced(hub_client):
    site = login(hub_client, "site-79001", "system/Patient.rs", site="79001")
    assert hub_client.get("/fhir/Patient", headers={**site, "X-Request-ID": "lab-batch-17"}).headers["x-request-id"] == "lab-batch-17"
    for unusable in ("has spaces in it", "x" * 65, ""):
        answered = hub_client.get("/fhir/Patient", headers={**site, "X-Request-ID": unusable}).headers["x-request-id"]
        assert re.fullmatch(r"[0-9a-f]{32}", answered), unusable
    # Every answer has one, the public ones and the refusals too.
    assert re.fullmatch(r"[0-9a-f]{32}", hub_client.get("/fhir/metadata").headers["x-request-id"])
    assert hub_client.get("/fhir/Patient").headers["x-request-id"]


def test_a_request_id_reaches_the_outbox_the_workers_and_the_registries(engine, tmp_path, hub_client, json_logs, simulators):
    request_id = f"hospital-79001-{uuid.uuid4().hex[:12]}"
    site = login(hub_client, "site-79001", "system/Patient.cruds", site="79001")
    created = hub_client.post("/fhir/Patient", json=_an(), headers={**site, "X-Request-ID": request_id})
    assert created.status_code == 201, created.text
    assert created.headers["x-request-id"] == request_id
    pid = created.json()["id"]

    # The API's own line for the request, labelled with the route, not the raw path.
    api_lines = [r for r in json_logs.with_request_id(request_id) if r["logger"] == "vaxhub.access"]
    assert [(r["method"], r["route"], r["status"]) for r in api_lines] == [("POST", "/fhir/{rtype}", 201)]
    # The audit event of the write names it too.
    auditor = login(hub_client, "moh-auditor", "system/AuditEvent.rs", kind="operator", roles="auditor")
    events = hub_client.get("/fhir/AuditEvent", params={"patient": pid}, headers=auditor).json()["entry"]
    assert any(request_id in ext["valueString"] for e in events for ext in e["resource"]["extension"])
    # Both outbox rows keep it.
    with engine.connect() as conn:
        assert conn.execute(select(VerificationJobRow.request_id).where(VerificationJobRow.patient_id == pid)).scalar_one() == request_id
        assert conn.execute(select(MpiRecordRow.request_id).where(MpiRecordRow.record_id == pid)).scalar_one() == request_id

    settings = hub_settings(
        engine, tmp_path / "worker-data", population_registry_wsdl=simulators.population_wsdl_url,
        social_insurance_url=simulators.social_insurance_url, social_insurance_api_key=simulators.api_key, log_level="DEBUG",
    )
    assert run_worker(settings, engine, until_idle=True, concurrency=2, poll_seconds=0.02) == 1
    worker_lines = [r["message"] for r in json_logs.with_request_id(request_id) if r["logger"] == "vaxhub.hub.verification.worker"]
    assert f"verifying Patient/{pid} version 1, attempt 1" in worker_lines
    assert f"Patient/{pid} version 1: verified" in worker_lines
    assert request_id in simulators.population.request_ids
    assert request_id in simulators.social_insurance.request_ids

    LinkWorker(MasterPatientIndex(engine)).run(until_idle=True, poll_seconds=0.01)
    link_lines = [r["message"] for r in json_logs.with_request_id(request_id) if r["logger"] == "vaxhub.hub.mpi.worker"]
    assert f"linking Patient/{pid}, attempt 1" in link_lines


def test_jobs_queued_outside_a_request_carry_no_id_and_registry_calls_send_none(engine, tmp_path, hub_client, simulators):
    from vaxhub.hub.storage.store import FhirStore
    from vaxhub.hub.verification.enqueue import VerificationEnqueuer

    store = FhirStore(engine, listeners=[VerificationEnqueuer()])
    with store.writer() as w:  # a load by a command-line tool: no request
        pid = w.create(_an()).stored.id
    with engine.connect() as conn:
        assert conn.execute(select(VerificationJobRow.request_id).where(VerificationJobRow.patient_id == pid)).scalar_one() is None
    sent_before = len(simulators.population.request_ids)
    settings = hub_settings(engine, tmp_path / "worker-data", population_registry_wsdl=simulators.population_wsdl_url)
    assert run_worker(settings, engine, until_idle=True, concurrency=1, poll_seconds=0.02) == 1
    assert len(simulators.population.request_ids) == sent_before  # no header rather than an empty or made-up one
