"""`insert_rows`: several tables' rows in one call, on SQLite and PostgreSQL alike."""

from __future__ import annotations

from datetime import datetime

import pytest
from sqlalchemy import JSON, Boolean, Column, DateTime, Integer, MetaData, String, Table, select
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.exc import IntegrityError

from vaxhub.hub.storage import bulk

META = MetaData()
PARENT = Table(
    "bulk_test_parent", META,
    Column("key", String(20), primary_key=True),
    Column("number", Integer),
    Column("flag", Boolean),
    Column("at", DateTime),
    Column("doc", JSON(none_as_null=True).with_variant(JSONB(none_as_null=True), "postgresql")),
)
CHILD = Table("bulk_test_child", META, Column("key", String(20), primary_key=True), Column("note", String(40)))


@pytest.fixture
def tables(engine):
    META.create_all(engine)
    yield
    META.drop_all(engine)


def _parents(n: int, offset: int = 0) -> list[dict]:
    return [
        {"key": f"p{i}", "number": i if i % 3 else None, "flag": i % 2 == 0, "at": datetime(2021, 8, 1, 9, i % 60),
         "doc": {"name": 'Nguyễn "An"\\', "i": i} if i % 4 else None}
        for i in range(offset, offset + n)
    ]


def _read(engine) -> tuple[list, list]:
    with engine.connect() as conn:
        parents = [dict(r._mapping) for r in conn.execute(select(PARENT).order_by(PARENT.c.key))]
        children = [dict(r._mapping) for r in conn.execute(select(CHILD).order_by(CHILD.c.key))]
    return parents, children


@pytest.mark.parametrize("copy_above", [bulk.COPY_ABOVE_ROWS, 2], ids=["one-statement", "copy"])
def test_rows_of_several_tables_arrive_as_given(engine, tables, monkeypatch, copy_above):
    monkeypatch.setattr(bulk, "COPY_ABOVE_ROWS", copy_above)
    parents = _parents(7)
    children = [{"key": "c1", "note": "Hà Nội"}, {"key": "c2", "note": None}]
    with engine.begin() as conn:
        bulk.insert_rows(conn, [(PARENT, parents), (CHILD, []), (CHILD, children)])
    stored_parents, stored_children = _read(engine)
    assert sorted(stored_parents, key=lambda r: r["key"]) == sorted(parents, key=lambda r: r["key"])
    assert stored_children == children


def test_a_duplicate_key_raises_and_the_statement_leaves_nothing(engine, tables):
    with engine.begin() as conn:
        bulk.insert_rows(conn, [(PARENT, _parents(2))])
    with pytest.raises(IntegrityError):
        with engine.begin() as conn:
            bulk.insert_rows(conn, [(CHILD, [{"key": "c1", "note": "x"}]), (PARENT, _parents(3, offset=1))])
    parents, children = _read(engine)
    assert [p["key"] for p in parents] == ["p0", "p1"] and children == []


def test_nothing_to_insert_sends_nothing(engine, tables):
    with engine.begin() as conn:
        bulk.insert_rows(conn, [(PARENT, []), (CHILD, [])])
    assert _read(engine) == ([], [])


@pytest.mark.parametrize("copy_above", [bulk.COPY_ABOVE_ROWS, 2], ids=["one-statement", "executemany"])
def test_upserted_rows_replace_only_the_named_columns_of_rows_already_there(engine, tables, monkeypatch, copy_above):
    monkeypatch.setattr(bulk, "COPY_ABOVE_ROWS", copy_above)
    with engine.begin() as conn:
        bulk.insert_rows(conn, [(PARENT, _parents(3))])
    replace = bulk.Upsert(PARENT, ("key",), ("number", "doc"))
    changed = [{"key": "p1", "number": 41, "flag": None, "at": None, "doc": {"again": True}},
               {"key": "p9", "number": 9, "flag": True, "at": datetime(2022, 1, 2, 3, 4), "doc": None}]
    with engine.begin() as conn:
        bulk.insert_rows(conn, [(CHILD, [{"key": "c1", "note": "with it"}]), (replace, changed)])
    parents, children = _read(engine)
    by_key = {p["key"]: p for p in parents}
    # p1 keeps its flag and time (not named), takes the new number and document.
    assert by_key["p1"] == {"key": "p1", "number": 41, "flag": False, "at": datetime(2021, 8, 1, 9, 1), "doc": {"again": True}}
    assert by_key["p9"] == changed[1]  # a new key is inserted whole
    assert by_key["p0"] == _parents(1)[0] and set(by_key) == {"p0", "p1", "p2", "p9"}
    assert children == [{"key": "c1", "note": "with it"}]
