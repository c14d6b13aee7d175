"""Transaction and batch Bundles: atomic, idempotent with conditional creates, references rewritten."""

from __future__ import annotations

import copy
import threading
import uuid

from tests.builders import identifier_condition, immunization, patient, person_with_doses, post_entry, transaction


def _count(client, rtype: str) -> int:
    return client.get(f"/fhir/{rtype}", params={"_summary": "count"}).json()["total"]


def _history_count(client, rtype: str) -> int:
    return len(client.get(f"/fhir/{rtype}/_history", params={"_count": 500}).json().get("entry", []))


def test_posting_the_same_transaction_twice_leaves_one_copy_of_each(client):
    bundle = transaction(*person_with_doses("079085000001", 3), *person_with_doses("001185000002", 2, family="Lê", given=("Minh",)))
    first = client.post("/fhir", json=bundle)
    assert first.status_code == 200, first.text
    assert [e["response"]["status"] for e in first.json()["entry"]] == ["201 Created"] * 7
    second = client.post("/fhir", json=copy.deepcopy(bundle))
    assert second.status_code == 200, second.text
    assert [e["response"]["status"] for e in second.json()["entry"]] == ["200 OK"] * 7
    assert [e["response"]["location"] for e in second.json()["entry"]] == [e["response"]["location"] for e in first.json()["entry"]]
    assert _count(client, "Patient") == 2
    assert _count(client, "Immunization") == 5
    assert _history_count(client, "Immunization") == 5  # the re-send wrote no new versions


def test_urn_uuid_references_are_rewritten_to_server_ids(client):
    out = client.post("/fhir", json=transaction(*person_with_doses("079085000003", 2))).json()
    patient_location = out["entry"][0]["response"]["location"]
    patient_id = patient_location.split("/")[1]
    imm_id = out["entry"][1]["response"]["location"].split("/")[1]
    imm = client.get(f"/fhir/Immunization/{imm_id}").json()
    assert imm["patient"]["reference"] == f"Patient/{patient_id}"


def test_transaction_with_one_invalid_entry_stores_nothing_and_names_the_entry(client):
    entries = person_with_doses("079085000004", 2)
    entries[2]["resource"]["occurrenceDateTime"] = "2021-13-45"
    r = client.post("/fhir", json=transaction(*entries))
    assert r.status_code == 422
    issue = r.json()["issue"][0]
    assert issue["expression"][0].startswith("Bundle.entry[2].resource")
    assert _count(client, "Patient") == 0 and _count(client, "Immunization") == 0


def test_a_matched_conditional_create_is_answered_with_the_stored_resource_whatever_its_body(client):
    entries = person_with_doses("079085000021", 1)
    first = client.post("/fhir", json=transaction(*copy.deepcopy(entries)))
    assert first.status_code == 200, first.text
    stored = client.get(f"/fhir/{first.json()['entry'][0]['response']['location'].rsplit('/_history', 1)[0]}").json()
    # The re-send's Patient is broken, but its condition matches: the body is ignored (FHIR R4 http.html#cond-create).
    entries[0]["resource"]["birthDate"] = "1985-13-45"
    again = client.post("/fhir", json=transaction(*entries))
    assert again.status_code == 200, again.text
    assert [e["response"]["status"] for e in again.json()["entry"]] == ["200 OK", "200 OK"]
    now = client.get(f"/fhir/Patient/{stored['id']}").json()
    assert now["birthDate"] == stored["birthDate"] == "1985" and now["meta"]["versionId"] == "1"


def test_unmatched_conditional_creates_are_validated_and_every_bad_one_is_named(client):
    one, two = person_with_doses("079085000022", 1), person_with_doses("079085000023", 1)
    one[0]["resource"]["birthDate"] = "1985-13-45"
    two[1]["resource"]["occurrenceDateTime"] = "yesterday"
    r = client.post("/fhir", json=transaction(*one, *two))
    assert r.status_code == 422, r.text
    where = [issue["expression"][0] for issue in r.json()["issue"]]
    assert any(w.startswith("Bundle.entry[0].resource") for w in where), where
    assert any(w.startswith("Bundle.entry[3].resource") for w in where), where
    assert _count(client, "Patient") == 0 and _count(client, "Immunization") == 0


def test_an_unmatched_invalid_conditional_create_fails_only_its_batch_entry(client):
    bad = person_with_doses("079085000024", 1)[0]
    bad["resource"]["gender"] = "x"
    good = person_with_doses("079085000025", 1)[0]
    r = client.post("/fhir", json=transaction(bad, good, kind="batch"))
    assert r.status_code == 200, r.text
    assert [e["response"]["status"] for e in r.json()["entry"]] == ["422", "201 Created"]
    assert "gender" in r.json()["entry"][0]["response"]["outcome"]["issue"][0]["diagnostics"]
    assert _count(client, "Patient") == 1


def test_transaction_failing_at_write_time_rolls_back_earlier_entries(client):
    # The second entry passes validation but refers to a patient that does not exist.
    good = person_with_doses("079085000005", 1)
    bad = post_entry(immunization("Patient/missing", "X-1"))
    r = client.post("/fhir", json=transaction(*good, bad))
    assert r.status_code == 422
    assert "Patient/missing" in r.json()["issue"][0]["diagnostics"]
    assert _count(client, "Patient") == 0 and _count(client, "Immunization") == 0


def test_unresolved_urn_reference_is_refused(client):
    r = client.post("/fhir", json=transaction(post_entry(immunization("urn:uuid:5b6a0e2c-0000-0000-0000-000000000000"))))
    assert r.status_code == 422
    assert _count(client, "Immunization") == 0


