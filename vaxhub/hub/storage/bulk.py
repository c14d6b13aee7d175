"""Bulk inserts of buffered rows.

On PostgreSQL a unit's rows for several tables go in one statement
(`insert_rows`): each column travels as one array parameter and `unnest`
turns the arrays back into rows, one data-modifying CTE per table. A unit of
a few resources then costs one round trip instead of one COPY (two round
trips) per table, and the statement text depends only on which tables have
rows, so PostgreSQL keeps it prepared. Large batches go through COPY, which
the server ingests fastest (`bulk_insert`). Elsewhere an executemany INSERT
does the job. Either way a duplicate key surfaces as
`sqlalchemy.exc.IntegrityError`.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any, Sequence

import orjson
import psycopg
from sqlalchemy import JSON, Connection, Table, insert
from sqlalchemy.dialects import postgresql
from sqlalchemy.exc import IntegrityError

# Above this many rows in one call, COPY's streaming beats building arrays.
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
    params: list[list[Any]] = []
    for table, rows in batches:
        for column in table.columns:
            name = column.name
            if isinstance(column.type, JSON):
                params.append([_json_text(row.get(name)) for row in rows])
            else:
                params.append([row.get(name) for row in rows])
    cursor = conn.connection.dbapi_connection.cursor()
    try:
        # Binary arrays: JSON text goes as length-prefixed bytes, with no quoting to do.
        cursor.execute(_unnest_statement(tuple(table for table, _ in batches)), params, binary=True)
    except psycopg.errors.UniqueViolation as exc:
        raise IntegrityError("INSERT … unnest", None, exc) from exc
    finally:
        cursor.close()


def _json_text(value: Any) -> str | None:
    return None if value is None else orjson.dumps(value).decode()


@lru_cache(maxsize=256)
def _unnest_statement(tables: tuple[Table, ...]) -> str:
    inserts = [_unnest_insert(table) for table in tables]
    if len(inserts) == 1:
        return inserts[0]
    ctes = ", ".join(f"w{i} AS ({statement})" for i, statement in enumerate(inserts[:-1]))
    return f"WITH {ctes} {inserts[-1]}"


def _unnest_insert(table: Table) -> str:
    dialect = postgresql.dialect()
    names = [f'"{c.name}"' for c in table.columns]
    arrays = [
        "%s::text[]" if isinstance(c.type, JSON) else f"%s::{c.type.compile(dialect=dialect)}[]" for c in table.columns
    ]
    values = [f"{name}::jsonb" if isinstance(c.type, JSON) else name for name, c in zip(names, table.columns)]
    return (
        f"INSERT INTO {table.name} ({', '.join(names)}) SELECT {', '.join(values)} "
        f"FROM unnest({', '.join(arrays)}) AS u({', '.join(names)})"
    )
