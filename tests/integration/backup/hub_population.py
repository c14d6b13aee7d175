"""A hub filled through its real HTTP API with every kind of record a backup must
bring back, and a table-by-table snapshot of its database to compare with."""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from fastapi.testclient import TestClient
from sqlalchemy import Engine, MetaData, select

from tests.builders import immunization, patient
from vaxhub.adapters.fakes import InMemoryPopulationRegistry
from vaxhub.adapters.registry_data import SAMPLE_CITIZENS, Citizen, SyntheticRegistry
from vaxhub.hub.mpi.worker import LinkWorker
from vaxhub.hub.verification.circuit import CircuitBreaker
from vaxhub.hub.verification.worker import REGISTRY_NAME, VerificationWorker, WorkerOptions

AN, HOA = SAMPLE_CITIZENS[0], SAMPLE_CITIZENS[1]


@dataclass
class Populated:
    """What was stored, to look for after the restore."""

    an: str = ""
    an_again: str = ""  # An as a second site recorded him: linked to the same person
    hoa: str = ""
    updated_dose: str = ""  # three versions
    deleted_dose: str = ""
    uvci: str = ""
    hc1: str = ""
    reads: dict[str, dict] = field(default_factory=dict)  # path -> body served before the backup


def _store_person(raw: TestClient, headers: dict, citizen: Citizen, doses: list[str], site: str, *, without_cccd: bool = False) -> tuple[str, list[str]]:
    family, *given = citizen.full_name.split(" ")
    record = patient(citizen.cccd, family, tuple(given), gender=citizen.sex, birth_date=citizen.birth_date)
    if without_cccd:  # the site did not note the CCCD: only its own number
        record["identifier"] = [{"system": f"https://vaxhub.vn/fhir/sid/site/{site}/patient", "value": f"{site}-{citizen.cccd[-6:]}"}]
    r = raw.post("/fhir/Patient", json=record, headers=headers)
    assert r.status_code == 201, r.text
    pid = r.json()["id"]
    dose_ids = []
    for n, date in enumerate(doses, start=1):
        imm = immunization(f"Patient/{pid}", f"{site}-{citizen.cccd}-{n}", cvx="208", date=date, lot=f"LOT{n}")
        imm["identifier"][0]["system"] = f"https://vaxhub.vn/fhir/sid/site/{site}/immunization"
        r = raw.post("/fhir/Immunization", json=imm, headers=headers)
        assert r.status_code == 201, r.text
        dose_ids.append(r.json()["id"])
    return pid, dose_ids


def populate(app, raw: TestClient, login) -> Populated:  # noqa: ANN001
    done = Populated()
    site = login("site-79001", "system/Patient.cruds system/Immunization.cruds", site="79001")
    other_site = login("site-79002", "system/Patient.cruds system/Immunization.cruds", site="79002")
    done.an, _ = _store_person(raw, site, AN, ["2021-08-02T09:00:00+07:00", "2021-08-23T10:30:00+07:00"], "79001")
    done.hoa, (first, second) = _store_person(raw, site, HOA, ["2021-09-01T08:00:00+07:00", "2021-09-29T08:00:00+07:00"], "79001")
    done.an_again, _ = _store_person(raw, other_site, AN, [], "79002", without_cccd=True)

    # Two updates: versions 1, 2 and 3 of one dose.
    dose = raw.get(f"/fhir/Immunization/{first}", headers=site).json()
    for version, lot in ((1, "LOT1-FIXED"), (2, "LOT1-FIXED-AGAIN")):
        dose["lotNumber"] = lot
        r = raw.put(f"/fhir/Immunization/{first}", json=dose, headers={**site, "If-Match": f'W/"{version}"'})
        assert r.status_code == 200, r.text
        dose = r.json()
    assert dose["meta"]["versionId"] == "3"
    done.updated_dose = first
    assert raw.delete(f"/fhir/Immunization/{second}", headers=site).status_code in (200, 204)
    done.deleted_dose = second

    # Identity checks (verification jobs and results), then the links to golden records.
    registry = InMemoryPopulationRegistry(SyntheticRegistry(SAMPLE_CITIZENS))
    engine = app.state.engine
    VerificationWorker(
        engine, registry, options=WorkerOptions(concurrency=2, poll_seconds=0.01),
        breaker=CircuitBreaker(engine, REGISTRY_NAME, worker="backup-test"), rng=random.Random(1), name="backup-test",
    ).run(until_idle=True)
    LinkWorker(app.state.mpi, backoff_seconds=0).run(until_idle=True)

    r = raw.post(f"/certificates/patients/{done.an}", headers=site)
    assert r.status_code == 201, r.text
    done.uvci = r.json()["uvci"]
    r = raw.get(f"/certificates/{done.uvci}/dcc.txt", headers=site)
    assert r.status_code == 200, r.text
    done.hc1 = r.text

    for path in (f"/fhir/Patient/{done.an}", f"/fhir/Immunization/{first}/_history/1", f"/fhir/Immunization/{first}/_history/3",
                 f"/fhir/Immunization/{first}/_history"):
        r = raw.get(path, headers=site)
        assert r.status_code == 200, r.text
        done.reads[path] = r.json()
    return done


def snapshot(engine: Engine) -> dict[str, list[tuple]]:
    """Every row of every table, in a stable order."""
    tables = MetaData()
    tables.reflect(engine)
    with engine.connect() as conn:
        return {name: sorted((tuple(row) for row in conn.execute(select(table))), key=repr) for name, table in tables.tables.items()}
