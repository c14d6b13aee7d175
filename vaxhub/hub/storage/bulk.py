"""Bulk inserts of buffered rows.

On PostgreSQL rows go through COPY, which the server ingests several times
faster than multi-row INSERTs (and without the client re-parsing a large
statement per page). Elsewhere an executemany INSERT does the job. Either
way a duplicate key surfaces as `sqlalchemy.exc.IntegrityError`.
"""

from __future__ import annotations

from typing import Any

import orjson
import psycopg
from sqlalchemy import JSON, Connection, Table, insert
from sqlalchemy.exc import IntegrityError


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
                copy.write_row(
                    [
                        (None if row.get(c) is None else orjson.dumps(row[c]).decode()) if c in json_columns else row.get(c)
                        for c in columns
                    ]
                )
    except psycopg.errors.UniqueViolation as exc:
        raise IntegrityError(f"COPY {table.name}", None, exc) from exc
    finally:
        cursor.close()