def test_duplicate_identifier_inside_one_transaction_is_refused(client):
    a = patient("079085000006")
    r = client.post("/fhir", json=transaction(post_entry(a), post_entry(patient("079085000006", family="Phạm"))))
    assert r.status_code == 409
    assert _count(client, "Patient") == 0


def test_same_conditional_create_twice_in_one_bundle_resolves_to_one_resource(client):
    pat = patient("079085000007")
    cond = identifier_condition(pat)
    r = client.post("/fhir", json=transaction(post_entry(pat, if_none_exist=cond), post_entry(copy.deepcopy(pat), if_none_exist=cond)))
    assert r.status_code == 200, r.text
    locations = {e["response"]["location"].split("/_history")[0] for e in r.json()["entry"]}
    assert len(locations) == 1
    assert _count(client, "Patient") == 1


def test_transaction_put_delete_and_get_entries(client):
    created = client.post("/fhir/Patient", json=patient("079085000008")).json()
    doomed = client.post("/fhir/Organization", json={"resourceType": "Organization", "name": "Old site"}).json()
    bundle = transaction(
        {"resource": {**created, "gender": "female"}, "request": {"method": "PUT", "url": f"Patient/{created['id']}", "ifMatch": 'W/"1"'}},
        {"request": {"method": "DELETE", "url": f"Organization/{doomed['id']}"}},
        {"request": {"method": "GET", "url": "Patient?identifier=https://vaxhub.vn/fhir/sid/cccd|079085000008"}},
    )
    out = client.post("/fhir", json=bundle)
    assert out.status_code == 200, out.text
    entries = out.json()["entry"]
    assert entries[0]["response"]["status"] == "200 OK"
    assert entries[1]["response"]["status"] == "204 No Content"
    assert entries[2]["resource"]["entry"][0]["resource"]["gender"] == "female"
    assert client.get(f"/fhir/Organization/{doomed['id']}").status_code == 410


def test_stale_if_match_in_transaction_rolls_back_everything(client):
    created = client.post("/fhir/Patient", json=patient("079085000009")).json()
    bundle = transaction(
        post_entry(patient("079085000010")),
        {"resource": {**created, "gender": "female"}, "request": {"method": "PUT", "url": f"Patient/{created['id']}", "ifMatch": 'W/"7"'}},
    )
    r = client.post("/fhir", json=bundle)
    assert r.status_code == 412
    assert _count(client, "Patient") == 1


def test_batch_reports_each_entry_on_its_own(client):
    good = post_entry(patient("079085000011"))
    invalid = post_entry({**patient("079085000012"), "birthDate": "not-a-date"})
    dangling = post_entry(immunization("Patient/missing", "B-1"))
    r = client.post("/fhir", json=transaction(good, invalid, dangling, kind="batch"))
    assert r.status_code == 200, r.text
    statuses = [e["response"]["status"] for e in r.json()["entry"]]
    assert statuses[0] == "201 Created"
    assert statuses[1] == "422" and statuses[2] == "422"
    assert r.json()["entry"][1]["response"]["outcome"]["resourceType"] == "OperationOutcome"
    assert _count(client, "Patient") == 1


def test_bundle_of_other_type_is_refused(client):
    r = client.post("/fhir", json={"resourceType": "Bundle", "type": "collection", "entry": []})
    assert r.status_code == 400


def test_oversized_bundle_is_refused_before_work(client):
    entries = [post_entry(patient(f"0790850{n:05d}")) for n in range(1001)]
    r = client.post("/fhir", json=transaction(*entries))
    assert r.status_code == 400
    assert _count(client, "Patient") == 0


def test_racing_resends_of_one_transaction_leave_one_copy_and_no_errors(client):
    # Sites retry on timeouts, so the same Bundle can arrive twice at once on
    # two hub processes: the loser of the identifier race must see the winner's
    # records, not fail.
    bundle = transaction(*person_with_doses("079085000777", 2), *person_with_doses("001185000778", 1, family="Lê", given=("Minh",)))
    barrier = threading.Barrier(4)
    answers: list = []

    def send() -> None:
        barrier.wait()
        answers.append(client.post("/fhir", json=copy.deepcopy(bundle)))

    threads = [threading.Thread(target=send) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert [a.status_code for a in answers] == [200] * 4, [a.text[:300] for a in answers if a.status_code != 200]
    locations = {tuple(e["response"]["location"] for e in a.json()["entry"]) for a in answers}
    assert len(locations) == 1
    assert _count(client, "Patient") == 2
    assert _count(client, "Immunization") == 3


def test_racing_bundles_about_one_new_person_share_the_patient(client):
    # Two sites (or two users of one site) send different doses of a person the
    # hub has never seen, at the same moment: one Patient, both doses on it.
    pat = patient("079085000999", "Phạm", ("Thu",), gender="female", birth_date="1990")
    bundles = []
    for n in range(4):
        purl = f"urn:uuid:{uuid.uuid4()}"
        imm = immunization(purl, f"RACE-{n}", date=f"2021-0{n + 5}-15")
        bundles.append(transaction(post_entry(copy.deepcopy(pat), purl, if_none_exist=identifier_condition(pat)),
                                   post_entry(imm, if_none_exist=identifier_condition(imm))))
    barrier = threading.Barrier(len(bundles))
    answers: list = []

    def send(bundle: dict) -> None:
        barrier.wait()
        answers.append(client.post("/fhir", json=bundle))

    threads = [threading.Thread(target=send, args=(b,)) for b in bundles]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert [a.status_code for a in answers] == [200] * 4, [a.text[:300] for a in answers if a.status_code != 200]
    assert len({a.json()["entry"][0]["response"]["location"].split("/_history")[0] for a in answers}) == 1
    assert _count(client, "Patient") == 1
    assert _count(client, "Immunization") == 4
