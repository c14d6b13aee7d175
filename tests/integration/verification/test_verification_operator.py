"""The operator view through the API and the CLI: counts by status, the
mismatch list by site and field, dead letters, requeueing."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from tests.integration.verification.verification_builders import AN, DUC, HOA, HUONG, OTHER_SITE, SITE, patient_of, store_patients
from vaxhub.adapters.fakes import InMemoryPopulationRegistry
from vaxhub.hub.cli import app as cli
from vaxhub.hub.security.policy import SiteWriteGuard
from vaxhub.hub.security.principal import SYSTEM, Principal
from vaxhub.hub.security.scopes import parse_scopes
from vaxhub.hub.verification.worker import VerificationWorker, WorkerOptions


def verify_all(engine, registry) -> None:
    VerificationWorker(engine, InMemoryPopulationRegistry(registry), options=WorkerOptions(poll_seconds=0.02),
                       name="ops-test").run(until_idle=True)


def mismatching_sites(hub_store):
    return store_patients(hub_store, [
        patient_of(AN, gender="female"),                                   # Hà Nội: sex
        patient_of(HOA, birthDate="1959", gender="male"),                  # Hà Nội: birth date and sex
        patient_of(HUONG, site=OTHER_SITE, name=[{"text": "Pham Thu Huong"}]),  # HCM: name without diacritics
        patient_of(DUC, site=OTHER_SITE),                                  # verified
    ])


def test_counts_and_mismatches_by_site_and_field(hub_store, engine, registry, ops_client):
    client = ops_client
    an, hoa, huong, duc = mismatching_sites(hub_store)
    assert client.get("/ops/verification/status").json()["counts"]["pending"] == 4
    verify_all(engine, registry)

    status = client.get("/ops/verification/status").json()
    assert status["counts"] == {"pending": 0, "verified": 1, "mismatch": 3, "not_found": 0, "unverifiable": 0, "dead": 0}
    assert status["circuits"][0]["state"] == "closed"

    report = client.get("/ops/verification/mismatches").json()
    assert {(r["site"], r["field"], r["count"]) for r in report["by_site_and_field"]} == {
        (SITE, "sex", 2), (SITE, "birth_date", 1), (OTHER_SITE, "full_name", 1),
    }
    by_field = client.get("/ops/verification/mismatches", params={"field": "sex"}).json()
    assert sorted(i["patient"] for i in by_field["items"]) == sorted([f"Patient/{an}", f"Patient/{hoa}"])
    by_site = client.get("/ops/verification/mismatches", params={"site": OTHER_SITE}).json()
    assert [i["patient"] for i in by_site["items"]] == [f"Patient/{huong}"]
    assert by_site["items"][0]["fields"] == {"full_name": {"claimed": "Pham Thu Huong", "registry": "Phạm Thu Hương"}}

    assert client.post("/ops/verification/requeue", json={"status": "mismatch", "site": SITE}).json() == {"requeued": 2}
    assert client.get("/ops/verification/status").json()["counts"]["pending"] == 2
    assert client.get(f"/ops/verification/patients/{hoa}").json()["result"]["status"] == "mismatch"  # still shown


def test_requeue_needs_a_selection_and_unknown_patients_are_404(ops_client):
    client = ops_client
    assert client.post("/ops/verification/requeue", json={}).status_code in (400, 422)
    assert client.post("/ops/verification/requeue", json={"status": "pending"}).status_code in (400, 422)
    missing = client.get("/ops/verification/patients/nobody")
    assert missing.status_code == 404 and missing.json()["resourceType"] == "OperationOutcome"


def test_the_cli_reports_and_requeues(hub_store, engine, registry, monkeypatch):
    an, hoa, huong, duc = mismatching_sites(hub_store)
    verify_all(engine, registry)
    monkeypatch.setenv("VAXHUB_DATABASE_URL", engine.url.render_as_string(hide_password=False))
    runner = CliRunner()

    status = runner.invoke(cli, ["verification", "status", "--json"])
    assert status.exit_code == 0, status.output
    assert json.loads(status.output)["counts"]["mismatch"] == 3
    table = runner.invoke(cli, ["verification", "status"])
    assert "mismatch" in table.output and "circuit population-registry: closed" in table.output

    mismatches = runner.invoke(cli, ["verification", "mismatches", "--field", "full_name", "--json"])
    assert [i["patient"] for i in json.loads(mismatches.output)["items"]] == [f"Patient/{huong}"]
    assert "1 mismatching patients" in runner.invoke(cli, ["verification", "mismatches", "--field", "full_name"]).output
    assert "0 dead letters" in runner.invoke(cli, ["verification", "dead"]).output

    requeued = runner.invoke(cli, ["verification", "requeue", an, duc])
    assert requeued.exit_code == 0 and "requeued 2 patients" in requeued.output
    assert runner.invoke(cli, ["verification", "requeue"]).exit_code == 2


def test_queue_views_need_an_operator_with_the_verification_role(hub, ops_client):
    _app, raw, login = hub
    clerk = login("site-clerk", "system/Patient.rs", kind="operator", site="79001")  # no verification role
    system = login("some-hospital", "system/*.cruds")
    for headers in ({}, clerk, system):
        assert raw.get("/ops/verification/status", headers=headers).status_code in (401, 403)
    assert ops_client.get("/ops/verification/status").status_code == 200


def test_a_site_operator_sees_and_requeues_only_its_own_sites_patients(hub, hub_store, engine, registry, ops_client):
    _app, raw, login = hub

    def written_by(site_code: str, patients: list[dict]) -> list[str]:
        writer_principal = Principal(SYSTEM, f"site-{site_code}", client_id=f"site-{site_code}", site_code=site_code,
                                     scopes=tuple(parse_scopes("system/*.cru")))
        with hub_store.writer(guard=SiteWriteGuard(writer_principal)) as w:
            for site in {p["managingOrganization"]["reference"] for p in patients}:
                w.update("Organization", site.split("/")[1], {"resourceType": "Organization", "name": site})
            return [w.create(p).stored.id for p in patients]

    hanoi = written_by("01001", [patient_of(AN, gender="female"), patient_of(HOA, birthDate="1959")])
    saigon = written_by("79001", [patient_of(HUONG, site=OTHER_SITE, name=[{"text": "Pham Thu Huong"}]), patient_of(DUC, site=OTHER_SITE)])
    verify_all(engine, registry)
    desk = login("hcm-desk", "system/Patient.rs", kind="operator", roles="verification", site="79001")

    status = raw.get("/ops/verification/status", headers=desk).json()
    assert status["counts"] == {"pending": 0, "verified": 1, "mismatch": 1, "not_found": 0, "unverifiable": 0, "dead": 0}
    assert ops_client.get("/ops/verification/status").json()["counts"]["mismatch"] == 3  # the national view sees all
    mismatching = raw.get("/ops/verification/mismatches", headers=desk).json()
    assert [i["patient"] for i in mismatching["items"]] == [f"Patient/{saigon[0]}"]
    # Naming another site's Patients or that site's reference changes nothing.
    assert raw.post("/ops/verification/requeue", headers=desk, json={"patients": hanoi}).json() == {"requeued": 0}
    assert raw.post("/ops/verification/requeue", headers=desk, json={"status": "mismatch"}).json() == {"requeued": 1}
    counts = ops_client.get("/ops/verification/status").json()["counts"]
    assert counts["pending"] == 1 and counts["mismatch"] == 2
    assert raw.get(f"/ops/verification/patients/{hanoi[0]}", headers=desk).status_code == 404
    assert raw.get(f"/ops/verification/patients/{saigon[0]}", headers=desk).status_code == 200
