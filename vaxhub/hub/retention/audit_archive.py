"""Audit months past retention: archived to a file, then removed behind a checkpoint.

One month becomes `audit-YYYY-MM.ndjson.gz` in the archive folder: one line per
event, ordered by chain and sequence number, with every stored column and the
patients the event names (`audit_patient`), so the file alone answers "who saw
this person's record in March 2016". A sidecar `audit-YYYY-MM.json` holds the
file's sha256, its event count and, per chain, the first and last sequence
numbers and hashes it covers; the same goes into `audit_archive`.

Nothing is archived that does not verify: the month's events must continue each
chain exactly where its `audit_checkpoint` (or the genesis) left off, every hash
must recompute, and no event left in the database may come before the month's
last one in its chain. Only then, in the same transaction, the checkpoints move
to the month's last events and the month is dropped (PostgreSQL: its
partitions detached and dropped; SQLite: its rows deleted). `vaxhub audit
verify` then starts each chain at its checkpoint, and `verify_archives` walks
the files from the genesis to the checkpoints.
"""

from __future__ import annotations

import gzip
import hashlib
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import Connection, Engine, delete, func, insert, select, text, update

from vaxhub.hub.audit.tables import AuditArchiveRow, AuditCheckpointRow, AuditEventRow, AuditPatientRow
from vaxhub.hub.audit.trail import GENESIS, event_hash
from vaxhub.hub.retention import partitions
from vaxhub.hub.retention.months import Month
from vaxhub.hub.storage.engine import write_transaction

EVENT = AuditEventRow.__table__
PATIENT = AuditPatientRow.__table__
READ_BATCH = 2000


class ArchiveRefused(Exception):
    """The month cannot be archived as it is; nothing was changed."""


@dataclass
class ChainSpan:
    first_seq: int
    prev_hash: str
    last_seq: int
    last_hash: str

    def as_json(self) -> dict[str, Any]:
        return {"first_seq": self.first_seq, "prev_hash": self.prev_hash, "last_seq": self.last_seq, "last_hash": self.last_hash}


@dataclass
class MonthArchive:
    month: Month
    file_name: str
    sha256: str
    events: int
    chains: dict[int, ChainSpan] = field(default_factory=dict)


def archive_file_name(month: Month) -> str:
    return f"audit-{month}.ndjson.gz"


def months_before(conn: Connection, cutoff: datetime) -> dict[Month, str | None]:
    """Months wholly before `cutoff` still in the database, each with its partition (None on SQLite)."""
    if partitions.is_partitioned(conn):
        return {m: name for m, name in partitions.monthly(conn, "audit_event").items() if m.end <= cutoff}
    if conn.dialect.name == "postgresql":
        expr = func.to_char(EVENT.c.recorded, "YYYY-MM")
    else:
        expr = func.strftime("%Y-%m", EVENT.c.recorded)
    return {Month.parse(m): None for (m,) in conn.execute(select(expr).where(EVENT.c.recorded < cutoff).distinct())}


def events_in(conn: Connection, month: Month) -> int:
    return conn.execute(select(func.count()).select_from(EVENT).where(*_within(EVENT, month))).scalar_one()


def has_events(conn: Connection, month: Month) -> bool:
    return conn.execute(select(EVENT.c.seq).where(*_within(EVENT, month)).limit(1)).first() is not None


