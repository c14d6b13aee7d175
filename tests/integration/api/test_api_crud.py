"""Create, read, vread, update, delete and history over the REST API, on SQLite and PostgreSQL."""

from __future__ import annotations

from sqlalchemy import event

from tests.builders import CCCD, identifier_condition, immunization, patient


def _create(client, resource: dict) -> dict:
    r = client.post(f"/fhir/{resource['resourceType']}", json=resource)
    assert r.status_code == 201, r.text
    return r.json()


def test_create_assigns_id_version_and_location(client):
    r = client.post("/fhir/Patient", json=patient())
    assert r.status_code == 201
    body = r.json()
    assert body["meta"]["versionId"] == "1"
    assert r.headers["etag"] == 'W/"1"'
    assert r.headers["location"] == f"http://hub.test/fhir/Patient/{body['id']}/_history/1"
    assert r.headers["content-type"].startswith("application/fhir+json")
    assert client.get(f"/fhir/Patient/{body['id']}").json()["name"][0]["family"] == "Nguyễn"


def test_prefer_return_minimal_sends_no_body(client):
    r = client.post("/fhir/Patient", json=patient(), headers={"Prefer": "return=minimal"})
    assert r.status_code == 201 and r.content == b"" and "location" in r.headers


def test_update_with_current_etag_makes_version_two_and_keeps_version_one(client):
    created = _create(client, patient())
    pid = created["id"]
    changed = {**created, "gender": "female"}
    r = client.put(f"/fhir/Patient/{pid}", json=changed, headers={"If-Match": 'W/"1"'})
    assert r.status_code == 200, r.text
    assert r.json()["meta"]["versionId"] == "2"
    assert client.get(f"/fhir/Patient/{pid}/_history/1").json()["gender"] == "male"
    assert client.get(f"/fhir/Patient/{pid}/_history/2").json()["gender"] == "female"


def test_update_with_stale_etag_is_refused_with_412(client):
    created = _create(client, patient())
    pid = created["id"]
    assert client.put(f"/fhir/Patient/{pid}", json={**created, "gender": "female"}, headers={"If-Match": 'W/"1"'}).status_code == 200
    r = client.put(f"/fhir/Patient/{pid}", json={**created, "gender": "other"}, headers={"If-Match": 'W/"1"'})
    assert r.status_code == 412
    assert r.json()["resourceType"] == "OperationOutcome"
    assert client.get(f"/fhir/Patient/{pid}").json()["gender"] == "female"


def test_identical_resend_of_update_creates_no_new_version(client):
    created = _create(client, patient())
    r = client.put(f"/fhir/Patient/{created['id']}", json=created)
    assert r.status_code == 200 and r.json()["meta"]["versionId"] == "1"


def test_put_to_new_id_creates_with_client_id(client):
    r = client.put("/fhir/Organization/site-79001", json={"resourceType": "Organization", "id": "site-79001", "name": "Trạm Y tế phường Bến Nghé"})
    assert r.status_code == 201
    assert client.get("/fhir/Organization/site-79001").json()["name"] == "Trạm Y tế phường Bến Nghé"


def test_put_with_mismatched_id_is_400(client):
    r = client.put("/fhir/Organization/a", json={"resourceType": "Organization", "id": "b", "name": "X"})
    assert r.status_code == 400


def test_delete_keeps_history_and_read_answers_410(client):
    created = _create(client, patient())
    pid = created["id"]
    assert client.delete(f"/fhir/Patient/{pid}").status_code == 204
    assert client.get(f"/fhir/Patient/{pid}").status_code == 410
    assert client.get(f"/fhir/Patient/{pid}/_history/1").status_code == 200
    hist = client.get(f"/fhir/Patient/{pid}/_history").json()
    assert [e["request"]["method"] for e in hist["entry"]] == ["DELETE", "POST"]
    assert client.get("/fhir/Patient", params={"identifier": f"{CCCD}|079090012345"}).json().get("entry") is None


def test_deleting_a_referenced_patient_is_refused(client):
    pid = _create(client, patient())["id"]
    _create(client, immunization(f"Patient/{pid}"))
    r = client.delete(f"/fhir/Patient/{pid}")
    assert r.status_code == 409
    assert "Immunization/" in r.json()["issue"][0]["diagnostics"]
    assert client.get(f"/fhir/Patient/{pid}").status_code == 200


