"""Logins are security events in the audit trail: each token issued and each
login refused is one AuditEvent (DICOM 110114 User Authentication, subtype
110122 Login), read back through the AuditEvent API, with no secret in it."""

from __future__ import annotations

import json
import re

from tests.auth_helpers import ClientKey, assertion, token_form
from tests.builders import patient
from tests.conftest import TOKEN_URL
from tests.integration.observability.conftest import login, register, scrape, value
from tests.web_pages import csrf_token

DCM = "http://dicom.nema.org/resources/ontology/DCM"


def _logins(client, auditor, **params) -> list[dict]:
    r = client.get("/fhir/AuditEvent", params={"subtype": "login", **params}, headers=auditor)
    assert r.status_code == 200, r.text
    return [e["resource"] for e in r.json().get("entry", [])]


def _agent(event: dict) -> str | None:
    who = event["agent"][0]["who"]
    return who.get("identifier", {}).get("value") or who.get("reference")


def test_a_token_issued_and_refused_logins_are_audited(hub_client):
    auditor = login(hub_client, "moh-auditor", "system/AuditEvent.rs", kind="operator", roles="auditor")
    key = register(hub_client, "site-79001", "system/Patient.rs", site="79001")
    issued = hub_client.post("/auth/token", data=token_form(assertion("site-79001", key, TOKEN_URL)))
    assert issued.status_code == 200
    forged = assertion("site-79001", ClientKey.generate(), TOKEN_URL)  # signed with a key nobody registered
    unknown = assertion("no-such-client", ClientKey.generate(), TOKEN_URL)
    assert hub_client.post("/auth/token", data=token_form(forged)).status_code == 401
    assert hub_client.post("/auth/token", data=token_form(unknown)).status_code == 401
    assert hub_client.post("/auth/token", data={"grant_type": "client_credentials"}).status_code == 400

    events = _logins(hub_client, auditor, agent="site-79001")
    assert [e["outcome"] for e in events] == ["8", "0"]  # newest first: the forged attempt, then the token issued
    success, refused = events[1], events[0]
    assert success["type"] == {"system": DCM, "code": "110114", "display": "User Authentication"}
    assert success["subtype"] == [{"system": DCM, "code": "110122", "display": "Login"}]
    assert success["action"] == "E" and _agent(success) == "site-79001"
    assert "scopes system/Patient.rs" in success["outcomeDesc"]
    assert "invalid_client" in refused["outcomeDesc"]
    assert refused["agent"][0]["network"]["address"] == "testclient"
    assert [e["outcome"] for e in _logins(hub_client, auditor, agent="no-such-client")] == ["8"]
    # The same events by the DICOM code a FHIR client searches with.
    by_code = hub_client.get("/fhir/AuditEvent", params={"subtype": f"{DCM}|110122", "agent": "site-79001"}, headers=auditor)
    assert [e["resource"]["id"] for e in by_code.json()["entry"]] == [e["id"] for e in events]
    malformed = [e for e in _logins(hub_client, auditor) if e["outcome"] == "4"]
    assert len(malformed) == 1 and "invalid_request" in malformed[0]["outcomeDesc"]

    stored = json.dumps(_logins(hub_client, auditor))
    for secret in (forged, unknown, issued.json()["access_token"]):
        assert secret not in stored and secret.split(".")[2] not in stored


def test_one_time_code_logins_are_audited_without_the_code(hub_client, sms):
    site = login(hub_client, "site-79001", "system/Patient.cruds", site="79001")
    pid = hub_client.post("/fhir/Patient", json=patient("079090012345", phone="0912345678"), headers=site).json()["id"]
    auditor = login(hub_client, "moh-auditor", "system/AuditEvent.rs", kind="operator", roles="auditor")
    before = scrape(hub_client)
    challenge = hub_client.post("/auth/otp/start", json={"cccd": "079090012345", "phone": "0912345678"}).json()["challenge"]
    code = re.search(r"\d{6}", sms.last_to("+84912345678")).group(0)
    wrong = "000000" if code != "000000" else "111111"
    assert hub_client.post("/auth/otp/verify", json={"challenge": challenge, "code": wrong}).status_code == 400
    assert hub_client.post("/auth/otp/verify", json={"challenge": challenge, "code": code}).status_code == 200

    otp_events = [e for e in _logins(hub_client, auditor) if e["outcomeDesc"].startswith("otp:")]
    assert [e["outcome"] for e in otp_events] == ["0", "8"]
    # The citizen's own trail shows the login.
    assert [e["outcome"] for e in _logins(hub_client, auditor, patient=pid)] == ["0"]
    assert _agent(otp_events[0]) == f"Patient/{pid}"
    assert code not in json.dumps(otp_events)
    after = scrape(hub_client)
    assert value(after, "vaxhub_logins_total", method="otp", outcome="success") - value(before, "vaxhub_logins_total", method="otp", outcome="success") == 1
    assert value(after, "vaxhub_logins_total", method="otp", outcome="refused") - value(before, "vaxhub_logins_total", method="otp", outcome="refused") == 1


def test_portal_logins_are_audited(hub_client, sms):
    from fastapi.testclient import TestClient

    site = login(hub_client, "site-79001", "system/Patient.cruds", site="79001")
    pid = hub_client.post("/fhir/Patient", json=patient("079090012345", birth_date="1990-05-04", phone="0912345678"), headers=site).json()["id"]
    auditor = login(hub_client, "moh-auditor", "system/AuditEvent.rs", kind="operator", roles="auditor")
    with TestClient(hub_client.app) as browser:
        form = csrf_token(browser.get("/portal").text)
        looked = browser.post("/portal/lookup", data={"csrf": form, "name": "Nguyễn Văn An", "birth_date": "1990-05-04", "phone": "0912345678"},
                              follow_redirects=False)
        assert looked.status_code == 303
        code = re.search(r"\d{6}", sms.last_to("+84912345678")).group(0)
        page = browser.get("/portal/code")
        wrong = "000000" if code != "000000" else "111111"
        assert browser.post("/portal/code", data={"csrf": csrf_token(page.text), "code": wrong}).status_code == 401
        page = browser.get("/portal/code")
        assert browser.post("/portal/code", data={"csrf": csrf_token(page.text), "code": code}, follow_redirects=False).status_code == 303

    portal = [e for e in _logins(hub_client, auditor) if e["outcomeDesc"].startswith("portal-otp:")]
    assert [e["outcome"] for e in portal] == ["0", "8"]
    assert _agent(portal[0]) == f"Patient/{pid}"
    assert code not in json.dumps(portal)
