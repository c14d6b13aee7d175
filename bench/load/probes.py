"""What the load test reads from the hub's database: stored Immunizations,
outbox depth and lag, and whether acknowledged records are stored and checked.

Cheap on purpose (index-only counts): the probe runs every few seconds on the
same two cores as the hub.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timezone

from sqlalchemy import Engine, bindparam, text

CHUNK = 5000


@dataclass(frozen=True)
class Sample:
    at: float  # monotonic seconds
    immunizations: int
    verification_queued: int
    verification_oldest_s: float  # age of the oldest job waiting, 0 when none
    link_queued: int
    link_oldest_s: float
    goldens_stale: int
    db_active: int  # backends of this database running a statement
    db_waiting_lock: int
    verified: int = 0  # verification jobs done (all time)
    linked: int = 0  # master patient index records linked (all time)

    @property
    def outbox_depth(self) -> int:
        return self.verification_queued + self.link_queued + self.goldens_stale


def _utcnow() -> datetime:
    return datetime.now(timezone.utc).replace(tzinfo=None)


def sample(engine: Engine, at: float) -> Sample:
    now = _utcnow()
    with engine.connect() as conn:
        imm = conn.execute(text("SELECT count(*) FROM resource WHERE res_type = 'Immunization'")).scalar_one()
        vq, voldest = conn.execute(text(
            "SELECT count(*), min(enqueued_at) FROM verification_job WHERE state = 'queued'"
        )).one()
        lq, loldest = conn.execute(text("SELECT count(*), min(queued_at) FROM mpi_record WHERE state = 'queued'")).one()
        stale = conn.execute(text("SELECT count(*) FROM mpi_person WHERE golden_stale")).scalar_one()
        verified = conn.execute(text("SELECT count(*) FROM verification_job WHERE state = 'done'")).scalar_one()
        linked = conn.execute(text("SELECT count(*) FROM mpi_record WHERE state = 'linked'")).scalar_one()
        active, waiting = conn.execute(text(
            "SELECT count(*) FILTER (WHERE state = 'active'), count(*) FILTER (WHERE wait_event_type = 'Lock') "
            "FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )).one()
    return Sample(
        # A link held for its registry answer is due later (`--link-wait`): its age counts from then.
        at, imm, vq, (now - voldest).total_seconds() if voldest else 0.0, lq, max(0.0, (now - loldest).total_seconds()) if loldest else 0.0,
        stale, active, waiting, verified, linked,
    )


def lock_waits(engine: Engine) -> list[str]:
    """The statements of this database's backends waiting for a lock right now (their first words)."""
    with engine.connect() as conn:
        rows = conn.execute(text(
            "SELECT wait_event, regexp_replace(left(query, 90), '\\s+', ' ', 'g') FROM pg_stat_activity "
            "WHERE datname = current_database() AND wait_event_type = 'Lock' AND pid <> pg_backend_pid()"
        )).all()
    return [f"{event}: {query}" for event, query in rows]


def vacuuming(engine: Engine) -> list[tuple[str, str]]:
    """(table, phase) for each table of this database a (auto)vacuum is working on right now."""
    with engine.connect() as conn:
        rows = conn.execute(text(
            "SELECT relid::regclass::text, phase FROM pg_stat_progress_vacuum WHERE datname = current_database()"
        )).all()
    return [(table, phase) for table, phase in rows]


def server_process_pids(engine: Engine) -> list[int]:
    """PostgreSQL's own processes that write for every database: the checkpointer,
    the WAL writer and the background writer (their CPU grows with the WAL), and
    autovacuum's (a worker that comes and goes between two samples is missed)."""
    with engine.connect() as conn:
        return list(conn.execute(text(
            "SELECT pid FROM pg_stat_activity WHERE backend_type IN "
            "('checkpointer', 'walwriter', 'background writer', 'autovacuum launcher', 'autovacuum worker')"
        )).scalars())


@dataclass(frozen=True)
class Wal:
    at: float
    bytes: float
    full_page_images: int
    records: int


def wal_totals(engine: Engine) -> Wal | None:
    """The server's WAL counters (pg_stat_wal, PostgreSQL 14+); None where unavailable."""
    try:
        with engine.connect() as conn:
            row = conn.execute(text("SELECT wal_bytes, wal_fpi, wal_records FROM pg_stat_wal")).one()
    except Exception:  # noqa: BLE001 - an older server, or not PostgreSQL
        return None
    return Wal(time.time(), float(row.wal_bytes), int(row.wal_fpi), int(row.wal_records))