def test_type_history_lists_every_version_newest_first(client):
    a = _create(client, patient("079090000001"))
    _create(client, patient("079090000002"))
    client.put(f"/fhir/Patient/{a['id']}", json={**a, "gender": "female"})
    entries = client.get("/fhir/Patient/_history").json()["entry"]
    assert len(entries) == 3
    assert entries[0]["resource"]["meta"]["versionId"] == "2"


def test_history_pages_with_next_link(client):
    for n in range(5):
        _create(client, patient(f"07909000001{n}"))
    page = client.get("/fhir/Patient/_history", params={"_count": 2}).json()
    assert len(page["entry"]) == 2
    nxt = [link["url"] for link in page["link"] if link["relation"] == "next"][0]
    assert "_offset=2" in nxt


def test_conditional_create_with_if_none_exist_returns_existing(client):
    pat = patient()
    first = client.post("/fhir/Patient", json=pat, headers={"If-None-Exist": identifier_condition(pat)})
    again = client.post("/fhir/Patient", json=pat, headers={"If-None-Exist": identifier_condition(pat)})
    assert first.status_code == 201 and again.status_code == 200
    assert again.json()["id"] == first.json()["id"]
    assert client.get("/fhir/Patient", params={"_summary": "count"}).json()["total"] == 1


def test_plain_create_with_held_identifier_is_409(client):
    _create(client, patient())
    r = client.post("/fhir/Patient", json=patient(family="Lê"))
    assert r.status_code == 409
    assert "already held" in r.json()["issue"][0]["diagnostics"]


def test_conditional_update_creates_then_updates_the_same_record(client):
    pat = patient()
    url = f"/fhir/Patient?{identifier_condition(pat)}"
    first = client.put(url, json=pat)
    assert first.status_code == 201, first.text
    second = client.put(url, json={**pat, "gender": "female"})
    assert second.status_code == 200
    assert second.json()["id"] == first.json()["id"]
    assert second.json()["meta"]["versionId"] == "2"


def test_immunization_with_unknown_patient_is_422_and_not_stored(client):
    r = client.post("/fhir/Immunization", json=immunization("Patient/nobody"))
    assert r.status_code == 422
    assert "Patient/nobody" in r.json()["issue"][0]["diagnostics"]
    assert client.get("/fhir/Immunization", params={"_summary": "count"}).json()["total"] == 0


def test_patient_everything_returns_the_compartment(client):
    pid = _create(client, patient())["id"]
    other = _create(client, patient("079090099999"))["id"]
    _create(client, immunization(f"Patient/{pid}", "A"))
    _create(client, immunization(f"Patient/{pid}", "B"))
    _create(client, immunization(f"Patient/{other}", "C"))
    bundle = client.get(f"/fhir/Patient/{pid}/$everything").json()
    kinds = sorted(e["resource"]["resourceType"] for e in bundle["entry"])
    assert kinds == ["Immunization", "Immunization", "Patient"]


def test_patient_everything_reads_the_resources_in_one_query(client, engine):
    """The Patient comes with its compartment: no read of its own first."""
    pid = _create(client, patient("079090077777"))["id"]
    _create(client, immunization(f"Patient/{pid}", "E"))
    reads: list[str] = []

    def count(_conn, _cursor, statement, *_args) -> None:
        if "FROM resource" in statement:
            reads.append(statement)

    event.listen(engine, "before_cursor_execute", count)
    try:
        bundle = client.get(f"/fhir/Patient/{pid}/$everything").json()
    finally:
        event.remove(engine, "before_cursor_execute", count)
    assert [e["resource"]["resourceType"] for e in bundle["entry"]] == ["Patient", "Immunization"]
    assert len(reads) == 1, reads


def test_patient_everything_of_a_missing_or_deleted_patient_is_refused_as_its_read_is(client):
    gone = _create(client, patient("079090088888"))["id"]
    assert client.delete(f"/fhir/Patient/{gone}").status_code == 204
    missing = client.get("/fhir/Patient/no-such-id/$everything")
    deleted = client.get(f"/fhir/Patient/{gone}/$everything")
    assert (missing.status_code, deleted.status_code) == (404, 410)
    assert missing.json()["resourceType"] == deleted.json()["resourceType"] == "OperationOutcome"
    assert client.get(f"/fhir/Patient/{gone}").status_code == 410
