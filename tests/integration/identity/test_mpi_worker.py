"""The link worker links in batches: workers split the queue, a failing record
costs only itself, and each batch is one AuditEvent naming every Patient."""

from __future__ import annotations

import threading
from collections import Counter

import pytest
from sqlalchemy import func, select

from tests.integration.identity.identity_builders import RECORD, person_of, site_patient
from vaxhub.hub.mpi.frequencies import TERM, TOTAL
from vaxhub.hub.mpi.golden import PERSON_SYSTEM
from vaxhub.hub.mpi.linker import Linker
from vaxhub.hub.mpi.worker import LinkWorker, claim_queued
from vaxhub.hub.storage.mpi_tables import MpiEventRow, MpiPersonRow
from vaxhub.hub.storage.store import utcnow

EVENT = MpiEventRow.__table__
PERSON = MpiPersonRow.__table__
GIVEN = ["An", "Bình", "Chi", "Dũng", "Giang", "Hải", "Khoa", "Linh", "Minh", "Ngọc", "Phúc", "Quân", "Sơn", "Tâm", "Uyên", "Vy"]


def created(response) -> str:
    assert response.status_code == 201, response.text
    return response.json()["id"]


def write_people(site, people: int, *, copies: int = 2, first_copy: int = 0) -> dict[str, int]:
    """`people` humans, each written `copies` times by different sites, one
    after another in the queue; returns record id → human."""
    hanoi, hue = site("79001"), site("79003")
    records = {}
    for n in range(people):
        name = f"Lê {'Văn' if n % 2 else 'Thị'} {GIVEN[n % len(GIVEN)]} {GIVEN[(n * 7 + 3) % len(GIVEN)]}"
        birth = f"19{60 + n % 40}-{1 + n % 12:02d}-{1 + n % 28:02d}"
        for copy in range(first_copy, first_copy + copies):
            client, code = (hanoi, "79001") if copy % 2 == 0 else (hue, "79003")
            # The hub keeps a CCCD on one site Patient: the other copies agree on name, birth date and phone.
            patient = site_patient(name, birth=birth, gender="male" if n % 2 else "female", cccd=None if copy else f"0381{n % 2}0{n:06d}",
                                   phone=f"09{n:08d}", site=code, number=f"{code}-{n}-{copy}")
            records[created(client.post("/fhir/Patient", json=patient))] = n
    return records


def link_counts(engine) -> Counter:
    """How many times each record was placed in a person by the linker."""
    with engine.connect() as conn:
        return Counter(conn.execute(select(EVENT.c.record_id).where(EVENT.c.action.in_(("auto-link", "new-person")))).scalars())


def test_two_workers_split_the_queue_and_link_each_record_once_into_one_person(hub, site, engine, mpi, backend):
    if backend != "postgresql":
        pytest.skip("two worker processes share a PostgreSQL database; SQLite has one writer at a time")
    records = write_people(site, 24)
    # Batches of one: the two records of a human are claimed by the two workers at the same moment.
    workers = [LinkWorker(mpi, batch=1, backoff_seconds=0), LinkWorker(mpi, batch=1, backoff_seconds=0)]
    start = threading.Barrier(2)

    def drain(worker: LinkWorker) -> None:
        start.wait()
        worker.run(until_idle=True, poll_seconds=0.01)

    threads = [threading.Thread(target=drain, args=(w,)) for w in workers]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert sum(w.linked for w in workers) == len(records)
    assert all(w.failed == 0 for w in workers)

    assert link_counts(engine) == Counter(dict.fromkeys(records, 1))  # no record linked twice
    with engine.connect() as conn:
        rows = conn.execute(select(RECORD.c.record_id, RECORD.c.person_id, RECORD.c.state).where(RECORD.c.record_id.in_(list(records)))).all()
        active = conn.execute(select(func.count()).select_from(PERSON).where(PERSON.c.state == "active")).scalar_one()
        stale = conn.execute(select(func.count()).select_from(PERSON).where(PERSON.c.golden_stale.is_(True))).scalar_one()
    assert {r.state for r in rows} == {"linked"}
    person_of = {r.record_id: r.person_id for r in rows}
    humans_of_person: dict[str, set[int]] = {}
    for record_id, human in records.items():
        humans_of_person.setdefault(person_of[record_id], set()).add(human)
    assert all(len(h) == 1 for h in humans_of_person.values())  # no two humans in one person
    assert len(humans_of_person) == 24 == active  # and one person per human
    assert stale == 0


