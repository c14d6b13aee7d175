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
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any, Sequence

import orjson
import psycopg
from sqlalchemy import JSON, Connection, Table, insert
from sqlalchemy.exc import IntegrityError

# Above this many rows in one call, COPY streams them instead of one JSON text in memory.
COPY_ABOVE_ROWS = 5000


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


def insert_rows(conn: Connection, batches: Sequence[tuple[Table, list[dict[str, Any]]]]) -> None:
    """Insert each (table, rows) pair, all in one statement on PostgreSQL.

    Every column is written: a key missing from a row is NULL, not the
    column's default (as with COPY)."""
    batches = [(table, rows) for table, rows in batches if rows]
    if not batches:
        return
    if conn.dialect.name != "postgresql" or sum(len(rows) for _, rows in batches) > COPY_ABOVE_ROWS:
        for table, rows in batches:
            bulk_insert(conn, table, rows)
        return
    cursor = conn.connection.dbapi_connection.cursor()
    try:
        cursor.execute(
            _recordset_statement(tuple(table for table, _ in batches)),
            [orjson.dumps(rows).decode() for _, rows in batches],
        )
    except psycopg.errors.UniqueViolation as exc:
        raise IntegrityError("INSERT … json_populate_recordset", None, exc) from exc
    finally:
        cursor.close()


def _json_text(value: Any) -> str | None:
    return None if value is None else orjson.dumps(value).decode()


@lru_cache(maxsize=256)
def _recordset_statement(tables: tuple[Table, ...]) -> str:
    inserts = [f"INSERT INTO {table.name} SELECT * FROM json_populate_recordset(NULL::{table.name}, %s::json)" for table in tables]
    if len(inserts) == 1:
        return inserts[0]
    ctes = ", ".join(f"w{i} AS ({statement})" for i, statement in enumerate(inserts[:-1]))
    return f"WITH {ctes} {inserts[-1]}"
