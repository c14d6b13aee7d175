"""Fixtures of the certificate tests: people with doses stored through the
API, their identities checked by the real verification worker against an
in-memory population registry, and callers of every kind."""

from __future__ import annotations

import random
import re
from dataclasses import dataclass

import pytest
from fastapi.testclient import TestClient

from tests.builders import immunization, patient
from vaxhub.adapters.fakes import InMemoryPopulationRegistry
from vaxhub.adapters.registry_data import SAMPLE_CITIZENS, Citizen, SyntheticRegistry
from vaxhub.hub.verification.circuit import CircuitBreaker
from vaxhub.hub.verification.worker import REGISTRY_NAME, VerificationWorker, WorkerOptions

AN, HOA, HUONG, DUC = SAMPLE_CITIZENS
SITE = "79001"


@dataclass
class Hub:
    app: object
    raw: TestClient
    login: object
    site: dict[str, str]

    def person(self, citizen: Citizen, doses: list[tuple[str, str]], *, phone: str | None = None, status: str = "completed") -> str:
        """Store `citizen` (as the site records them) and their doses [(CVX or our code, date)]; returns the Patient id."""
        family, *given = citizen.full_name.split(" ")
        res = patient(citizen.cccd, family, tuple(given), gender=citizen.sex, birth_date=citizen.birth_date, phone=phone)
        r = self.raw.post("/fhir/Patient", json=res, headers=self.site)
        assert r.status_code == 201, r.text
        pid = r.json()["id"]
        for n, (code, date) in enumerate(doses, start=1):
            imm = immunization(f"Patient/{pid}", f"{citizen.cccd}-{n}", cvx=code, date=date, lot=f"LOT{n}", status=status)
            if not code.isdigit():  # a vaccine without a CVX code: our own code system
                imm["vaccineCode"] = {"coding": [{"system": "https://vaxhub.vn/fhir/CodeSystem/vaccine", "code": code}]}
            imm["location"] = {"display": "Trạm y tế phường Láng Hạ"}
            r = self.raw.post("/fhir/Immunization", json=imm, headers=self.site)
            assert r.status_code == 201, r.text
        return pid

    def verify_identities(self) -> int:
        """Drain the verification queue with the real worker, against the sample registry."""
        engine = self.app.state.engine
        registry = InMemoryPopulationRegistry(SyntheticRegistry(SAMPLE_CITIZENS))
        worker = VerificationWorker(
            engine, registry, options=WorkerOptions(concurrency=2, poll_seconds=0.01),
            breaker=CircuitBreaker(engine, REGISTRY_NAME, worker="test"), rng=random.Random(1), name="test",
        )
        return worker.run(until_idle=True)

    def operator(self, roles: str = "certificates") -> dict[str, str]:
        return self.login("moh-certificates", "system/Patient.rs", kind="operator", roles=roles)

    def verifier(self) -> dict[str, str]:
        return self.login("border-checker", "system/Patient.rs", kind="verifier")

    def citizen(self, sms, cccd: str, phone: str) -> dict[str, str]:
        started = self.raw.post("/auth/otp/start", json={"cccd": cccd, "phone": phone})
        assert started.status_code == 202, started.text
        code = re.search(r"\d{6}", sms.last_to(f"+84{phone[1:]}")).group(0)
        verified = self.raw.post("/auth/otp/verify", json={"challenge": started.json()["challenge"], "code": code})
        assert verified.status_code == 200, verified.text
        return {"authorization": f"Bearer {verified.json()['access_token']}"}

    def issue(self, pid: str, headers: dict[str, str] | None = None, **body) -> dict:
        r = self.raw.post(f"/certificates/patients/{pid}", json=body or None, headers=headers or self.site)
        assert r.status_code == 201, r.text
        return r.json()

    def download(self, uvci: str, name: str, headers: dict[str, str] | None = None):
        r = self.raw.get(f"/certificates/{uvci}/{name}", headers=headers or self.site)
        assert r.status_code == 200, (name, r.status_code, r.text[:300])
        return r


@pytest.fixture
def certs(hub) -> Hub:
    app, raw, login = hub
    site = login(f"site-{SITE}", "system/Patient.cruds system/Immunization.cruds", site=SITE)
    return Hub(app, raw, login, site)


@pytest.fixture
def an(certs) -> str:
    """Nguyễn Văn An, two doses of Comirnaty, identity verified."""
    pid = certs.person(AN, [("208", "2021-08-02T09:00:00+07:00"), ("208", "2021-08-23T10:30:00+07:00")], phone="0912345678")
    certs.verify_identities()
    return pid