def test_a_running_worker_rebuilds_goldens_on_its_own_thread_while_it_links(hub, site, engine, mpi):
    records = write_people(site, 10)
    worker = LinkWorker(mpi, batch=4, backoff_seconds=0)
    original = worker.refresh_stale
    rebuilt_on: set[str] = set()

    def refresh_stale(limit: int = 50) -> int:
        rebuilt_on.add(threading.current_thread().name)
        return original(limit)

    worker.refresh_stale = refresh_stale  # type: ignore[method-assign]
    stop = threading.Event()
    running = threading.Thread(target=worker.run, args=(stop,), kwargs={"poll_seconds": 0.02}, name="linking")
    running.start()
    try:
        for _ in range(600):
            with engine.connect() as conn:
                queued = conn.execute(select(func.count()).select_from(RECORD).where(RECORD.c.state != "linked")).scalar_one()
                stale = conn.execute(select(func.count()).select_from(PERSON).where(PERSON.c.golden_stale.is_(True))).scalar_one()
            if queued == 0 and stale == 0 and worker.linked == len(records):
                break
            stop.wait(0.05)
    finally:
        stop.set()
        running.join(30)
    assert not running.is_alive()
    assert worker.linked == len(records) and queued == 0 and stale == 0
    assert rebuilt_on == {"mpi-goldens"}  # never on the linking thread
    with engine.connect() as conn:
        persons = set(conn.execute(select(RECORD.c.person_id).where(RECORD.c.record_id.in_(list(records)))).scalars())
    assert len(persons) == 10
    for person in persons:  # each person's golden Patient is stored
        assert mpi.store.read("Patient", person).content["identifier"][0]["system"] == PERSON_SYSTEM


def test_a_claimed_batch_is_skipped_by_another_worker(site, engine, backend):
    if backend != "postgresql":
        pytest.skip("SKIP LOCKED is PostgreSQL's")
    records = list(write_people(site, 5))
    with engine.connect() as first, engine.connect() as second:
        with first.begin():
            mine = [r.record_id for r in claim_queued(first, 4, utcnow())]
            with second.begin():
                theirs = [r.record_id for r in claim_queued(second, 10, utcnow())]
    assert mine == records[:4]
    assert theirs == records[4:]


class FailingLinker(Linker):
    """The committed linker with a defect that strikes one record."""

    def __init__(self, base: Linker, failing: str):
        super().__init__(base.model, registry=base.registry)
        self.failing = failing

    def link_record(self, writer, record_id, **kwargs):  # noqa: ANN001, ANN003 - the linker's signature
        outcome = super().link_record(writer, record_id, **kwargs)
        if record_id == self.failing:  # after its rows are written: the savepoint must take them back
            raise RuntimeError("a defect met by this record only")
        return outcome


def test_a_failing_record_costs_only_itself_and_is_retried(hub, site, engine, mpi):
    records = list(write_people(site, 4))
    failing = records[2]
    worker = LinkWorker(mpi, batch=20, max_attempts=2, backoff_seconds=0)
    assert worker.link_batch(FailingLinker(mpi.linker(), failing), utcnow()) == len(records)
    assert (worker.linked, worker.failed) == (len(records) - 1, 1)
    with engine.connect() as conn:
        rows = {r.record_id: r for r in conn.execute(select(RECORD).where(RECORD.c.record_id.in_(records)))}
        assert conn.execute(select(func.count()).select_from(EVENT).where(EVENT.c.record_id == failing)).scalar_one() == 0
    assert {rows[r].state for r in records if r != failing} == {"linked"}
    assert (rows[failing].state, rows[failing].person_id, rows[failing].attempts) == ("queued", None, 1)
    assert "a defect met by this record only" in rows[failing].last_error
    # Its twin linked on its own: the failed record's link was rolled back with the batch.
    twin = records[3]
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).where(RECORD.c.person_id == rows[twin].person_id)).scalar_one() == 1

    assert worker.link_batch(FailingLinker(mpi.linker(), failing), utcnow()) == 1  # the second and last attempt
    with engine.connect() as conn:
        dead = conn.execute(select(RECORD).where(RECORD.c.record_id == failing)).one()
    assert (dead.state, dead.attempts) == ("failed", 2)
    assert worker.link_batch(mpi.linker(), utcnow()) == 0  # a dead record is not claimed again

    # Queued again once the defect is fixed, it joins its twin.
    with engine.begin() as conn:
        conn.execute(RECORD.update().where(RECORD.c.record_id == failing).values(state="queued", attempts=0))
    LinkWorker(mpi, backoff_seconds=0).run(until_idle=True)
    with engine.connect() as conn:
        assert conn.execute(select(RECORD.c.person_id).where(RECORD.c.record_id == failing)).scalar() == rows[twin].person_id