def backends(engine: Engine) -> dict[int, str]:
    """PostgreSQL server processes serving this database (for their CPU time), each
    with the application_name its client gave; autovacuum's are the server's."""
    with engine.connect() as conn:
        return {pid: name or "" for pid, name in conn.execute(text(
            "SELECT pid, application_name FROM pg_stat_activity "
            "WHERE datname = current_database() AND backend_type <> 'autovacuum worker'"
        ))}


def _chunks(items: list, size: int = CHUNK) -> Iterable[list]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


def stored_ids(engine: Engine, res_type: str, ids: Iterable[str]) -> set[str]:
    """Which of `ids` are stored (current version not deleted)."""
    wanted = sorted(set(ids))
    found: set[str] = set()
    query = text("SELECT res_id FROM resource WHERE res_type = :t AND NOT deleted AND res_id IN :ids").bindparams(
        bindparam("ids", expanding=True))
    with engine.connect() as conn:
        for chunk in _chunks(wanted):
            found.update(conn.execute(query, {"t": res_type, "ids": chunk}).scalars())
    return found


def ids_by_identifier(engine: Engine, res_type: str, identifiers: Iterable[tuple[str, str]]) -> dict[tuple[str, str], str]:
    """(system, value) → id of the stored resource holding that business identifier."""
    wanted = sorted(set(identifiers))
    wanted_set = set(wanted)
    found: dict[tuple[str, str], str] = {}
    query = text(
        "SELECT c.system, c.value, c.res_id FROM identifier_claim c JOIN resource r ON r.res_type = c.res_type AND r.res_id = c.res_id "
        "WHERE c.res_type = :t AND NOT r.deleted AND c.value IN :values"
    ).bindparams(bindparam("values", expanding=True))
    with engine.connect() as conn:
        for chunk in _chunks(wanted):
            for row in conn.execute(query, {"t": res_type, "values": [v for _, v in chunk]}):
                if (row.system, row.value) in wanted_set:
                    found[(row.system, row.value)] = row.res_id
    return found


def verification_states(engine: Engine, patient_ids: Iterable[str]) -> Counter:
    """For each Patient: its job's state (done / dead / queued) with the latest
    result (`done:verified`, `done:mismatch`, …), or `no job`."""
    wanted = sorted(set(patient_ids))
    states: Counter = Counter()
    query = text("SELECT patient_id, state, result_status FROM verification_job WHERE patient_id IN :ids").bindparams(
        bindparam("ids", expanding=True))
    seen = 0
    with engine.connect() as conn:
        for chunk in _chunks(wanted):
            for row in conn.execute(query, {"ids": chunk}):
                states[f"{row.state}:{row.result_status}" if row.state == "done" else row.state] += 1
                seen += 1
    if len(wanted) > seen:
        states["no job"] += len(wanted) - seen
    return states


def link_states(engine: Engine, patient_ids: Iterable[str]) -> Counter:
    """For each Patient: its master patient index record's state (linked / queued / failed), or `no record`."""
    wanted = sorted(set(patient_ids))
    states: Counter = Counter()
    query = text("SELECT state FROM mpi_record WHERE record_id IN :ids").bindparams(bindparam("ids", expanding=True))
    seen = 0
    with engine.connect() as conn:
        for chunk in _chunks(wanted):
            for state in conn.execute(query, {"ids": chunk}).scalars():
                states[state] += 1
                seen += 1
    if len(wanted) > seen:
        states["no record"] += len(wanted) - seen
    return states


def leased_by(engine: Engine, worker: str) -> list[str]:
    """Patients whose verification job `worker` holds a lease on right now."""
    with engine.connect() as conn:
        return list(conn.execute(text(
            "SELECT patient_id FROM verification_job WHERE state = 'queued' AND leased_by = :w AND available_at > :now"
        ), {"w": worker, "now": _utcnow()}).scalars())


def verified_patient_ids(engine: Engine, patient_ids: list[str]) -> list[str]:
    """Those of `patient_ids` whose identity the population registry has verified."""
    query = text("SELECT patient_id FROM verification_job WHERE result_status = 'verified' AND patient_id IN :ids").bindparams(
        bindparam("ids", expanding=True))
    found: set[str] = set()
    with engine.connect() as conn:
        for chunk in _chunks(patient_ids):
            found.update(conn.execute(query, {"ids": chunk}).scalars())
    return [p for p in patient_ids if p in found]
