"""Bulk inserts of buffered rows.

On PostgreSQL a unit's rows for several tables go in one statement
(`insert_rows`): each table's rows travel as one JSON array, which
`json_populate_recordset` turns back into rows of that table, one
data-modifying CTE per table. A unit of a few resources then costs one round
trip instead of one COPY (two round trips) per table; orjson writes the array
in C and the server parses it in C, where per-column array parameters would be
built and dumped value by value in Python (measured: 15 % more CPU per dose
than COPY, where the JSON arrays cost the same as COPY for a Bundle of 20
doses and a third less for a VXU of one). The statement text depends only on
which tables have rows, so PostgreSQL keeps it prepared. Very large batches
go through COPY (`bulk_insert`), which streams. Elsewhere an executemany
INSERT does the job. Either way a duplicate key surfaces as
`sqlalchemy.exc.IntegrityError`.

Outbox rows that replace a queued row of the same key (`Upsert`: a Patient's
verification job, its link record) ride in the same statement as an
`INSERT … ON CONFLICT DO UPDATE`; one statement must then name each key
once.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Sequence, Union

import orjson
import psycopg
from sqlalchemy import JSON, Connection, Table, insert
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import IntegrityError

# Above this many rows in one call, COPY streams them instead of one JSON text in memory.
COPY_ABOVE_ROWS = 5000


@dataclass(frozen=True)
class Upsert:
    """Rows for `table` that replace `columns` of the row already holding their `key`."""

    table: Table
    key: tuple[str, ...]
    columns: tuple[str, ...]

    def suffix(self) -> str:
        updates = ", ".join(f'"{c}" = excluded."{c}"' for c in self.columns)
        return f" ON CONFLICT ({', '.join(self.key)}) DO UPDATE SET {updates}"

    def execute(self, conn: Connection, rows: list[dict[str, Any]]) -> None:
        """The upsert as an executemany, where rows do not go in one statement."""
        stmt = (postgresql_insert if conn.dialect.name == "postgresql" else sqlite_insert)(self.table)
        stmt = stmt.on_conflict_do_update(index_elements=[self.table.c[k] for k in self.key],
                                          set_={c: stmt.excluded[c] for c in self.columns})
        conn.execute(stmt, rows)


Target = Union[Table, Upsert]


def bulk_insert(conn: Connection, table: Table, rows: list[dict[str, Any]]) -> None:
    if not rows:
        return
    if conn.dialect.name != "postgresql":
        conn.execute(insert(table), rows)
        return
    columns = [c.name for c in table.columns]
    json_columns = {c.name for c in table.columns if isinstance(c.type, JSON)}
    names = ", ".join(f'"{c}"' for c in columns)
    cursor = conn.connection.dbapi_connection.cursor()
    try:
        with cursor.copy(f"COPY {table.name} ({names}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row([_json_text(row.get(c)) if c in json_columns else row.get(c) for c in columns])
    except psycopg.errors.UniqueViolation as exc:
        raise IntegrityError(f"COPY {table.name}", None, exc) from exc
    finally:
        cursor.close()


def insert_rows(conn: Connection, batches: Sequence[tuple[Target, list[dict[str, Any]]]]) -> None:
    """Insert (or upsert) each (target, rows) pair, all in one statement on PostgreSQL.

    Every column is written: a key missing from a row is NULL, not the
    column's default (as with COPY)."""
    batches = merged(batches)
    if not batches:
        return
    if conn.dialect.name != "postgresql" or sum(len(rows) for _, rows in batches) > COPY_ABOVE_ROWS:
        for target, rows in batches:
            if isinstance(target, Upsert):
                target.execute(conn, rows)
            else:
                bulk_insert(conn, target, rows)
        return
    cursor = conn.connection.dbapi_connection.cursor()
    try:
        cursor.execute(*recordset_insert(batches))
    except psycopg.errors.UniqueViolation as exc:
        raise IntegrityError("INSERT … json_populate_recordset", None, exc) from exc
    finally:
        cursor.close()


def merged(batches: Sequence[tuple[Target, list[dict[str, Any]]]]) -> list[tuple[Target, list[dict[str, Any]]]]:
    """One pair per target, where it first appears, empty ones dropped: a
    unit holding several requests (each handing its own ACK row, outbox
    rows, AuditEvent) then sends one part per table, and PostgreSQL a
    statement text that does not grow with the requests. An upsert's keys
    are already named once per statement (see above), so its pairs merge too."""
    out: dict[Target, list[dict[str, Any]]] = {}
    for target, rows in batches:
        if rows:
            out.setdefault(target, []).extend(rows)
    return list(out.items())


def recordset_insert(batches: Sequence[tuple[Target, list[dict[str, Any]]]]) -> tuple[str, list[str]]:
    """PostgreSQL: the one statement and its parameters that insert every (target, rows) pair (none empty)."""
    return _recordset_statement(tuple(table for table, _ in batches)), [orjson.dumps(rows).decode() for _, rows in batches]


def _json_text(value: Any) -> str | None:
    return None if value is None else orjson.dumps(value).decode()


@lru_cache(maxsize=256)
def _recordset_statement(targets: tuple[Target, ...]) -> str:
    inserts = []
    for target in targets:
        table, suffix = (target.table, target.suffix()) if isinstance(target, Upsert) else (target, "")
        inserts.append(f"INSERT INTO {table.name} SELECT * FROM json_populate_recordset(NULL::{table.name}, %s::json){suffix}")
    if len(inserts) == 1:
        return inserts[0]
    ctes = ", ".join(f"w{i} AS ({statement})" for i, statement in enumerate(inserts[:-1]))
    return f"WITH {ctes} {inserts[-1]}"