def test_a_batch_is_one_audit_event_naming_every_patient_it_touched(hub, site, engine, mpi):
    app, _raw, _login = hub
    records = write_people(site, 6)
    before = app.state.audit.count()
    worker = LinkWorker(mpi, batch=50, backoff_seconds=0)
    assert worker.link_batch(mpi.linker(), utcnow()) == len(records)
    assert app.state.audit.count() == before + 1  # one AuditEvent for the batch, not one per record
    [event], _ = app.state.audit.search(client="mpi-linker")
    assert event["extension"][0]["valueString"].startswith("MPI /mpi/link")
    named = {e["what"]["reference"] for e in event["entity"]}
    with engine.connect() as conn:
        persons = set(conn.execute(select(RECORD.c.person_id).where(RECORD.c.record_id.in_(list(records)))).scalars())
    assert len(persons) == 6
    assert {f"Patient/{p}" for p in [*records, *persons]} <= named
    for patient in [*records, *persons]:
        found, _ = app.state.audit.search(patient=patient, client="mpi-linker")
        assert [e["id"] for e in found] == [event["id"]], patient

    worker.refresh_stale()  # the golden Patients: one more AuditEvent for all six
    assert app.state.audit.count() == before + 2
    for person in persons:
        assert len(app.state.audit.search(patient=person, client="mpi-linker")[0]) == 2
    assert app.state.audit.verify().ok


def test_a_batch_counts_its_records_terms_once_it_commits(hub, site, engine, mpi):
    def counts() -> dict[tuple[str, str], int]:
        with engine.connect() as conn:
            return {(r.field, r.value): r.count for r in conn.execute(select(TERM))}

    records = write_people(site, 5)  # two records each, both "Lê"
    start = counts()
    assert LinkWorker(mpi, batch=50, backoff_seconds=0).link_batch(mpi.linker(), utcnow()) == len(records)
    after = counts()
    assert after[TOTAL] - start.get(TOTAL, 0) == len(records)
    family = [key for key in after if key[0] == "family"]
    assert [after[key] - start.get(key, 0) for key in family] == [len(records)]


def test_golden_patients_rewritten_together_keep_history_and_search_index(hub, site, engine, mpi, client):
    first = write_people(site, 3, copies=1)
    LinkWorker(mpi, backoff_seconds=0).run(until_idle=True)
    persons = {human: person_of(engine, record) for record, human in first.items()}
    second = write_people(site, 3, copies=1, first_copy=1)
    LinkWorker(mpi, backoff_seconds=0).run(until_idle=True)  # one batch, the three goldens rewritten in one unit
    for record, human in second.items():
        person = persons[human]
        assert person_of(engine, record) == person
        golden = client.get(f"/fhir/Patient/{person}").json()
        assert golden["meta"]["versionId"] == "2"
        assert sorted(link["other"]["reference"] for link in golden["link"]) == sorted(
            f"Patient/{r}" for r, h in [*first.items(), *second.items()] if h == human)
        history = client.get(f"/fhir/Patient/{person}/_history").json()
        assert [len(e["resource"]["link"]) for e in history["entry"]] == [2, 1]  # version 1 kept as it was
        found = client.get("/fhir/Patient", params={"identifier": f"{PERSON_SYSTEM}|{person}"}).json()
        assert [e["resource"]["id"] for e in found.get("entry", [])] == [person]  # index rows replaced, not doubled
