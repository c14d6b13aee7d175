"""Records are linked again when they change or when the registry answers;
golden Patients belong to the index; everything the index does is audited."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from sqlalchemy import select

from tests.integration.identity.identity_builders import HUONG, RECORD, dose, link_row, of, person_of
from vaxhub.hub.mpi.enqueue import LinkEnqueuer
from vaxhub.hub.mpi.golden import MPI_TAG_SYSTEM, PERSON_SYSTEM
from vaxhub.hub.mpi.worker import LinkWorker, watch_verifications


def created(response) -> str:
    assert response.status_code == 201, response.text
    return response.json()["id"]


def queued(engine) -> list[str]:
    with engine.connect() as conn:
        return list(conn.execute(select(RECORD.c.record_id).where(RECORD.c.state == "queued")).scalars())


def test_an_update_relinks_the_record_in_and_out_of_a_person(site, link_all, engine, client):
    hanoi, hcm = site("79001"), site("79002")
    a = created(hanoi.post("/fhir/Patient", json=of(HUONG, phone="0912345678", number="a")))
    b = created(hcm.post("/fhir/Patient", json=of(HUONG, name="Nguyen Thi Lan", cccd=None, phone="0912345678", site="79002", number="b")))
    link_all()
    assert person_of(engine, b) != person_of(engine, a)

    record = hcm.get(f"/fhir/Patient/{b}").json()
    record["name"] = [{"use": "official", "family": "Nguyen", "given": ["Thi", "Thu", "Huong"]}]
    assert hcm.put(f"/fhir/Patient/{b}", json=record).status_code == 200
    assert queued(engine) == [b]  # queued with the site's write, in its transaction
    link_all()
    person = person_of(engine, a)
    assert person_of(engine, b) == person
    assert len(client.get(f"/fhir/Patient/{person}").json()["link"]) == 2

    # The site corrects the birth date to another woman's: she leaves the person.
    record = hcm.get(f"/fhir/Patient/{b}").json()
    assert hcm.put(f"/fhir/Patient/{b}", json={**record, "birthDate": "1971-11-30"}).status_code == 200
    link_all()
    assert person_of(engine, b) not in (None, person)
    assert [l["other"]["reference"] for l in client.get(f"/fhir/Patient/{person}").json()["link"]] == [f"Patient/{a}"]


def test_a_change_matching_does_not_read_does_not_queue(site, link_all, engine):
    hanoi = site("79001")
    a = created(hanoi.post("/fhir/Patient", json=of(HUONG, phone="0912345678", number="a")))
    link_all()
    record = hanoi.get(f"/fhir/Patient/{a}").json()
    assert hanoi.put(f"/fhir/Patient/{a}", json={**record, "maritalStatus": {"text": "married"}}).status_code == 200
    assert queued(engine) == []


def test_a_registry_answer_arriving_later_relinks_the_record(site, link_all, verify_all, engine):
    hanoi, rural = site("79001"), site("79004")
    a = created(hanoi.post("/fhir/Patient", json=of(HUONG, phone="0912345678", number="a")))
    d = created(rural.post("/fhir/Patient", json=of(HUONG, cccd=None, cmnd=HUONG.cmnd, birth="1990", site="79004", number="d",
                                                      address="Thôn 3")))
    link_all()
    assert person_of(engine, d) != person_of(engine, a)
    verify_all()  # the registry verifies both: d's CMND belongs to her CCCD
    link_all()
    assert person_of(engine, d) == person_of(engine, a)
    # Whichever of the two is linked first, the other joins it deterministically.
    assert {link_row(engine, r)["verified_cccd"] for r in (a, d)} == {HUONG.cccd}
    assert "registry" in {link_row(engine, r)["method"] for r in (a, d)} and link_row(engine, d)["grade"] == "certain"
    link_all()
    assert queued(engine) == []  # the answer is acted on once


def test_a_deleted_site_record_leaves_its_person(site, link_all, engine, client, ops):
    hanoi, hcm = site("79001"), site("79002")
    a = created(hanoi.post("/fhir/Patient", json=of(HUONG, phone="0912345678", number="a")))
    b = created(hcm.post("/fhir/Patient", json=of(HUONG, name="Nguyen Thi Thu Huong", cccd=None, phone="0912345678", site="79002", number="b")))
    link_all()
    person = person_of(engine, a)
    assert hcm.delete(f"/fhir/Patient/{b}").status_code == 204
    link_all()
    assert person_of(engine, b) is None
    assert [l["other"]["reference"] for l in client.get(f"/fhir/Patient/{person}").json()["link"]] == [f"Patient/{a}"]
    events = ops.get(f"/ops/mpi/persons/{person}/history").json()["events"]
    assert events[-1]["action"] == "remove" and events[-1]["record"] == b


def test_golden_patients_cannot_be_written_through_the_fhir_api(client, site, link_all, engine):
    hanoi = site("79001")
    a = created(hanoi.post("/fhir/Patient", json=of(HUONG, phone="0912345678", number="a")))
    link_all()
    person = person_of(engine, a)
    golden = client.get(f"/fhir/Patient/{person}").json()
    assert client.put(f"/fhir/Patient/{person}", json={**golden, "birthDate": "1991"}).status_code == 403
    assert client.delete(f"/fhir/Patient/{person}").status_code == 403
    forged = of(HUONG, cccd=None, number="forged")
    forged["meta"] = {"tag": [{"system": MPI_TAG_SYSTEM, "code": "golden"}]}
    assert client.post("/fhir/Patient", json=forged).status_code == 403
    claiming = of(HUONG, cccd=None, number="claiming")
    claiming["identifier"].append({"system": PERSON_SYSTEM, "value": "someone"})
    assert client.post("/fhir/Patient", json=claiming).status_code == 403
    assert client.get(f"/fhir/Patient/{person}").json() == golden


def test_the_index_work_is_audited(hub, site, link_all, engine, ops):
    app, _raw, _login = hub
    hanoi = site("79001")
    a = created(hanoi.post("/fhir/Patient", json=of(HUONG, phone="0912345678", number="a")))
    created(hanoi.post("/fhir/Immunization", json=dose(a, "a1")))
    link_all()
    person = person_of(engine, a)
    linker_events, _ = app.state.audit.search(client="mpi-linker")
    assert any(f"Patient/{person}" in str(e.get("entity")) for e in linker_events)
    before = app.state.audit.count()
    ops.get(f"/ops/mpi/persons/{person}")
    ops.get("/ops/mpi/reviews")
    assert app.state.audit.count() == before + 2
    [read] = app.state.audit.search(client="moh-mpi-desk", patient=a)[0][:1]
    assert read["subtype"][0]["code"] == "read"
    assert app.state.audit.verify().ok


def test_a_record_waiting_for_its_registry_answer_is_linked_once(hub, site, mpi, verify_all, population_registry, engine):
    app, _raw, _login = hub
    (enqueuer,) = [listener for listener in app.state.store.listeners if isinstance(listener, LinkEnqueuer)]
    enqueuer.verification_wait = timedelta(seconds=600)
    hanoi = site("79001")
    a = created(hanoi.post("/fhir/Patient", json=of(HUONG, phone="0912345678", number="a")))
    assert link_row(engine, a)["queued_at"] > datetime.now(timezone.utc).replace(tzinfo=None) + timedelta(seconds=500)

    mpi.registry = population_registry
    worker = LinkWorker(mpi, backoff_seconds=0)
    assert worker.run_once() == 0 and person_of(engine, a) is None  # held for the registry's answer
    verify_all()
    worker.run(until_idle=True)
    assert worker.linked == 1  # linked once, on the verified CCCD: no link before the answer and again after it
    assert link_row(engine, a)["verified_cccd"] == HUONG.cccd and person_of(engine, a) is not None

    # A change the registry is not asked about (the phone) is linked at once.
    record = hanoi.get(f"/fhir/Patient/{a}").json()
    record["telecom"] = [{"system": "phone", "value": "0987654321"}]
    assert hanoi.put(f"/fhir/Patient/{a}", json=record).status_code == 200
    assert queued(engine) == [a] and link_row(engine, a)["queued_at"] <= datetime.now(timezone.utc).replace(tzinfo=None)
    mpi.registry = None


def test_a_worker_checks_each_registry_answer_once(site, link_all, verify_all, population_registry, engine):
    hanoi = site("79001")
    a = created(hanoi.post("/fhir/Patient", json=of(HUONG, phone="0912345678", number="a")))
    link_all()
    verify_all()
    seen: set[int] = set()
    assert watch_verifications(engine, seen=seen) == 1 and len(seen) == 1  # a's answer changes its link: queued again
    assert queued(engine) == [a]
    link_all(population_registry)
    assert watch_verifications(engine, seen=seen) == 0 and len(seen) == 1  # read again in the look-back, not acted on

    rural = site("79004")
    d = created(rural.post("/fhir/Patient", json=of(HUONG, cccd=None, cmnd=HUONG.cmnd, birth="1990", site="79004", number="d")))
    link_all()
    verify_all()
    assert watch_verifications(engine, seen=seen) == 1 and queued(engine) == [d]  # a new answer is still seen
