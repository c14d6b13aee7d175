"""Reads that stand alone run without a transaction of their own on PostgreSQL
(`vaxhub.hub.storage.engine.reader`), so they cost no BEGIN and ROLLBACK round
trips; writes keep theirs. SQLite reads keep their deferred transaction."""

from __future__ import annotations

from datetime import datetime

import pytest
from sqlalchemy import event, select

from tests.builders import immunization, patient
from vaxhub.fhir.search_query import parse_search
from vaxhub.hub.mpi.reach import compartments_in_reach
from vaxhub.hub.storage.engine import reader
from vaxhub.hub.storage.mpi_tables import MpiRecordRow


@pytest.fixture
def statuses(engine):
    """The driver's transaction status after each statement: 'idle' in autocommit, 'in transaction' inside one."""
    seen: list[str] = []

    def after(conn, _cursor, statement, *_args) -> None:  # noqa: ANN001
        if statement.startswith("BEGIN"):  # SQLite's own, issued by the engine's begin hook
            return
        dbapi = conn.connection.dbapi_connection
        if engine.dialect.name == "postgresql":
            seen.append(dbapi.info.transaction_status.name.lower())
        else:
            seen.append("in transaction" if dbapi.in_transaction else "idle")

    event.listen(engine, "after_cursor_execute", after)
    yield seen
    event.remove(engine, "after_cursor_execute", after)


def test_reads_run_outside_a_transaction_on_postgresql_and_writes_inside_one(store, engine, statuses):
    stored = store.run_unit(lambda w: w.create(patient("079090041111"))).stored
    writes = list(statuses)
    statuses.clear()
    assert store.read("Patient", stored.id).id == stored.id
    assert [s.id for s in store.search(parse_search("Patient", [("identifier", "079090041111")])).resources] == [stored.id]
    assert [s.id for s in store.compartment(stored.id)] == [stored.id]
    reads = list(statuses)
    assert writes and set(writes) == {"intrans" if engine.dialect.name == "postgresql" else "in transaction"}
    assert reads and set(reads) == {"idle" if engine.dialect.name == "postgresql" else "in transaction"}


def test_the_reader_is_made_once_per_engine_and_leaves_the_pool_as_it_found_it(engine):
    assert reader(engine) is reader(engine)
    with reader(engine).connect() as conn:
        conn.execute(select(1))
    with engine.connect() as conn:
        conn.execute(select(1))
        if engine.dialect.name == "postgresql":
            assert conn.connection.dbapi_connection.autocommit is False
            assert conn.connection.dbapi_connection.info.transaction_status.name == "INTRANS"


def test_everything_of_a_golden_patient_is_one_query_over_its_records(store, engine, statuses):
    a = store.run_unit(lambda w: w.create(patient("079090042222"))).stored
    b = store.run_unit(lambda w: w.create(patient("079090043333"))).stored
    other = store.run_unit(lambda w: w.create(patient("079090044444"))).stored
    dose_a = store.run_unit(lambda w: w.create(immunization(f"Patient/{a.id}", "IMM-A"))).stored
    dose_b = store.run_unit(lambda w: w.create(immunization(f"Patient/{b.id}", "IMM-B"))).stored
    store.run_unit(lambda w: w.create(immunization(f"Patient/{other.id}", "IMM-C")))
    golden = store.run_unit(lambda w: w.create(patient("079090045555"))).stored
    with engine.begin() as conn:
        for record in (a, b):
            conn.execute(MpiRecordRow.__table__.insert().values(record_id=record.id, person_id=golden.id, state="linked", queued_at=datetime.now()))
    statuses.clear()
    found = {(s.rtype, s.id) for s in compartments_in_reach(store, golden.id)}
    assert found == {("Patient", golden.id), ("Patient", a.id), ("Patient", b.id), ("Immunization", dose_a.id), ("Immunization", dose_b.id)}
    assert len(statuses) == 1
    assert {(s.rtype, s.id) for s in compartments_in_reach(store, a.id)} == {("Patient", a.id), ("Immunization", dose_a.id)}


def test_the_reader_does_not_keep_its_engine_alive(engine):
    import gc
    import weakref

    from vaxhub.hub.storage.engine import make_engine

    other = make_engine(engine.url.render_as_string(hide_password=False))
    with reader(other).connect() as conn:
        conn.execute(select(1))
    other.dispose()
    gone = weakref.ref(other)
    del other, conn
    gc.collect()
    assert gone() is None, "an engine once asked for its reader is never freed"
