"""Storage guarantees under concurrency and failure, on SQLite and PostgreSQL."""

from __future__ import annotations

import threading

import pytest
from sqlalchemy import event, func, inspect, select, text

from tests.builders import identifier_condition, immunization, patient
from vaxhub.errors import DuplicateIdentifier, InvalidResource, PreconditionFailed
from vaxhub.fhir.search_query import parse_search
from vaxhub.hub.storage.engine import current_revision, head_revision
from vaxhub.hub.storage.store import FhirStore
from vaxhub.hub.storage.tables import IdentifierClaimRow, ResourceRow, ResourceVersionRow, TokenIndexRow


def _count(engine, model) -> int:
    with engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(model)).scalar_one()


def test_migrations_are_at_head(engine):
    assert current_revision(engine) == head_revision()
    assert {"resource", "resource_version", "sp_token", "sp_string", "sp_date", "sp_reference", "identifier_claim"} <= set(inspect(engine).get_table_names())


def test_racing_conditional_creates_store_one_resource(store, engine):
    pat = patient("079090077777")
    criteria = parse_search("Patient", [tuple(identifier_condition(pat).split("=", 1))])
    barrier = threading.Barrier(6)
    results, errors = [], []

    def send() -> None:
        barrier.wait()
        try:
            results.append(store.run_unit(lambda w: w.create(pat, if_none_exist=criteria)))
        except Exception as exc:  # noqa: BLE001 - the test reports any failure
            errors.append(exc)

    threads = [threading.Thread(target=send) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert len({r.stored.id for r in results}) == 1
    assert sorted(r.status for r in results) == [200] * 5 + [201]
    assert _count(engine, ResourceRow) == 1
    assert _count(engine, IdentifierClaimRow) == 1


def test_identifier_claim_is_enforced_by_the_database(engine):
    store = FhirStore(engine)
    store.run_unit(lambda w: w.create(patient("079090066666")))
    with pytest.raises(DuplicateIdentifier):
        store.run_unit(lambda w: w.create(patient("079090066666", family="Lê")))
    # Bypassing the store's own check, the primary key still refuses the second claim.
    with pytest.raises(Exception) as caught:
        with engine.begin() as conn:
            conn.execute(IdentifierClaimRow.__table__.insert().values(res_type="Patient", system="https://vaxhub.vn/fhir/sid/cccd", value="079090066666", res_id="other"))
    assert "unique" in str(caught.value).lower() or "duplicate" in str(caught.value).lower()


def test_concurrent_updates_from_one_version_let_exactly_one_win(engine):
    store = FhirStore(engine)
    created = store.run_unit(lambda w: w.create(patient("079090055555"))).stored
    barrier = threading.Barrier(5)
    won, lost = [], []

    def update(gender: str) -> None:
        barrier.wait()
        try:
            store.run_unit(lambda w: w.update("Patient", created.id, {**created.content, "gender": gender}, if_match='W/"1"'))
            won.append(gender)
        except PreconditionFailed:
            lost.append(gender)

    threads = [threading.Thread(target=update, args=(g,)) for g in ("female", "other", "unknown", "female", "other")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(won) == 1 and len(lost) == 4
    current = store.read("Patient", created.id)
    assert current.version == 2 and current.content["gender"] == won[0]


def test_failed_unit_leaves_no_rows_behind(engine):
    store = FhirStore(engine)

    def work(w):
        w.create(patient("079090044444"))
        w.create(immunization("Patient/missing"))

    with pytest.raises(InvalidResource):
        store.run_unit(work)
    for model in (ResourceRow, ResourceVersionRow, TokenIndexRow, IdentifierClaimRow):
        assert _count(engine, model) == 0


def test_every_version_is_kept(engine):
    store = FhirStore(engine)
    created = store.run_unit(lambda w: w.create(patient("079090033333"))).stored
    for gender in ("female", "other", "unknown"):
        current = store.read("Patient", created.id)
        store.run_unit(lambda w: w.update("Patient", created.id, {**current.content, "gender": gender}))
    versions, more = store.history("Patient", created.id)
    assert [v.version for v in versions] == [4, 3, 2, 1] and not more
    assert [store.vread("Patient", created.id, n).content["gender"] for n in (1, 2, 3, 4)] == ["male", "female", "other", "unknown"]
    # The JSON is stored once per version: superseded versions in history, the current one in `resource`.
    with engine.connect() as conn:
        archived = conn.execute(select(func.count()).select_from(ResourceVersionRow).where(ResourceVersionRow.content.is_not(None))).scalar_one()
    assert archived == 3


def test_compartment_is_one_indexed_query(engine):
    store = FhirStore(engine)
    pid = store.run_unit(lambda w: w.create(patient("079090022222"))).stored.id
    store.run_unit(lambda w: w.create(immunization(f"Patient/{pid}", "c1")))
    store.run_unit(lambda w: w.create(immunization(f"Patient/{pid}", "c2")))
    assert sorted(s.rtype for s in store.compartment(pid)) == ["Immunization", "Immunization", "Patient"]
    with engine.connect() as conn:
        if engine.dialect.name == "postgresql":
            conn.execute(text("SET enable_seqscan = off"))
            plan = " ".join(r[0] for r in conn.execute(text("EXPLAIN SELECT * FROM resource WHERE patient_id = :p"), {"p": pid}))
        else:
            plan = " ".join(str(r[-1]) for r in conn.execute(text("EXPLAIN QUERY PLAN SELECT * FROM resource WHERE patient_id = :p"), {"p": pid}))
    assert "ix_resource_patient" in plan


def test_many_resources_are_read_in_one_query_and_each_read_once(engine):
    store = FhirStore(engine)
    a = store.run_unit(lambda w: w.create(patient("079090044444"))).stored
    b = store.run_unit(lambda w: w.create(patient("079090055555"))).stored
    store.run_unit(lambda w: w.update("Patient", b.id, {**b.content, "gender": "female"}))
    statements: list[str] = []

    def count(conn, cursor, statement, *_args):  # noqa: ANN001 - SQLAlchemy's event signature
        statements.append(statement)

    def unit(w):
        w.read_current_many([("Patient", b.id), ("Patient", a.id), ("Patient", "no-such-id")], lock=True)
        read_a, read_b = w.read("Patient", a.id), w.read("Patient", b.id)
        seen = len(statements)
        assert (read_a.version, read_b.version, read_b.content["gender"]) == (1, 2, "female")
        w.update("Patient", a.id, {**read_a.content, "gender": "other"})
        return seen, w.read("Patient", a.id).version  # after the write, read again (not the row read before)

    event.listen(engine, "before_cursor_execute", count)
    try:
        seen, version = store.run_unit(unit)
    finally:
        event.remove(engine, "before_cursor_execute", count)
    assert version == 2
    resource_reads = [s for s in statements[:seen] if s.lstrip().upper().startswith("SELECT") and "FROM resource" in s]
    assert len(resource_reads) == 1  # both Patients (and the unknown id) in one statement


@pytest.mark.parametrize("people", [1, 2])
def test_a_bundle_does_not_lock_the_patients_its_conditional_creates_matched(engine, people):
    """A site re-sends stored people with new doses (a VXU: one person; a Bundle: several): the
    stored Patients are answered with, not written, so a Bundle goes through while another
    transaction holds their rows."""
    if engine.dialect.name != "postgresql":
        pytest.skip("row locks are PostgreSQL's; SQLite's writer holds the whole database")
    from tests.builders import person_with_doses, transaction
    from vaxhub.hub.operations.transaction import process_bundle

    store = FhirStore(engine)
    cccds = [f"07909006{n:04d}" for n in range(people)]
    process_bundle(store, transaction(*[e for c in cccds for e in person_with_doses(c, 1)]), base="http://hub.test/fhir")
    with engine.connect() as holder:
        with holder.begin():
            holder.execute(text("SELECT 1 FROM resource WHERE res_type = 'Patient' FOR UPDATE"))
            finished: list[dict] = []
            # The same people, each with a new dose only (as a VXU sends it): the Patients are the only matches.
            resend = transaction(*[e for c in cccds for e in person_with_doses(c, 2)[::2]])
            worker = threading.Thread(target=lambda: finished.append(process_bundle(store, resend, base="http://hub.test/fhir")))
            worker.start()
            worker.join(timeout=20)
            done_while_held = not worker.is_alive()
        worker.join(timeout=20)
    assert done_while_held
    statuses = [e["response"]["status"] for e in finished[0]["entry"]]
    assert statuses.count("200 OK") == people  # each Patient matched
    assert statuses.count("201 Created") == people  # each second dose stored
