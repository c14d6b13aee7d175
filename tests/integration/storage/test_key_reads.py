"""Reads of many rows by key (`vaxhub/hub/storage/key_reads.py`), on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest
from sqlalchemy import text
from sqlalchemy.exc import OperationalError

from tests.builders import CCCD, immunization, patient
from vaxhub.hub.storage import key_reads
from vaxhub.hub.storage.store import FhirStore


def _stored(store: FhirStore):
    a = store.run_unit(lambda w: w.create(patient("079090011111"))).stored
    b = store.run_unit(lambda w: w.create(patient("079090022222"))).stored
    shot = store.run_unit(lambda w: w.create(immunization(f"Patient/{a.id}", "IMM-KR-1"))).stored
    return a, b, shot


def test_claim_owners_answer_each_held_identifier_with_its_owner(store, engine):
    a, b, _shot = _stored(store)
    keys = [
        ("Patient", CCCD, "079090011111"),
        ("Patient", CCCD, "079090022222"),
        ("Patient", CCCD, "079090099999"),  # held by nobody
        ("Patient", "urn:other-system", "079090011111"),  # the value, under another system
        ("Immunization", CCCD, "079090011111"),  # the value, for another type
        ("Patient", CCCD, "079090011111"),  # asked twice
    ]
    with engine.connect() as conn:
        owners = key_reads.claim_owners(conn, keys)
        assert key_reads.claim_owners(conn, []) == {}
    assert owners == {("Patient", CCCD, "079090011111"): a.id, ("Patient", CCCD, "079090022222"): b.id}


def test_live_resources_leave_out_unknown_and_deleted(store, engine):
    a, b, shot = _stored(store)
    store.run_unit(lambda w: w.delete("Patient", b.id))
    wanted = [("Patient", a.id), ("Patient", b.id), ("Immunization", shot.id), ("Immunization", a.id), ("Patient", "no-such-id")]
    with engine.connect() as conn:
        assert key_reads.live_resources(conn, wanted) == {("Patient", a.id), ("Immunization", shot.id)}


def test_current_rows_come_sorted_with_their_versions(store, engine):
    a, b, shot = _stored(store)
    store.run_unit(lambda w: w.update("Patient", b.id, {**b.content, "gender": "female"}))
    wanted = [("Patient", b.id), ("Immunization", shot.id), ("Patient", a.id), ("Patient", "no-such-id"), ("Patient", a.id)]
    with engine.connect() as conn:
        rows = key_reads.current_rows(conn, wanted, lock=False)
    assert [(r.res_type, r.res_id) for r in rows] == sorted({("Patient", a.id), ("Patient", b.id), ("Immunization", shot.id)})
    by_id = {r.res_id: r for r in rows}
    assert (by_id[a.id].version, by_id[b.id].version, by_id[b.id].content["gender"]) == (1, 2, "female")
    assert not any(r.deleted for r in rows)


def test_only_a_locking_read_holds_the_rows(store, engine):
    if engine.dialect.name != "postgresql":
        pytest.skip("row locks are PostgreSQL's; SQLite's writer holds the whole database")
    a, b, _shot = _stored(store)

    def blocked_by(lock: bool) -> bool:
        with engine.connect() as holder, engine.connect() as other:
            with holder.begin():
                key_reads.current_rows(holder, [("Patient", a.id), ("Patient", b.id)], lock=lock)
                with other.begin():
                    other.execute(text("SET LOCAL lock_timeout = '200ms'"))
                    try:
                        other.execute(text("UPDATE resource SET last_updated = last_updated WHERE res_id = :i"), {"i": b.id})
                    except OperationalError as exc:
                        assert "lock timeout" in str(exc)
                        return True
        return False

    assert blocked_by(lock=True)
    assert not blocked_by(lock=False)


def test_rows_of_the_named_resources_go_from_every_table_and_no_others(store, engine):
    from sqlalchemy import func, select

    from vaxhub.hub.storage.store import CLAIM, INDEX_TABLES

    a, b, shot = _stored(store)
    tables = (*INDEX_TABLES, CLAIM)

    def rows_of(res_id: str) -> int:
        with engine.connect() as conn:
            return sum(conn.execute(select(func.count()).select_from(t).where(t.c.res_id == res_id)).scalar_one() for t in tables)

    before = {i: rows_of(i) for i in (a.id, b.id, shot.id)}
    assert all(before.values())
    with engine.begin() as conn:
        key_reads.delete_rows_of(conn, tables, "Patient", [a.id, shot.id, a.id])  # the Immunization's id, under Patient: not its rows
        key_reads.delete_rows_of(conn, tables, "Patient", [])
    assert (rows_of(a.id), rows_of(b.id), rows_of(shot.id)) == (0, before[b.id], before[shot.id])


def test_a_few_keys_are_probed_by_index_not_hashed_against_the_whole_table(engine):
    # json_to_recordset is always guessed at 100 rows. As a plain join, the
    # two identifiers of a VXU were hashed against a sequential scan of every
    # claim once a scan looked cheaper than 100 probes (2.7 ms at 14,000
    # claims); each key now probes the primary key on its own.
    if engine.dialect.name != "postgresql":
        pytest.skip("the statements and the planner are PostgreSQL's")
    with engine.begin() as conn:
        conn.execute(text(
            "INSERT INTO identifier_claim (res_type, system, value, res_id)"
            " SELECT 'Patient', 'urn:test', lpad(n::text, 12, '0'), 'p' || n FROM generate_series(1, 20000) AS n"
        ))
        conn.execute(text("ANALYZE identifier_claim"))
        keys = '[{"t": "Patient", "v": "000000000042"}, {"t": "Immunization", "v": "none"}]'
        plan = "\n".join(row[0] for row in conn.exec_driver_sql("EXPLAIN " + key_reads._CLAIMS_SQL, (keys,)))
        owners = key_reads.claim_owners(conn, [("Patient", "urn:test", "000000000042"), ("Immunization", "urn:test", "none")])
    assert "Seq Scan on identifier_claim" not in plan and "Index Scan using pk_identifier_claim" in plan, plan
    assert owners == {("Patient", "urn:test", "000000000042"): "p42"}
