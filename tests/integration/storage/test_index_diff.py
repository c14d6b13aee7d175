"""`Writer.update_many` replaces only the index rows that changed
(`vaxhub/hub/storage/index_diff.py`), on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest
from sqlalchemy import insert, select, text

from tests.builders import CCCD, patient
from vaxhub.fhir.search_query import parse_search
from vaxhub.hub.storage.index_diff import replace_index_rows
from vaxhub.hub.storage.indexer import IndexRows, index_rows
from vaxhub.hub.storage.store import CLAIM, INDEX_TABLES, FhirStore

TABLES = (*INDEX_TABLES, CLAIM)
KINDS = ("token", "string", "date", "reference", "claims")


def _rows_of(conn, res_id: str) -> dict[str, set[tuple]]:
    return {t.name: {tuple(r) for r in conn.execute(select(*t.columns).where(t.c.res_type == "Patient", t.c.res_id == res_id))}
            for t in TABLES}


def _expected(res_id: str, content: dict) -> dict[str, set[tuple]]:
    rows = index_rows("Patient", res_id, content)
    return {t.name: {tuple(r[c.name] for c in t.columns) for r in getattr(rows, kind)} for kind, t in zip(KINDS, TABLES)}


def _row_ages(conn, table: str, res_id: str) -> dict[tuple, str]:
    """Each row's physical identity: a rewritten row gets a new one (PostgreSQL's
    inserting transaction, SQLite's rowid)."""
    age = "xmin::text" if conn.dialect.name == "postgresql" else "rowid"
    return {tuple(r[1:]): str(r[0]) for r in conn.execute(
        text(f"SELECT {age}, param, value_exact FROM {table} WHERE res_type = 'Patient' AND res_id = :id"), {"id": res_id})}


def _ids(store: FhirStore, query: list[tuple[str, str]]) -> set[str]:
    return {s.id for s in store.search(parse_search("Patient", query)).resources}


def test_an_update_keeps_unchanged_rows_and_swaps_changed_ones(store, engine):
    a = store.run_unit(lambda w: w.create(patient("079090031111", "Trần", ("Thị", "Bích")))).stored
    b = store.run_unit(lambda w: w.create(patient("079090032222", "Lê", ("Văn", "Cường")))).stored
    store.run_unit(lambda w: w.create(patient("079090033333", birth_date="1985-03-03")))  # rows after theirs: a rewritten row cannot get its old rowid back
    with engine.connect() as conn:
        before = _row_ages(conn, "sp_string", a.id)
    renamed = {**a.content, "name": [{"use": "official", "family": "Trần", "given": ["Thị", "Bình"]}]}
    redated = {**b.content, "birthDate": "1991-01-02"}
    written = store.run_unit(lambda w: w.update_many("Patient", [renamed, redated]))
    assert [r.stored.version for r in written] == [2, 2]
    with engine.connect() as conn:
        assert _rows_of(conn, a.id) == _expected(a.id, written[0].stored.content)
        assert _rows_of(conn, b.id) == _expected(b.id, written[1].stored.content)
        after = _row_ages(conn, "sp_string", a.id)
    kept = {k for k in before if k in after}
    assert ("family", "Trần") in kept
    assert all(before[k] == after[k] for k in kept), "an unchanged row was deleted and inserted again"
    assert ("given", "Bích") not in after and ("given", "Bình") in after
    assert _ids(store, [("given", "Bình")]) == {a.id}
    assert _ids(store, [("given", "Bích")]) == set()
    assert _ids(store, [("birthdate", "1991-01-02")]) == {b.id}
    assert _ids(store, [("birthdate", "1990-05-04")]) == {a.id}


def test_an_identifier_moves_between_resources_updated_together(store, engine):
    a = store.run_unit(lambda w: w.create(patient("079090041111"))).stored
    b = store.run_unit(lambda w: w.create(patient("079090042222"))).stored
    moving = {"system": "urn:vaxhub:test-moving", "value": "M-1"}
    store.run_unit(lambda w: w.update_many("Patient", [{**a.content, "identifier": [*a.content["identifier"], moving]}, b.content]))
    a2 = store.read("Patient", a.id)
    store.run_unit(lambda w: w.update_many("Patient", [
        {**a2.content, "identifier": a.content["identifier"]},
        {**b.content, "identifier": [*b.content["identifier"], moving]},
    ]))
    assert _ids(store, [("identifier", "urn:vaxhub:test-moving|M-1")]) == {b.id}
    with engine.connect() as conn:
        owners = conn.execute(select(CLAIM.c.res_id).where(CLAIM.c.value == "M-1")).scalars().all()
        assert owners == [b.id]
        assert _rows_of(conn, a.id) == _expected(a.id, store.read("Patient", a.id).content)


def test_rows_no_version_yields_are_removed(store, engine):
    """Rows an earlier extractor wrote (a parameter since dropped) are found
    in the table, not derived from the old content, and go."""
    a = store.run_unit(lambda w: w.create(patient("079090051111"))).stored
    b = store.run_unit(lambda w: w.create(patient("079090052222"))).stored
    token = INDEX_TABLES[0]
    with engine.begin() as conn:
        conn.execute(insert(token).values(res_type="Patient", res_id=a.id, param="retired-param", system="", value="x"))
    store.run_unit(lambda w: w.update_many("Patient", [{**a.content, "gender": "female"}, {**b.content, "gender": "female"}]))
    with engine.connect() as conn:
        assert _rows_of(conn, a.id) == _expected(a.id, store.read("Patient", a.id).content)
        params = conn.execute(select(token.c.param).where(token.c.res_id == a.id)).scalars().all()
    assert "retired-param" not in params
    assert _ids(store, [("gender", "female")]) == {a.id, b.id}


def test_replace_index_rows_returns_only_rows_not_stored(store, engine):
    a = store.run_unit(lambda w: w.create(patient("079090061111"))).stored
    with engine.begin() as conn:
        same = replace_index_rows(conn, TABLES, "Patient", [a.id], index_rows("Patient", a.id, a.content))
        assert same == IndexRows()
        assert _rows_of(conn, a.id) == _expected(a.id, a.content)
        nothing = replace_index_rows(conn, TABLES, "Patient", [a.id], IndexRows())
        assert nothing == IndexRows()
        assert all(not rows for rows in _rows_of(conn, a.id).values())
    with engine.connect() as conn, pytest.raises(ValueError, match="one table per kind"):
        replace_index_rows(conn, INDEX_TABLES, "Patient", [a.id], IndexRows())
