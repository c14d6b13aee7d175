"""System, Patient and Group level exports over HTTP: kick-off, poll, download,
and the NDJSON holds exactly what the store holds."""

from __future__ import annotations

import time

import orjson

from tests.builders import immunization
from tests.integration.bulk_export.conftest import ASYNC, create, download, export, ids, kick_off, person, wait_done
from vaxhub.hub.mpi.golden import is_golden
from vaxhub.hub.mpi.worker import LinkWorker


def organisation(code: str) -> dict:
    return {"resourceType": "Organization", "identifier": [{"system": "https://vaxhub.vn/fhir/sid/site", "value": code}], "name": f"Trạm y tế {code}"}


def test_system_export_returns_every_stored_resource_once(hub, writer, registry):
    _app, raw, _login = hub
    people = [person(writer, n, doses=2) for n in range(3)]
    org = create(writer, organisation("79001"))

    manifest, got = export(raw, "/fhir/$export", registry)

    assert manifest["requiresAccessToken"] is True
    assert manifest["request"] == "http://hub.test/fhir/$export"
    assert manifest["transactionTime"].endswith("Z") and manifest["error"] == []
    assert {e["type"]: e["count"] for e in manifest["output"]} == {"Patient": 3, "Immunization": 6, "Organization": 1}
    assert ids(got["Patient"]) == {p["id"] for p, _ in people}
    assert ids(got["Immunization"]) == {d["id"] for _, doses in people for d in doses}
    assert got["Organization"] == [org]  # the stored JSON, byte for byte in meaning


def test_patient_export_holds_every_compartment_and_nothing_else(hub, writer, registry):
    _app, raw, _login = hub
    people = [person(writer, n) for n in range(2)]
    create(writer, organisation("79002"))

    manifest, got = export(raw, "/fhir/Patient/$export", registry)

    assert manifest["request"] == "http://hub.test/fhir/Patient/$export"
    assert set(got) == {"Patient", "Immunization"}
    assert ids(got["Patient"]) == {p["id"] for p, _ in people}
    assert len(got["Immunization"]) == 2


def test_group_export_holds_the_members_compartments_only(hub, writer, registry):
    _app, raw, _login = hub
    (a, a_doses), (b, b_doses), (c, _c_doses) = (person(writer, n, doses=2) for n in range(3))
    group = create(writer, {
        "resourceType": "Group", "type": "person", "actual": True, "name": "Cohort Quận 1",
        "member": [{"entity": {"reference": f"Patient/{a['id']}"}},
                   {"entity": {"reference": f"Patient/{b['id']}"}},
                   {"entity": {"reference": f"Patient/{c['id']}"}, "inactive": True}],
    })

    manifest, got = export(raw, f"/fhir/Group/{group['id']}/$export", registry)

    assert manifest["request"] == f"http://hub.test/fhir/Group/{group['id']}/$export"
    assert ids(got["Patient"]) == {a["id"], b["id"]}
    assert ids(got["Immunization"]) == {d["id"] for d in a_doses + b_doses}
    assert "Group" not in got  # the Group's compartments, not the Group itself


def test_unknown_group_is_404_and_a_deleted_one_410(hub, writer, registry):
    _app, raw, _login = hub
    assert raw.get("/fhir/Group/no-such-group/$export", headers={**registry, **ASYNC}).status_code == 404
    pat, _ = person(writer, 1, doses=0)
    group = create(writer, {"resourceType": "Group", "type": "person", "actual": True, "member": [{"entity": {"reference": f"Patient/{pat['id']}"}}]})
    assert writer.delete(f"/fhir/Group/{group['id']}").status_code == 204
    r = raw.get(f"/fhir/Group/{group['id']}/$export", headers={**registry, **ASYNC})
    assert r.status_code == 410 and r.json()["resourceType"] == "OperationOutcome"


def test_since_exports_only_what_changed_after_the_previous_transaction_time(hub, writer, registry):
    _app, raw, _login = hub
    (kept, kept_doses), (changed, _doses) = person(writer, 1), person(writer, 2)
    first, _got = export(raw, "/fhir/$export", registry)
    time.sleep(0.01)
    added, added_doses = person(writer, 3)
    update = {**changed, "gender": "female"}
    assert writer.put(f"/fhir/Patient/{changed['id']}", json=update).status_code == 200

    manifest, got = export(raw, "/fhir/$export", registry, _since=first["transactionTime"])

    assert ids(got["Patient"]) == {added["id"], changed["id"]}
    assert {p["id"]: p["meta"]["versionId"] for p in got["Patient"]}[changed["id"]] == "2"
    assert ids(got["Immunization"]) == {added_doses[0]["id"]}
    assert kept["id"] not in ids(got["Patient"]) and kept_doses[0]["id"] not in ids(got["Immunization"])
    assert manifest["request"].endswith("_since=" + first["transactionTime"].replace(":", "%3A"))


