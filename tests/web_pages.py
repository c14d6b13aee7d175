"""Helpers of the web page tests: people stored through the API as a site
sends them, their identities checked by the real verification worker, and a
browser-like client that signs in to the portal and the dashboard."""

from __future__ import annotations

import random
import re
from dataclasses import dataclass
from typing import Any

from tests.builders import immunization, patient
from vaxhub.adapters.fakes import InMemoryPopulationRegistry
from vaxhub.adapters.registry_data import SAMPLE_CITIZENS, Citizen, SyntheticRegistry
from vaxhub.hub.verification.circuit import CircuitBreaker
from vaxhub.hub.verification.worker import REGISTRY_NAME, VerificationWorker, WorkerOptions

AN, HOA, HUONG, DUC = SAMPLE_CITIZENS
SITE = "79001"
CSRF = re.compile(r'name="csrf" value="([0-9a-f]+)"')
DOSES = [("208", "2021-08-02T09:00:00+07:00"), ("208", "2021-08-23T10:30:00+07:00")]


def csrf_token(html: str) -> str:
    match = CSRF.search(html)
    assert match, "the page has no CSRF field"
    return match.group(1)


def national(phone_e164: str) -> str:
    return "0" + phone_e164[3:]


@dataclass
class WebHub:
    app: Any
    raw: Any  # a TestClient on the app
    login: Any
    site: dict[str, str]

    def person(
        self, citizen: Citizen, doses: list[tuple[str, str]], *, phone: str | None = None, province: str | None = None,
        birth_date: str | None = None, site_org: str | None = None,
    ) -> str:
        """Store `citizen` (as the site records them) and their doses [(CVX, date)]; returns the Patient id."""
        family, *given = citizen.full_name.split(" ")
        res = patient(citizen.cccd, family, tuple(given), gender=citizen.sex, birth_date=birth_date or citizen.birth_date, phone=phone)
        if province:
            res["address"] = [{"use": "home", "state": province, "country": "VN"}]
        if site_org:
            res["managingOrganization"] = {"reference": site_org}
        r = self.raw.post("/fhir/Patient", json=res, headers=self.site)
        assert r.status_code == 201, r.text
        pid = r.json()["id"]
        for n, (code, date) in enumerate(doses, start=1):
            imm = immunization(f"Patient/{pid}", f"{citizen.cccd}-{n}", cvx=code, date=date, lot=f"LOT{n}",
                               performer=site_org)
            imm["location"] = {"display": "Trạm y tế phường Láng Hạ"}
            r = self.raw.post("/fhir/Immunization", json=imm, headers=self.site)
            assert r.status_code == 201, r.text
        return pid

    def site_organization(self, code: str = SITE, name: str = "Trạm y tế phường Bến Nghé") -> str:
        org = {"resourceType": "Organization", "identifier": [{"system": "https://vaxhub.vn/fhir/sid/site", "value": code}], "name": name}
        r = self.raw.post("/fhir/Organization", json=org, headers=self.site)
        assert r.status_code == 201, r.text
        return f"Organization/{r.json()['id']}"

    def verify_identities(self) -> int:
        """Drain the verification queue with the real worker against the sample registry."""
        engine = self.app.state.engine
        registry = InMemoryPopulationRegistry(SyntheticRegistry(SAMPLE_CITIZENS))
        worker = VerificationWorker(
            engine, registry, options=WorkerOptions(concurrency=2, poll_seconds=0.01),
            breaker=CircuitBreaker(engine, REGISTRY_NAME, worker="test"), rng=random.Random(1), name="test",
        )
        return worker.run(until_idle=True)

    def operator_token(self, *, site: str | None = None, client_id: str = "moh-dashboard") -> str:
        headers = self.login(client_id, "system/Patient.rs", kind="operator", roles="verification", site=site)
        return headers["authorization"].split(" ", 1)[1]


def portal_sign_in(client: Any, sms: Any, name: str, birth_date: str, phone: str) -> Any:
    """Look up, receive the code, sign in; returns the record page response."""
    token = csrf_token(client.get("/portal").text)
    looked = client.post("/portal/lookup", data={"csrf": token, "name": name, "birth_date": birth_date, "phone": phone}, follow_redirects=False)
    assert looked.status_code == 303 and looked.headers["location"] == "/portal/code", looked.text
    code = re.search(r"\d{6}", sms.last_to(f"+84{phone[1:]}")).group(0)
    page = client.get("/portal/code")
    signed = client.post("/portal/code", data={"csrf": csrf_token(page.text), "code": code}, follow_redirects=False)
    assert signed.status_code == 303 and signed.headers["location"] == "/portal/record", signed.text
    return client.get("/portal/record")


def dashboard_sign_in(client: Any, token: str) -> Any:
    form = csrf_token(client.get("/dashboard/sign-in").text)
    signed = client.post("/dashboard/sign-in", data={"csrf": form, "token": token}, follow_redirects=False)
    assert signed.status_code == 303, signed.text
    return signed
