"""Monthly partitions of the audit trail on PostgreSQL.

`audit_event` and `audit_patient` are partitioned by RANGE on `recorded`, one
partition per calendar month (`audit_event_y2026m11`), plus a DEFAULT
partition (`audit_event_default`) so that an insert never fails for want of a
partition. New months are made as plain tables and then ATTACHed, which takes
only a SHARE UPDATE EXCLUSIVE lock on the parent: audit writes go on. Rows
that landed in DEFAULT (a clock far off, or months not created in time) are
moved into a partition of their own month in the same transaction as it is
attached. Dropping a month DETACHes it first (a brief ACCESS EXCLUSIVE lock
on the parent, bounded by `lock_timeout`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, text

from vaxhub.hub.audit.tables import AuditEventRow, AuditPatientRow
from vaxhub.hub.retention.months import Month

AUDIT_TABLES = {t.name: [c.name for c in t.columns] for t in (AuditEventRow.__table__, AuditPatientRow.__table__)}
LOCK_TIMEOUT = "5s"  # never queue audit writes behind maintenance for longer
_BOUND = re.compile(r"FOR VALUES FROM \('([^']+)'\) TO \('([^']+)'\)")


@dataclass(frozen=True)
class Partition:
    table: str  # the partitioned parent
    name: str
    month: Month | None  # None for DEFAULT (or a partition that is not one calendar month)


def partition_name(table: str, month: Month) -> str:
    return f"{table}_{month.suffix}"


def default_partition(table: str) -> str:
    return f"{table}_default"


def is_partitioned(conn: Connection, table: str = "audit_event") -> bool:
    if conn.dialect.name != "postgresql":
        return False
    return conn.execute(
        text("SELECT EXISTS (SELECT 1 FROM pg_partitioned_table WHERE partrelid = to_regclass(:t))"), {"t": table}
    ).scalar_one()


def partitions(conn: Connection, table: str) -> list[Partition]:
    rows = conn.execute(
        text(
            "SELECT c.relname, pg_get_expr(c.relpartbound, c.oid) FROM pg_inherits i "
            "JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = to_regclass(:t) ORDER BY c.relname"
        ),
        {"t": table},
    )
    found = []
    for name, bound in rows:
        match = _BOUND.fullmatch(bound or "")
        month = None
        if match:
            start, end = (datetime.fromisoformat(b) for b in match.groups())
            candidate = Month.of(start)
            month = candidate if (start, end) == (candidate.start, candidate.end) else None
        found.append(Partition(table, name, month))
    return found


def monthly(conn: Connection, table: str) -> dict[Month, str]:
    return {p.month: p.name for p in partitions(conn, table) if p.month is not None}


def months_in_default(conn: Connection, table: str = "audit_event") -> dict[Month, int]:
    """Rows waiting in the DEFAULT partition, by month."""
    rows = conn.execute(
        text(f"SELECT date_trunc('month', recorded), count(*) FROM {default_partition(table)} GROUP BY 1 ORDER BY 1")
    )
    return {Month.of(start): n for start, n in rows}


def limit_lock_waits(conn: Connection) -> None:
    conn.execute(text(f"SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'"))


def attach_month(conn: Connection, table: str, month: Month) -> int:
    """Create `month`'s partition of `table`, moving its rows out of DEFAULT; returns the rows moved."""
    name, columns = partition_name(table, month), ", ".join(AUDIT_TABLES[table])
    bounds = f"FROM ('{month.start.isoformat(sep=' ')}') TO ('{month.end.isoformat(sep=' ')}')"
    conn.execute(text(f"CREATE TABLE {name} (LIKE {table} INCLUDING DEFAULTS)"))
    moved = conn.execute(
        text(
            f"WITH moved AS (DELETE FROM {default_partition(table)} WHERE recorded >= :start AND recorded < :end "
            f"RETURNING {columns}) INSERT INTO {name} ({columns}) SELECT {columns} FROM moved"
        ),
        {"start": month.start, "end": month.end},
    ).rowcount
    conn.execute(text(f"ALTER TABLE {table} ATTACH PARTITION {name} FOR VALUES {bounds}"))
    return moved


def drop_month(conn: Connection, table: str, month: Month) -> None:
    name = partition_name(table, month)
    conn.execute(text(f"ALTER TABLE {table} DETACH PARTITION {name}"))
    conn.execute(text(f"DROP TABLE {name}"))
