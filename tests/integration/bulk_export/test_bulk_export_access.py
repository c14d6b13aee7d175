"""Who may export, who may see a job, bad kick-offs, cancellation and the audit trail."""

from __future__ import annotations

import re

from fastapi.testclient import TestClient

from tests.integration.bulk_export.conftest import ASYNC, export, kick_off, person, wait_done
from tests.integration.healthbook.conftest import citizen_login


def outcome(r) -> dict:
    body = r.json()
    assert body["resourceType"] == "OperationOutcome", body
    return body


def test_kick_off_without_prefer_respond_async_is_400(hub, registry):
    _app, raw, _login = hub
    r = raw.get("/fhir/$export", headers=registry)
    assert r.status_code == 400
    assert "respond-async" in outcome(r)["issue"][0]["diagnostics"]


def test_malformed_kick_offs_are_400_and_queue_nothing(hub, registry, engine):
    from sqlalchemy import func, select

    from vaxhub.hub.bulk_export.tables import BulkExportJobRow

    _app, raw, _login = hub
    for params in ({"_since": "yesterday"}, {"_since": "2024-01-01"}, {"_outputFormat": "text/csv"},
                   {"_type": "Observation"}, {"_type": ""}, {"_typeFilter": "Immunization?status=completed"},
                   {"_elements": "id"}, {"patient": "Patient/x"}):
        r = raw.get("/fhir/$export", params=params, headers={**registry, **ASYNC})
        assert r.status_code == 400, (params, r.text)
        outcome(r)
    r = raw.post("/fhir/$export", content=b"{not json", headers={**registry, **ASYNC})
    assert r.status_code == 400
    r = raw.post("/fhir/$export", json={"resourceType": "Patient"}, headers={**registry, **ASYNC})
    assert r.status_code == 400
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(BulkExportJobRow)).scalar_one() == 0


def test_lenient_handling_ignores_unsupported_parameters_and_reports_them(hub, writer, registry):
    _app, raw, _login = hub
    person(writer, 1)
    url = kick_off(raw, "/fhir/$export", {**registry, "prefer": "respond-async, handling=lenient"},
                   _type="Patient,Observation", _typeFilter="Patient?gender=male")
    manifest = wait_done(raw, url, registry)
    assert [e["type"] for e in manifest["output"]] == ["Patient"]
    assert len(manifest["error"]) == 1
    errors = raw.get(manifest["error"][0]["url"], headers=registry)
    assert errors.status_code == 200
    text = errors.text
    assert "Observation" in text and "_typeFilter" in text and text.count("OperationOutcome") == 2


def test_citizens_verifiers_sites_and_clients_without_the_role_are_refused(hub, writer, sms):
    _app, raw, login = hub
    person(writer, 1)  # CCCD 079090000001, phone 0912345678
    citizen = citizen_login(raw, sms, "079090000001", "0912345678")
    refused = {
        "citizen": citizen,
        "verifier": login("border-checker", "system/Patient.rs", kind="verifier", roles="bulk-export"),
        "site": login("site-79001", "system/*.rs", site="79001", roles="bulk-export"),
        "no role": login("hospital-x", "system/*.rs"),
        "operator without role": login("moh-console", "system/*.rs", kind="operator", roles="auditor"),
    }
    for who, headers in refused.items():
        for path in ("/fhir/$export", "/fhir/Patient/$export"):
            r = raw.get(path, headers={**headers, **ASYNC})
            assert r.status_code == 403, (who, path, r.text)
            outcome(r)
    assert raw.get("/fhir/$export", headers=ASYNC).status_code == 401


def test_types_outside_the_tokens_scopes_are_refused_or_left_out(hub, writer):
    _app, raw, login = hub
    person(writer, 1)
    narrow = login("vaccine-registry", "system/Immunization.rs", roles="bulk-export")
    assert raw.get("/fhir/$export", params={"_type": "Patient"}, headers={**narrow, **ASYNC}).status_code == 403
    manifest, got = export(raw, "/fhir/$export", narrow)
    assert set(got) == {"Immunization"} and [e["type"] for e in manifest["output"]] == ["Immunization"]


def test_another_client_cannot_see_the_job_but_an_export_operator_can(hub, writer, registry):
    _app, raw, login = hub
    person(writer, 1)
    url = kick_off(raw, "/fhir/$export", registry)
    manifest = wait_done(raw, url, registry)
    other = login("other-registry", "system/*.rs", roles="bulk-export")
    file_url = manifest["output"][0]["url"]
    for r in (raw.get(url, headers=other), raw.get(file_url, headers=other), raw.delete(url, headers=other)):
        assert r.status_code == 404
        outcome(r)
    assert raw.get(file_url).status_code == 401  # requiresAccessToken
    operator = login("moh-operator", "system/*.rs", kind="operator", roles="bulk-export")
    assert raw.get(url, headers=operator).status_code == 200
    assert raw.get(file_url, headers=operator).status_code == 200
    assert raw.get(url, headers=registry).status_code == 200  # still there for its owner


