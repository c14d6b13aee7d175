"""Citizens see only their own records, sites write only as themselves, verifiers see no health data."""

from __future__ import annotations

import re

import pytest

from tests.builders import CCCD, immunization, patient


@pytest.fixture
def people(client):
    """Two citizens with doses, created by the national client."""
    def make(res):
        r = client.post(f"/fhir/{res['resourceType']}", json=res)
        assert r.status_code == 201, r.text
        return r.json()["id"]

    loc = make({"resourceType": "Location", "name": "Trạm Y tế phường Bến Nghé"})
    an = make(patient("079090012345", phone="0912345678"))
    binh = make(patient("001185067890", "Lê", ("Thị", "Bình"), gender="female", phone="0987654321"))
    an_dose = make(immunization(f"Patient/{an}", "A1", location=f"Location/{loc}"))
    binh_dose = make(immunization(f"Patient/{binh}", "B1", location=f"Location/{loc}"))
    return {"an": an, "binh": binh, "an_dose": an_dose, "binh_dose": binh_dose, "loc": loc}


def citizen_login(raw, sms, cccd: str, phone: str) -> dict[str, str]:
    started = raw.post("/auth/otp/start", json={"cccd": cccd, "phone": phone})
    assert started.status_code == 202
    code = re.search(r"\d{6}", sms.last_to(f"+84{phone[1:]}")).group(0)
    verified = raw.post("/auth/otp/verify", json={"challenge": started.json()["challenge"], "code": code})
    assert verified.status_code == 200, verified.text
    return {"authorization": f"Bearer {verified.json()['access_token']}"}


@pytest.fixture
def an_token(hub, sms, people):
    _app, raw, _login = hub
    return citizen_login(raw, sms, "079090012345", "0912345678")


def test_otp_login_gives_a_token_bound_to_that_person(hub, an_token, people):
    _app, raw, _login = hub
    me = raw.get(f"/fhir/Patient/{people['an']}", headers=an_token)
    assert me.status_code == 200 and me.json()["identifier"][0]["value"] == "079090012345"
    doses = raw.get("/fhir/Immunization", headers=an_token).json()
    assert [e["resource"]["id"] for e in doses["entry"]] == [people["an_dose"]]


def test_citizen_cannot_read_another_person_by_id(hub, an_token, people):
    _app, raw, _login = hub
    for path in (f"/fhir/Patient/{people['binh']}", f"/fhir/Immunization/{people['binh_dose']}",
                 f"/fhir/Patient/{people['binh']}/_history/1", f"/fhir/Patient/{people['binh']}/_history",
                 f"/fhir/Patient/{people['binh']}/$everything", "/fhir/Patient/no-such-id"):
        r = raw.get(path, headers=an_token)
        assert r.status_code == 404, (path, r.status_code)
    # The answer for someone else's record is the answer for a record that does not exist.
    other = raw.get(f"/fhir/Patient/{people['binh']}", headers=an_token).json()["issue"][0]["code"]
    missing = raw.get("/fhir/Patient/no-such-id", headers=an_token).json()["issue"][0]["code"]
    assert other == missing


def test_citizen_searches_never_return_other_people(hub, an_token, people):
    _app, raw, _login = hub
    for params in ({"identifier": f"{CCCD}|001185067890"}, {"name": "Lê"}, {"gender": "female"}, {"_id": people["binh"]},
                   {"patient": people["binh"]}, {}):
        for rtype in ("Patient", "Immunization"):
            if rtype == "Patient" and "patient" in params:
                continue
            r = raw.get(f"/fhir/{rtype}", params=params, headers=an_token)
            assert r.status_code == 200, (rtype, params, r.text)  # refused would prove nothing
            body = r.json()
            ids = {e["resource"]["id"] for e in body.get("entry", [])}
            assert not ids & {people["binh"], people["binh_dose"]}, (rtype, params, ids)


def test_citizen_includes_do_not_leak(hub, an_token, people):
    _app, raw, _login = hub
    body = raw.get("/fhir/Immunization", params={"_include": "Immunization:patient"}, headers=an_token).json()
    assert {e["resource"]["id"] for e in body["entry"]} == {people["an_dose"], people["an"]}
    rev = raw.get("/fhir/Location", params={"_revinclude": "Immunization:location"}, headers=an_token).json()
    ids = {e["resource"]["id"] for e in rev["entry"]}
    assert people["binh_dose"] not in ids and people["an_dose"] in ids


def test_citizen_cannot_write_or_browse_history(hub, an_token, people):
    _app, raw, _login = hub
    headers = {**an_token, "content-type": "application/fhir+json"}
    assert raw.post("/fhir/Patient", json=patient("079090099999"), headers=headers).status_code == 403
    assert raw.post("/fhir", json={"resourceType": "Bundle", "type": "transaction", "entry": []}, headers=headers).status_code == 403
    assert raw.get("/fhir/Immunization/_history", headers=an_token).status_code == 403
    assert raw.get("/fhir/Practitioner", headers=an_token).status_code == 403


def test_otp_for_unknown_person_or_wrong_phone_sends_nothing(hub, sms, people):
    _app, raw, _login = hub
    for cccd, phone in (("079090012345", "0900000000"), ("099999999999", "0912345678")):
        r = raw.post("/auth/otp/start", json={"cccd": cccd, "phone": phone})
        assert r.status_code == 202
    assert sms.messages == []


