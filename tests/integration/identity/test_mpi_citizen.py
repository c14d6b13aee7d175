"""The health book: a citizen sees the doses of every record linked to them, and
never anyone else's, even when the family shares a phone and a surname."""

from __future__ import annotations

import re

import pytest

from tests.integration.identity.identity_builders import FAMILY_PHONE, HUONG, MAI, NAM, dose, of, person_of

OWN_PHONE = "0912345678"


def created(response) -> str:
    assert response.status_code == 201, response.text
    return response.json()["id"]


def citizen_login(raw, sms, cccd: str, phone: str) -> dict[str, str]:
    started = raw.post("/auth/otp/start", json={"cccd": cccd, "phone": phone})
    assert started.status_code == 202, started.text
    code = re.search(r"\d{6}", sms.last_to(f"+84{phone[1:]}")).group(0)
    verified = raw.post("/auth/otp/verify", json={"challenge": started.json()["challenge"], "code": code})
    assert verified.status_code == 200, verified.text
    return {"authorization": f"Bearer {verified.json()['access_token']}"}


@pytest.fixture
def household(site, link_all, engine):
    hanoi, hcm = site("79001"), site("79002")
    a = created(hanoi.post("/fhir/Patient", json=of(HUONG, phone=OWN_PHONE, number="a")))
    b = created(hcm.post("/fhir/Patient", json=of(HUONG, name="Nguyen Thi Thu Huong", cccd=None, phone=OWN_PHONE, site="79002", number="b")))
    mother = created(hcm.post("/fhir/Patient", json=of(MAI, phone=FAMILY_PHONE, site="79002", number="m")))
    brother = created(hcm.post("/fhir/Patient", json=of(NAM, phone=OWN_PHONE, site="79002", number="n")))  # he gave her number
    doses = {
        "a": created(hanoi.post("/fhir/Immunization", json=dose(a, "a1", site="79001"))),
        "b": created(hcm.post("/fhir/Immunization", json=dose(b, "b1", site="79002"))),
        "mother": created(hcm.post("/fhir/Immunization", json=dose(mother, "m1", site="79002"))),
        "brother": created(hcm.post("/fhir/Immunization", json=dose(brother, "n1", site="79002"))),
    }
    link_all()
    assert person_of(engine, a) == person_of(engine, b)
    return {"a": a, "b": b, "mother": mother, "brother": brother, "doses": doses, "person": person_of(engine, a),
            "mother_person": person_of(engine, mother)}


def test_a_citizen_sees_every_dose_of_their_person_and_nothing_else(hub, sms, household):
    _app, raw, _login = hub
    h = household
    me = citizen_login(raw, sms, HUONG.cccd, OWN_PHONE)
    found = raw.get("/fhir/Immunization", headers=me).json()
    assert sorted(e["resource"]["id"] for e in found["entry"]) == sorted([h["doses"]["a"], h["doses"]["b"]])
    assert raw.get(f"/fhir/Immunization/{h['doses']['b']}", headers=me).status_code == 200
    assert raw.get(f"/fhir/Patient/{h['b']}", headers=me).status_code == 200
    golden = raw.get(f"/fhir/Patient/{h['person']}/$everything", headers=me)
    assert golden.status_code == 200
    assert {e["resource"]["id"] for e in golden.json()["entry"] if e["resource"]["resourceType"] == "Immunization"} == {h["doses"]["a"], h["doses"]["b"]}
    by_person = raw.get("/fhir/Immunization", params={"patient": f"Patient/{h['person']}"}, headers=me).json()
    assert len(by_person["entry"]) == 2

    strangers = [h["mother"], h["brother"], h["mother_person"]]
    for path in [f"/fhir/Patient/{p}" for p in strangers] + [f"/fhir/Immunization/{h['doses'][k]}" for k in ("mother", "brother")] + [
        f"/fhir/Patient/{h['mother_person']}/$everything"]:
        assert raw.get(path, headers=me).status_code == 404, path
    for params in ({}, {"patient": h["mother"]}, {"patient": f"Patient/{h['mother_person']}"}, {"_include": "Immunization:patient"}):
        body = raw.get("/fhir/Immunization", params=params, headers=me).json()
        ids = {e["resource"]["id"] for e in body.get("entry", [])}
        assert not ids & {h["doses"]["mother"], h["doses"]["brother"], h["mother"], h["brother"]}, params
    patients = raw.get("/fhir/Patient", params={"telecom": OWN_PHONE}, headers=me).json()
    assert {e["resource"]["id"] for e in patients["entry"]} == {h["a"], h["b"]}  # the golden Patient holds no phone
    assert {e["resource"]["id"] for e in raw.get("/fhir/Patient", headers=me).json()["entry"]} == {h["a"], h["b"], h["person"]}
    assert raw.post("/fhir/Patient/$match", json={"resourceType": "Patient"}, headers=me).status_code == 403


def test_after_an_unlink_the_citizen_no_longer_sees_the_record(hub, sms, household, ops):
    _app, raw, _login = hub
    h = household
    me = citizen_login(raw, sms, HUONG.cccd, OWN_PHONE)
    assert raw.get(f"/fhir/Immunization/{h['doses']['b']}", headers=me).status_code == 200
    assert ops.post("/ops/mpi/unlink", json={"record": h["b"], "reason": "the patient says this dose is not hers"}).status_code == 200
    # The same token, the next request: the record is someone else's now.
    assert raw.get(f"/fhir/Immunization/{h['doses']['b']}", headers=me).status_code == 404
    assert raw.get(f"/fhir/Patient/{h['b']}", headers=me).status_code == 404
    found = raw.get("/fhir/Immunization", headers=me).json()
    assert [e["resource"]["id"] for e in found["entry"]] == [h["doses"]["a"]]