def archive_month(engine: Engine, month: Month, archive_dir: Path, now: datetime) -> MonthArchive:
    """Write `month` to its archive file, move the checkpoints, and drop the month."""
    archive_dir.mkdir(parents=True, exist_ok=True)
    final = archive_dir / archive_file_name(month)
    partial = final.with_name(final.name + ".partial")
    with write_transaction(engine) as conn:
        partitioned = partitions.is_partitioned(conn)
        if partitioned:
            partitions.limit_lock_waits(conn)
            if month in partitions.monthly(conn, "audit_event"):
                # No late writes into the month while it is read (there should be none).
                conn.execute(text(f"LOCK TABLE {partitions.partition_name('audit_event', month)} IN SHARE MODE"))
        if conn.execute(select(AuditArchiveRow.month).where(AuditArchiveRow.month == str(month))).first():
            raise ArchiveRefused(f"{month} was archived before and has events again; check the hub clocks")
        start = {r.chain: (r.seq, r.hash) for r in conn.execute(select(AuditCheckpointRow))}
        try:
            spans, events = _write_archive(conn, month, partial, start)
            _no_earlier_events_left(conn, month, spans)
            _fsync_file(partial)
            os.replace(partial, final)
        except BaseException:
            partial.unlink(missing_ok=True)
            raise
        digest = _sha256(final)
        archive = MonthArchive(month, final.name, digest, events, spans)
        _write_sidecar(archive_dir, archive)
        conn.execute(
            insert(AuditArchiveRow).values(
                month=str(month), file_name=final.name, sha256=digest, events=events,
                chains={str(c): s.as_json() for c, s in spans.items()}, archived_at=now,
            )
        )
        for chain, span in spans.items():
            values = {"seq": span.last_seq, "hash": span.last_hash, "archived_through": month.end, "updated": now}
            if chain in start:
                conn.execute(update(AuditCheckpointRow).where(AuditCheckpointRow.chain == chain).values(**values))
            else:
                conn.execute(insert(AuditCheckpointRow).values(chain=chain, **values))
        _remove_month(conn, month, partitioned)
    return archive


def drop_empty_month(engine: Engine, month: Month) -> None:
    """A partition past retention that holds no events: nothing to archive."""
    with write_transaction(engine) as conn:
        partitions.limit_lock_waits(conn)
        if has_events(conn, month):
            raise ArchiveRefused(f"{month} is no longer empty")
        _remove_month(conn, month, True)


def _within(table, month: Month) -> tuple:  # noqa: ANN001
    return (table.c.recorded >= month.start, table.c.recorded < month.end)


def _remove_month(conn: Connection, month: Month, partitioned: bool) -> None:
    for table in (PATIENT, EVENT):
        if partitioned and month in partitions.monthly(conn, table.name):
            partitions.drop_month(conn, table.name, month)
        else:
            conn.execute(delete(table).where(*_within(table, month)))


def _rows(conn: Connection, month: Month) -> Iterator[tuple[Any, list[str]]]:
    """The month's events in chain order, each with the patients it names (two ordered streams merged)."""
    events = conn.execute(
        select(EVENT).where(*_within(EVENT, month)).order_by(EVENT.c.chain, EVENT.c.seq).execution_options(yield_per=READ_BATCH)
    )
    named = conn.execute(
        select(PATIENT.c.chain, PATIENT.c.seq, PATIENT.c.patient_id).where(*_within(PATIENT, month))
        .order_by(PATIENT.c.chain, PATIENT.c.seq, PATIENT.c.patient_id).execution_options(yield_per=READ_BATCH)
    )
    pending = next(named, None)
    for event in events:
        patients = []
        while pending is not None and (pending.chain, pending.seq) < (event.chain, event.seq):
            pending = next(named, None)  # an index row without its event: nothing to keep it with
        while pending is not None and (pending.chain, pending.seq) == (event.chain, event.seq):
            patients.append(pending.patient_id)
            pending = next(named, None)
        yield event, patients


def _write_archive(conn: Connection, month: Month, path: Path, start: dict[int, tuple[int, str]]) -> tuple[dict[int, ChainSpan], int]:
    spans: dict[int, ChainSpan] = {}
    events = 0
    with path.open("wb") as raw, gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0) as out:
        for row, patients in _rows(conn, month):
            span = spans.get(row.chain)
            seq, prev = (span.last_seq, span.last_hash) if span else start.get(row.chain, (0, GENESIS))
            where = f"{month}: chain {row.chain} event {row.seq} ({row.event_id})"
            if row.seq != seq + 1 or row.prev_hash != prev:
                raise ArchiveRefused(f"{where} does not continue the chain after event {seq}; run `vaxhub audit verify`")
            digest = event_hash(row.prev_hash, row.chain, row.seq, row.event_id, row.recorded, row.action, row.outcome, row.client_id, row.content)
            if digest != row.hash:
                raise ArchiveRefused(f"{where} does not match its hash (altered); it is kept for investigation")
            out.write(orjson.dumps(_line(row, patients)) + b"\n")
            if span is None:
                spans[row.chain] = ChainSpan(row.seq, row.prev_hash, row.seq, row.hash)
            else:
                span.last_seq, span.last_hash = row.seq, row.hash
            events += 1
    return spans, events


