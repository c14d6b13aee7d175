"""Fixtures of the health-book tests: two sites writing their own doses, and
citizens logged in through the one-time-code flow."""

from __future__ import annotations

import re
from datetime import date, timedelta

import pytest
from fastapi.testclient import TestClient

from tests.builders import immunization, patient

SITE_SCOPES = "system/Patient.cruds system/Immunization.cruds system/AdverseEvent.rs"
COMIRNATY, JANSSEN = "208", "212"


def site_imm_system(site: str) -> str:
    return f"https://vaxhub.vn/fhir/sid/site/{site}/immunization"


@pytest.fixture
def sites(hub):
    """TestClients for site 79001 (Hồ Chí Minh) and site 01001 (Hà Nội)."""
    app, _raw, login = hub
    clients = {}
    for code in ("79001", "01001"):
        clients[code] = TestClient(app, headers=login(f"site-{code}", SITE_SCOPES, site=code))
    yield clients
    for c in clients.values():
        c.close()


def create(client: TestClient, resource: dict) -> str:
    r = client.post(f"/fhir/{resource['resourceType']}", json=resource)
    assert r.status_code == 201, r.text
    return r.json()["id"]


def person(client: TestClient, cccd: str, phone: str, *, state: str, given=("Văn", "An"), family="Nguyễn") -> str:
    res = patient(cccd, family, given, phone=phone)
    res["address"] = [{"state": state, "country": "VN"}]
    return create(client, res)


def dose(client: TestClient, site: str, patient_id: str, number: str, *, cvx: str, days_ago: int, today: date) -> str:
    res = immunization(f"Patient/{patient_id}", number, cvx=cvx, date=(today - timedelta(days=days_ago)).isoformat())
    res["identifier"][0]["system"] = site_imm_system(site)
    return create(client, res)


def citizen_login(raw, sms, cccd: str, phone: str) -> dict[str, str]:
    started = raw.post("/auth/otp/start", json={"cccd": cccd, "phone": phone})
    assert started.status_code == 202, started.text
    code = re.search(r"\d{6}", sms.last_to(f"+84{phone[1:]}")).group(0)
    verified = raw.post("/auth/otp/verify", json={"challenge": started.json()["challenge"], "code": code})
    assert verified.status_code == 200, verified.text
    return {"authorization": f"Bearer {verified.json()['access_token']}", "content-type": "application/fhir+json"}
