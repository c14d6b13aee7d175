"""Reads of many rows by key, one query per call: the identifier claims a
Bundle names, the resources its references point to, the current versions its
conditional creates matched (or an update is about to replace); and the
replaced versions' search-index rows, deleted from every table in one
statement.

On PostgreSQL the keys travel as one JSON array (`json_to_recordset`) in a
statement whose text never changes, handed to the driver as it is
(`exec_driver_sql`): psycopg keeps it prepared on the server (parsed and
planned once per connection), and no `IN (…)` list is compiled and rendered
per call, which took about a tenth of the API's CPU for a Bundle of 20 doses.
The delete binds its ids as one array (`res_id = ANY(…)`), which the
planner sizes from the array and answers with primary-key probes.
Elsewhere (SQLite) the same reads are `type = … AND value IN (…)` arms
through SQLAlchemy.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from datetime import datetime
from typing import Any, NamedTuple

import orjson
from sqlalchemy import ColumnElement, Connection, Table, and_, delete, or_, select

from vaxhub.hub.storage.tables import IdentifierClaimRow, ResourceRow

RESOURCE = ResourceRow.__table__
CLAIM = IdentifierClaimRow.__table__

# Values per statement on SQLite (its bound-parameter limit is far above this).
_IN_LIMIT = 500

# Each key is looked up on its own (`LATERAL`, kept from being flattened
# into a join by `OFFSET 0`): one primary-key probe per key, whatever the
# planner guesses. As a join, the keys (guessed at 100 rows, as every
# set-returning function is) were hashed against a sequential scan of the
# whole table whenever that looked cheaper than 100 probes: 2.7 ms for the
# two keys of a VXU against 14,000 claims; and the live-resource read, once
# prepared, got a generic plan ten times slower than its custom one.
_CLAIMS_SQL = (
    "SELECT c.res_type, c.system, c.value, c.res_id"
    " FROM (SELECT DISTINCT t, v FROM json_to_recordset(%s::json) AS k(t text, v text)) k"
    " CROSS JOIN LATERAL (SELECT res_type, system, value, res_id FROM identifier_claim"
    " WHERE res_type = k.t AND value = k.v OFFSET 0) c"
)
_LIVE_SQL = (
    "SELECT r.res_type, r.res_id"
    " FROM (SELECT DISTINCT t, i FROM json_to_recordset(%s::json) AS k(t text, i text)) k"
    " CROSS JOIN LATERAL (SELECT res_type, res_id FROM resource"
    " WHERE res_type = k.t AND res_id = k.i AND NOT deleted OFFSET 0) r"
)
_CURRENT_SQL = (
    "SELECT r.res_type, r.res_id, r.version, r.last_updated, r.content, r.deleted FROM resource r"
    " JOIN (SELECT DISTINCT t, i FROM json_to_recordset(%s::json) AS k(t text, i text)) k"
    " ON r.res_type = k.t AND r.res_id = k.i ORDER BY r.res_type, r.res_id"
)


def _delete_sql(tables: tuple[str, ...]) -> str:
    # `= ANY(array)`, not `IN (SELECT … json …)`: a set-returning function is
    # always guessed at 100 rows, and with statistics that lag a fast-growing
    # table the planner then hashed every row of the type instead of probing
    # the primary key for the few ids.
    deletes = [f"DELETE FROM {name} WHERE res_type = %(type)s AND res_id = ANY(%(ids)s::text[])" for name in tables]
    ctes = ", ".join(f"d{i} AS ({statement})" for i, statement in enumerate(deletes[:-1]))
    return f"WITH {ctes} {deletes[-1]}" if ctes else deletes[-1]


class CurrentRow(NamedTuple):
    res_type: str
    res_id: str
    version: int
    last_updated: datetime
    content: Any
    deleted: bool


def claim_owners(conn: Connection, keys: Iterable[tuple[str, str, str]]) -> dict[tuple[str, str, str], str]:
    """(type, system, value) -> id of the resource holding that identifier, for the keys held."""
    wanted = set(keys)
    if not wanted:
        return {}
    if conn.dialect.name == "postgresql":
        pairs = [{"t": rtype, "v": value} for rtype, _system, value in wanted]
        rows = _driver_rows(conn, _CLAIMS_SQL, pairs)
    else:
        rows = [
            tuple(r)
            for clause in _in_lists(_grouped((t, v) for t, _s, v in wanted), CLAIM.c.res_type, CLAIM.c.value)
            for r in conn.execute(select(CLAIM.c.res_type, CLAIM.c.system, CLAIM.c.value, CLAIM.c.res_id).where(clause))
        ]
    # The lookup is by (type, value); another system's claim on the same value is not asked for.
    return {(t, s, v): i for t, s, v, i in rows if (t, s, v) in wanted}


def live_resources(conn: Connection, keys: Iterable[tuple[str, str]]) -> set[tuple[str, str]]:
    """The (type, id) keys naming a stored resource that is not deleted."""
    wanted = set(keys)
    if not wanted:
        return set()
    if conn.dialect.name == "postgresql":
        return {(t, i) for t, i in _driver_rows(conn, _LIVE_SQL, [{"t": t, "i": i} for t, i in wanted])}
    return {
        (r.res_type, r.res_id)
        for clause in _in_lists(_grouped(wanted), RESOURCE.c.res_type, RESOURCE.c.res_id)
        for r in conn.execute(select(RESOURCE.c.res_type, RESOURCE.c.res_id).where(clause, RESOURCE.c.deleted.is_(False)))
    }


def current_rows(conn: Connection, keys: Iterable[tuple[str, str]], *, lock: bool) -> list[CurrentRow]:
    """Current rows of the (type, id) keys that exist, in (type, id) order; with
    `lock`, locked FOR UPDATE on PostgreSQL, in that order for every caller."""
    wanted = sorted(set(keys))
    if not wanted:
        return []
    if conn.dialect.name == "postgresql":
        sql = _CURRENT_SQL + (" FOR UPDATE OF r" if lock else "")
        return [CurrentRow(*r) for r in _driver_rows(conn, sql, [{"t": t, "i": i} for t, i in wanted])]
    columns = (RESOURCE.c.res_type, RESOURCE.c.res_id, RESOURCE.c.version, RESOURCE.c.last_updated, RESOURCE.c.content, RESOURCE.c.deleted)
    rows = [
        CurrentRow(*r)
        for clause in _in_lists(_grouped(wanted), RESOURCE.c.res_type, RESOURCE.c.res_id)
        for r in conn.execute(select(*columns).where(clause))
    ]
    return sorted(rows, key=lambda r: (r.res_type, r.res_id))


def delete_rows_of(conn: Connection, tables: tuple[Table, ...], rtype: str, ids: list[str]) -> None:
    """Delete the rows of resources `rtype`/`ids` from each of `tables` (keyed
    by `res_type`, `res_id`): on PostgreSQL in one statement, one CTE per table."""
    if not ids:
        return
    if conn.dialect.name == "postgresql":
        conn.exec_driver_sql(_delete_sql(tuple(t.name for t in tables)), {"type": rtype, "ids": sorted(set(ids))})
        return
    for start in range(0, len(ids), _IN_LIMIT):
        chunk = ids[start : start + _IN_LIMIT]
        for table in tables:
            conn.execute(delete(table).where(table.c.res_type == rtype, table.c.res_id.in_(chunk)))


def _driver_rows(conn: Connection, sql: str, keys: list[dict[str, str]]) -> list[tuple]:
    # Straight to the driver (no statement compiled), on the unit's own connection and transaction.
    return [tuple(row) for row in conn.exec_driver_sql(sql, (orjson.dumps(keys).decode(),))]


def _grouped(pairs: Iterable[tuple[str, str]]) -> dict[str, set[str]]:
    groups: dict[str, set[str]] = {}
    for rtype, value in pairs:
        groups.setdefault(rtype, set()).add(value)
    return groups


def _in_lists(groups: dict[str, set[str]], type_col, value_col, *, limit: int = _IN_LIMIT) -> Iterator[ColumnElement[bool]]:
    """`(type = t1 AND value IN (…)) OR (type = t2 AND …)` clauses of at most `limit`
    values each, each arm an index range."""
    arms: list[ColumnElement[bool]] = []
    size = 0
    for rtype in sorted(groups):
        values = sorted(groups[rtype])
        for start in range(0, len(values), limit):
            chunk = values[start : start + limit]
            if arms and size + len(chunk) > limit:
                yield or_(*arms)
                arms, size = [], 0
            arms.append(and_(type_col == rtype, value_col.in_(chunk)))
            size += len(chunk)
    if arms:
        yield or_(*arms)