def test_bad_job_ids_and_file_names_are_404_never_5xx(hub, writer, registry):
    _app, raw, _login = hub
    person(writer, 1)
    manifest = wait_done(raw, kick_off(raw, "/fhir/$export", registry), registry)
    job = manifest["output"][0]["url"].split("/")[-2]
    for path in ("/fhir/$export-status/no-such-job", "/fhir/$export-status/%ff%fe", f"/fhir/$export-file/{job}/..%2F..%2Fsecret",
                 f"/fhir/$export-file/{job}/Patient-9.ndjson", f"/fhir/$export-file/{job}/x.txt", "/fhir/$export-file/nope/Patient-1.ndjson"):
        r = raw.get(path, headers=registry)
        assert r.status_code == 404, (path, r.status_code, r.text)
    assert raw.delete("/fhir/$export-status/no-such-job", headers=registry).status_code == 404


def test_deleting_a_job_removes_its_files(hub, writer, registry):
    app, raw, _login = hub
    person(writer, 1)
    url = kick_off(raw, "/fhir/$export", registry)
    manifest = wait_done(raw, url, registry)
    job = url.rsplit("/", 1)[1]
    folder = app.state.settings.export_path() / job
    assert any(folder.rglob("Patient-1.ndjson"))

    r = raw.delete(url, headers=registry)

    assert r.status_code == 202
    assert not folder.exists()
    assert raw.get(url, headers=registry).status_code == 404
    assert raw.get(manifest["output"][0]["url"], headers=registry).status_code == 404


def test_too_many_running_exports_of_one_client_are_429(engine, tmp_path, sms):
    from tests.integration.bulk_export.conftest import export_hub

    with export_hub(engine, tmp_path / "hub-data", sms, export_in_process=False, export_max_active_per_client=2) as (_app, raw, login):
        headers = login("national-registry", "system/*.rs", roles="bulk-export")
        first = kick_off(raw, "/fhir/$export", headers)
        kick_off(raw, "/fhir/$export", headers)
        r = raw.get("/fhir/$export", headers={**headers, **ASYNC})
        assert r.status_code == 429 and int(r.headers["retry-after"]) >= 1
        assert raw.delete(first, headers=headers).status_code == 202
        kick_off(raw, "/fhir/$export", headers)  # a cancelled job frees its place


def test_the_audit_trail_records_the_kick_off_and_each_download(hub, writer, registry):
    app, raw, login = hub
    (pat, _doses) = person(writer, 1)
    group = writer.post("/fhir/Group", json={"resourceType": "Group", "type": "person", "actual": True,
                                              "member": [{"entity": {"reference": f"Patient/{pat['id']}"}}]}).json()
    url = kick_off(raw, f"/fhir/Group/{group['id']}/$export", registry, _type="Patient,Immunization")
    manifest = wait_done(raw, url, registry)
    for entry in manifest["output"]:
        assert raw.get(entry["url"], headers=registry).status_code == 200
    raw.get("/fhir/$export", headers=registry)  # refused: no Prefer header

    auditor = login("auditor-console", "system/AuditEvent.rs", kind="operator", roles="auditor")
    with TestClient(app, headers=auditor) as c:
        events = [e["resource"] for e in c.get("/fhir/AuditEvent", params={"subtype": "export", "agent": "national-registry"}).json()["entry"]]
        by_patient = c.get("/fhir/AuditEvent", params={"subtype": "export", "patient": pat["id"]}).json()["entry"]
    kick, refused = [e for e in events if "Group" in e["extension"][0]["valueString"]], [e for e in events if e["outcome"] == "4"]
    downloads = [e for e in events if "$export-file" in e["extension"][0]["valueString"]]
    assert len(kick) == 1 and kick[0]["outcome"] == "0" and kick[0]["action"] == "R"
    assert f"Group/{group['id']}/_history/1" in {x["what"]["reference"] for x in kick[0]["entity"] if "what" in x}
    assert len(by_patient) == 1 and by_patient[0]["resource"]["id"] == kick[0]["id"]
    assert len(downloads) == 2
    assert sorted(re.search(r"(\w+-1\.ndjson), (\d+)", d["outcomeDesc"]).groups() for d in downloads) == [
        ("Immunization-1.ndjson", "1"), ("Patient-1.ndjson", "1")]
    assert len(refused) == 1