def test_since_with_an_unencoded_offset_and_in_the_future(hub, writer, registry):
    _app, raw, _login = hub
    person(writer, 1)
    # "+07:00" typed into a query string unencoded arrives as " 07:00".
    url = kick_off(raw, "/fhir/$export?_since=2000-01-01T00:00:00+07:00", registry)
    assert {e["type"] for e in wait_done(raw, url, registry)["output"]} == {"Patient", "Immunization"}
    later, got = export(raw, "/fhir/$export", registry, _since="2999-01-01T00:00:00Z")
    assert later["output"] == [] and got == {}


def test_type_filter_limits_the_files(hub, writer, registry):
    _app, raw, _login = hub
    person(writer, 1, doses=3)
    create(writer, organisation("79003"))

    manifest, got = export(raw, "/fhir/$export", registry, _type="Immunization,Organization")

    assert [e["type"] for e in manifest["output"]] == ["Immunization", "Organization"]
    assert len(got["Immunization"]) == 3 and len(got["Organization"]) == 1


def test_golden_patients_of_the_master_patient_index_are_exported(hub, writer, registry):
    app, raw, _login = hub
    site_record, _doses = person(writer, 7)
    assert LinkWorker(app.state.mpi, backoff_seconds=0).run(until_idle=True) >= 1

    _manifest, got = export(raw, "/fhir/Patient/$export", registry, _type="Patient")

    golden = [p for p in got["Patient"] if is_golden(p)]
    assert len(golden) == 1 and site_record["id"] in ids(got["Patient"])
    assert golden[0]["id"] != site_record["id"]


def test_post_kick_off_with_parameters_exports_the_named_patients(hub, writer, registry):
    _app, raw, _login = hub
    (a, a_doses), (b, _b_doses) = person(writer, 1), person(writer, 2)
    body = {"resourceType": "Parameters", "parameter": [
        {"name": "_outputFormat", "valueString": "application/fhir+ndjson"},
        {"name": "_type", "valueString": "Patient"},
        {"name": "_type", "valueString": "Immunization"},
        {"name": "patient", "valueReference": {"reference": f"Patient/{a['id']}"}},
    ]}
    r = raw.post("/fhir/Patient/$export", content=orjson.dumps(body), headers={**registry, **ASYNC})
    assert r.status_code == 202, r.text
    got = download(raw, wait_done(raw, r.headers["content-location"], registry), registry)
    assert ids(got["Patient"]) == {a["id"]} and ids(got["Immunization"]) == {a_doses[0]["id"]}


def test_large_types_are_split_into_several_files(engine, tmp_path, sms):
    from fastapi.testclient import TestClient

    from tests.integration.bulk_export.conftest import export_hub

    with export_hub(engine, tmp_path / "hub-data", sms, export_file_max_resources=2, export_page_size=3) as (app, raw, login):
        with TestClient(app, headers=login("national-admin", "system/*.cruds")) as w:
            pat, _ = person(w, 1, doses=0)
            doses = [create(w, immunization(f"Patient/{pat['id']}", f"IMM-split-{n}")) for n in range(5)]
        headers = login("national-registry", "system/*.rs", roles="bulk-export")
        manifest, got = export(raw, "/fhir/$export", headers, _type="Immunization")
    assert [(e["url"].rsplit("/", 1)[1], e["count"]) for e in manifest["output"]] == [
        ("Immunization-1.ndjson", 2), ("Immunization-2.ndjson", 2), ("Immunization-3.ndjson", 1)]
    assert ids(got["Immunization"]) == {d["id"] for d in doses}


def test_capability_statement_lists_the_export_operations(hub):
    _app, raw, _login = hub
    statement = raw.get("/fhir/metadata").json()
    assert "http://hl7.org/fhir/uv/bulkdata/CapabilityStatement/bulk-data" in statement["instantiates"]
    rest = statement["rest"][0]
    assert {"name": "export", "definition": "http://hl7.org/fhir/uv/bulkdata/OperationDefinition/export"} in rest["operation"]
    by_type = {r["type"]: r for r in rest["resource"]}
    assert {o["name"] for o in by_type["Patient"]["operation"]} >= {"export"}
    assert by_type["Group"]["operation"] == [{"name": "export", "definition": "http://hl7.org/fhir/uv/bulkdata/OperationDefinition/group-export"}]