def _line(row: Any, patients: list[str]) -> dict[str, Any]:
    return {
        "chain": row.chain, "seq": row.seq, "event_id": row.event_id, "recorded": row.recorded.isoformat(),
        "action": row.action, "outcome": row.outcome, "client_id": row.client_id, "content": row.content,
        "prev_hash": row.prev_hash, "hash": row.hash, "patients": patients,
    }


def _no_earlier_events_left(conn: Connection, month: Month, spans: dict[int, ChainSpan]) -> None:
    """A chain archived up to event n must keep no event ≤ n in the database (clocks out of step
    between hub machines could put event n+1 in the month and event n in the next)."""
    for chain, span in spans.items():
        for outside in (EVENT.c.recorded >= month.end, EVENT.c.recorded < month.start):
            first = conn.execute(select(func.min(EVENT.c.seq)).where(EVENT.c.chain == chain, outside)).scalar_one()
            if first is not None and first <= span.last_seq:
                raise ArchiveRefused(
                    f"{month}: chain {chain} event {first} is recorded outside the month but precedes its event {span.last_seq}; "
                    "archiving would split the chain"
                )


def _write_sidecar(archive_dir: Path, archive: MonthArchive) -> None:
    sidecar = archive_dir / archive.file_name.replace(".ndjson.gz", ".json")
    body = {
        "month": str(archive.month), "file": archive.file_name, "sha256": archive.sha256, "events": archive.events,
        "chains": {str(c): s.as_json() for c, s in sorted(archive.chains.items())},
    }
    sidecar.write_bytes(orjson.dumps(body, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS))
    _fsync_file(sidecar)


def _fsync_file(path: Path) -> None:
    with path.open("rb+") as f:
        os.fsync(f.fileno())
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


# ----------------------------------------------------------------- verification


@dataclass
class ArchiveReport:
    months: int
    events: int
    problems: list[str]

    @property
    def ok(self) -> bool:
        return not self.problems


def verify_archives(engine: Engine, archive_dir: Path) -> ArchiveReport:
    """Every archived month: its file is there with its recorded sha256, every event's hash
    recomputes, each chain runs on from the genesis through the months without a gap, and
    ends where the live chain's checkpoint says it does."""
    with engine.connect() as conn:
        archives = list(conn.execute(select(AuditArchiveRow).order_by(AuditArchiveRow.month)))
        checkpoints = {r.chain: (r.seq, r.hash) for r in conn.execute(select(AuditCheckpointRow))}
    problems: list[str] = []
    reached: dict[int, tuple[int, str]] = {}
    events = 0
    for archive in archives:
        path = archive_dir / archive.file_name
        if not path.is_file():
            problems.append(f"{archive.month}: archive file {path} is missing")
            continue
        if _sha256(path) != archive.sha256:
            problems.append(f"{archive.month}: {path.name} does not match its recorded sha256 (altered or damaged)")
            continue
        in_file = 0
        with gzip.open(path, "rb") as lines:
            for line in lines:
                e = orjson.loads(line)
                in_file += 1
                chain = e["chain"]
                seq, prev = reached.get(chain, (0, GENESIS))
                where = f"{archive.month}: chain {chain} event {e['seq']}"
                if e["seq"] != seq + 1 or e["prev_hash"] != prev:
                    problems.append(f"{where} does not continue the chain after event {seq}")
                recorded = datetime.fromisoformat(e["recorded"])
                digest = event_hash(e["prev_hash"], chain, e["seq"], e["event_id"], recorded, e["action"], e["outcome"], e["client_id"], e["content"])
                if digest != e["hash"]:
                    problems.append(f"{where} does not match its hash")
                reached[chain] = (e["seq"], e["hash"])
        events += in_file
        if in_file != archive.events:
            problems.append(f"{archive.month}: {in_file} events in the file, {archive.events} recorded")
    for chain in sorted(set(checkpoints) | set(reached)):
        if reached.get(chain, (0, GENESIS)) != checkpoints.get(chain, (0, GENESIS)):
            problems.append(f"chain {chain}: the archives end at event {reached.get(chain, (0,))[0]} but the checkpoint is at {checkpoints.get(chain, (0,))[0]}")
    return ArchiveReport(len(archives), events, problems)
