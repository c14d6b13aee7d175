"""Replace the search-index rows of updated resources by their difference.

An update used to delete every index row and identifier claim of the old
version and insert all of the new version's. A golden Patient that gains one
linked record changes one `link` reference row, yet its name, identifier,
date and tag rows went out and back in with it: dead tuples, index entries
and WAL for rows that did not change. Here the stored rows are read (each
table probed by its `(res_type, res_id)` key prefix), only the rows that
vanished are deleted, by primary key, and only the new ones are returned to
be inserted with the unit's other rows.

The stored rows are read rather than derived again from the old version's
content so that rows written by an earlier extractor (search parameters
change between releases) are still found and replaced.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from sqlalchemy import Connection, Table, and_, bindparam, delete, select

from vaxhub.hub.storage.indexer import IndexRows
from vaxhub.hub.storage.lists import one_of

_KINDS = ("token", "string", "date", "reference", "claims")


def replace_index_rows(conn: Connection, tables: tuple[Table, ...], rtype: str, ids: list[str], new: IndexRows) -> IndexRows:
    """Delete the stored rows of `rtype`/`ids` that `new` does not hold and
    return the rows of `new` that are not stored yet.

    `tables` are the tables of `IndexRows`' kinds, in its field order (token,
    string, date, reference, claims); each is keyed by `res_type`, `res_id`
    or carries them (the claims)."""
    if len(tables) != len(_KINDS):
        raise ValueError(f"one table per kind of index row: {', '.join(_KINDS)}")
    added = IndexRows()
    if not ids:
        return added
    for kind, table in zip(_KINDS, tables):
        columns = tuple(c.name for c in table.columns)
        wanted: dict[tuple, dict[str, Any]] = {tuple(row[c] for c in columns): row for row in getattr(new, kind)}
        stored = {tuple(r) for r in conn.execute(_stored(table), {"type": rtype, "ids": ids})}
        vanished = [dict(zip(columns, row)) for row in stored if row not in wanted]
        if vanished:
            conn.execute(_by_key(table), [{f"k_{c.name}": row[c.name] for c in table.primary_key} for row in vanished])
        getattr(added, kind).extend(row for key, row in wanted.items() if key not in stored)
    return added


@lru_cache(maxsize=None)
def _stored(table: Table):  # noqa: ANN202 - a SQLAlchemy Select
    return select(*table.columns).where(table.c.res_type == bindparam("type"), one_of(table.c.res_id, "ids"))


@lru_cache(maxsize=None)
def _by_key(table: Table):  # noqa: ANN202 - a SQLAlchemy Delete
    return delete(table).where(and_(*(c == bindparam(f"k_{c.name}") for c in table.primary_key)))