def test_wrong_codes_are_limited(hub, sms, people):
    _app, raw, _login = hub
    challenge = raw.post("/auth/otp/start", json={"cccd": "079090012345", "phone": "0912345678"}).json()["challenge"]
    code = re.search(r"\d{6}", sms.last_to("+84912345678")).group(0)
    wrong = f"{(int(code) + 1) % 10**6:06d}"
    for _ in range(5):
        assert raw.post("/auth/otp/verify", json={"challenge": challenge, "code": wrong}).status_code == 400
    # After five wrong tries even the right code is refused.
    assert raw.post("/auth/otp/verify", json={"challenge": challenge, "code": code}).status_code == 400


def test_site_cannot_write_as_another_site(hub, people):
    _app, raw, login = hub
    other_site = login("site-01001", "system/Patient.cruds system/Immunization.cruds", site="01001")
    # Identifiers in site 79001's namespace (tests.builders) are refused for site 01001.
    r = raw.post("/fhir/Immunization", json=immunization(f"Patient/{people['an']}", "X9"), headers=other_site)
    assert r.status_code == 403
    own = immunization(f"Patient/{people['an']}", "X9")
    own["identifier"][0]["system"] = "https://vaxhub.vn/fhir/sid/site/01001/immunization"
    created = raw.post("/fhir/Immunization", json=own, headers=other_site)
    assert created.status_code == 201
    assert created.json()["meta"]["source"] == "urn:vaxhub:site:01001"
    # A record owned by site 79001 cannot be changed or deleted by site 01001.
    site_a = login("site-79001", "system/Patient.cruds system/Immunization.cruds", site="79001")
    theirs = raw.post("/fhir/Immunization", json=immunization(f"Patient/{people['an']}", "Y1"), headers=site_a).json()
    changed = {**theirs, "lotNumber": "FORGED"}
    assert raw.put(f"/fhir/Immunization/{theirs['id']}", json=changed, headers=other_site).status_code == 403
    assert raw.delete(f"/fhir/Immunization/{theirs['id']}", headers=other_site).status_code == 403
    assert raw.get(f"/fhir/Immunization/{theirs['id']}", headers=site_a).json()["lotNumber"] == "A1234"


def test_site_cannot_smuggle_another_sites_record_in_a_transaction(hub, people):
    _app, raw, login = hub
    other_site = login("site-01001", "system/Patient.cruds system/Immunization.cruds", site="01001")
    bundle = {"resourceType": "Bundle", "type": "transaction", "entry": [
        {"resource": immunization(f"Patient/{people['an']}", "Z1"), "request": {"method": "POST", "url": "Immunization"}}]}
    assert raw.post("/fhir", json=bundle, headers=other_site).status_code == 403


def test_scopes_limit_what_a_client_may_do(hub, people):
    _app, raw, login = hub
    reader = login("registry-reader", "system/Patient.rs")
    assert raw.get(f"/fhir/Patient/{people['an']}", headers=reader).status_code == 200
    assert raw.get("/fhir/Immunization", headers=reader).status_code == 403
    assert raw.post("/fhir/Patient", json=patient("079090011111"), headers=reader).status_code == 403


def test_verifier_reads_no_health_data(hub, people):
    _app, raw, login = hub
    verifier = login("border-checker", "system/Patient.rs", kind="verifier")
    for path in (f"/fhir/Patient/{people['an']}", "/fhir/Patient", "/fhir/Immunization", f"/fhir/Patient/{people['an']}/$everything"):
        assert raw.get(path, headers=verifier).status_code == 403, path


def test_rate_limit_answers_429_with_retry_after(hub, people):
    app, raw, login = hub
    headers = login("busy-site", "system/Patient.rs")
    app.state.rate_limiter.rate, app.state.rate_limiter.burst = 1.0, 3
    statuses = [raw.get("/fhir/Patient", headers=headers).status_code for _ in range(6)]
    assert statuses[:3] == [200, 200, 200] and 429 in statuses[3:]
    r = raw.get("/fhir/Patient", headers=headers)
    assert r.status_code == 429 and int(r.headers["retry-after"]) >= 1


def test_tokens_and_codes_never_reach_the_logs(hub, sms, people, caplog):
    import logging

    _app, raw, login = hub
    caplog.set_level(logging.DEBUG)
    headers = login("log-watcher", "system/Patient.rs")
    token = headers["authorization"].split()[1]
    raw.get("/fhir/Patient", headers=headers)
    raw.get("/fhir/Patient", headers={"authorization": f"Bearer {token}x"})
    # Even code that carelessly logs a header or a form is masked.
    logging.getLogger("uvicorn.error").warning("request headers: authorization=Bearer %s", token)
    logging.getLogger("vaxhub.sms").info("form: client_assertion=%s&grant_type=client_credentials", token)
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert "[redacted" in logged
    assert token not in logged


def test_citizen_sees_own_verification_status_only(hub, an_token, people):
    _app, raw, _login = hub
    mine = raw.get(f"/ops/verification/patients/{people['an']}", headers=an_token)
    assert mine.status_code == 200 and mine.json()["status"] == "pending"
    assert raw.get(f"/ops/verification/patients/{people['binh']}", headers=an_token).status_code == 404
