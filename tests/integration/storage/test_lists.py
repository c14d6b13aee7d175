"""`one_of` (`vaxhub/hub/storage/lists.py`): a list condition, on SQLite and PostgreSQL."""

from __future__ import annotations

from sqlalchemy import delete, event, insert, select

from vaxhub.hub.storage.lists import one_of
from vaxhub.hub.storage.mpi_tables import MpiBlockRow

BLOCK = MpiBlockRow.__table__
FILED = select(BLOCK.c.key, BLOCK.c.record_id).where(one_of(BLOCK.c.key, "keys"), one_of(BLOCK.c.record_id, "records"))


def _filed(engine) -> None:
    with engine.begin() as conn:
        conn.execute(insert(BLOCK), [{"key": f"k{k}", "record_id": f"r{r}"} for k in range(4) for r in range(3)])


def test_one_of_keeps_the_rows_whose_values_are_listed(engine):
    _filed(engine)
    with engine.connect() as conn:
        rows = {tuple(row) for row in conn.execute(FILED, {"keys": ["k1", "k3", "k9"], "records": ["r0", "r2"]})}
        assert rows == {("k1", "r0"), ("k1", "r2"), ("k3", "r0"), ("k3", "r2")}
        assert conn.execute(FILED, {"keys": [], "records": ["r0"]}).all() == []
        # In a DELETE as well: the index's kept writes unfile records this way.
        conn.execute(delete(BLOCK).where(one_of(BLOCK.c.record_id, "records")), {"records": ["r1"]})
        assert {r for (r,) in conn.execute(select(BLOCK.c.record_id).distinct())} == {"r0", "r2"}


def test_on_postgresql_the_statement_text_does_not_change_with_the_list(engine, backend):
    _filed(engine)
    sent: list[str] = []

    def record(conn, cursor, statement, parameters, context, executemany):  # noqa: ANN001 - SQLAlchemy's event signature
        if "mpi_block" in statement:
            sent.append(statement)

    event.listen(engine, "before_cursor_execute", record)
    try:
        with engine.connect() as conn:
            short = conn.execute(FILED, {"keys": ["k1"], "records": ["r0"]}).all()
            long = conn.execute(FILED, {"keys": [f"k{k}" for k in range(200)], "records": ["r0", "r1", "r2"]}).all()
    finally:
        event.remove(engine, "before_cursor_execute", record)
    assert len(short) == 1 and len(long) == 12
    if backend == "postgresql":
        assert sent[0] == sent[1] and "ANY" in sent[0]
    else:  # SQLite binds one placeholder per value
        assert sent[0] != sent[1] and " IN (" in sent[0]
