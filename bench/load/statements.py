"""What PostgreSQL spent the load on, statement by statement
(`run.py --own-postgres --statements N`).

pg_stat_statements must be loaded when the server starts, which only a
cluster of the run's own allows: it is added to `shared_preload_libraries`,
created in the load's database, reset when the load starts and read when it
stops. Its times are the executor's wall time, CPU and waits together; on a
machine whose cores are full they rank statements by what they cost the
server, not by what they would cost alone.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import Engine, text

SERVER_SETTINGS = {"shared_preload_libraries": "pg_stat_statements", "pg_stat_statements.track": "top"}


@dataclass(frozen=True)
class Statement:
    query: str
    calls: int
    total_ms: float
    rows: int
    wal_bytes: int

    @property
    def mean_ms(self) -> float:
        return self.total_ms / self.calls if self.calls else 0.0


def enable(engine: Engine) -> None:
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("CREATE EXTENSION IF NOT EXISTS pg_stat_statements"))


def reset(engine: Engine) -> None:
    with engine.connect() as conn:
        conn.execute(text("SELECT pg_stat_statements_reset()"))
        conn.commit()


def read(engine: Engine) -> list[Statement]:
    """Every statement of this database since the reset, costliest first."""
    with engine.connect() as conn:
        rows = conn.execute(text(
            "SELECT query, calls, total_exec_time, rows, wal_bytes FROM pg_stat_statements "
            "WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database()) "
            "ORDER BY total_exec_time DESC"
        )).all()
    return [Statement(r.query, r.calls, r.total_exec_time, r.rows, int(r.wal_bytes)) for r in rows]


def write_csv(statements: list[Statement], path: Path) -> None:
    with path.open("w", newline="") as f:
        out = csv.writer(f)
        out.writerow(["total_ms", "calls", "mean_ms", "rows", "wal_bytes", "query"])
        for s in statements:
            out.writerow([f"{s.total_ms:.1f}", s.calls, f"{s.mean_ms:.3f}", s.rows, s.wal_bytes, s.query])


def shorten(query: str, width: int = 110) -> str:
    flat = " ".join(query.split())
    return flat if len(flat) <= width else flat[: width - 1] + "…"
