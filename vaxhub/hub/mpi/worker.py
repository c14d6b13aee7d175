"""The MPI worker behind `vaxhub mpi work`: links queued records in batches.

Each pass:

1. reads the verification results recorded since its last pass
   (`verification_result` by id, from a cursor kept in `mpi_cursor`, with a
   look-back for results that committed late) and re-queues every record
   whose registry answer changed, so a CCCD verified today links the record
   deterministically today; the verification code is not touched;
2. claims up to `batch` queued records, oldest first, and links them in one
   transaction under the index's lock: one commit, one AuditEvent naming
   every site Patient linked and every person touched, one update marking
   those persons' golden Patients stale. The lock is taken before the
   claim, which on PostgreSQL is `FOR UPDATE SKIP LOCKED` on each record's
   Patient row and queue row (the order a site's write takes them): two
   workers never claim one record, a worker waiting for the lock holds no
   row a site may be writing, and a record a site is writing right now
   waits for the next pass. What deciding the links reads of the index
   (candidates, verified holders, term counts, persons' records) is read
   once for the whole batch (`BatchReads`), and the new persons, blocks and
   links go out together (`LinkWrites`): a pass on a busy machine waits on
   round trips more than on CPU. The records link one after another without
   savepoints: one that fails
   rolls the batch back, is retried later with backoff, then left as
   `failed` with its error, and the others are linked again without it; if
   the batch itself cannot commit, its records are linked one by one;
3. rebuilds the golden Patients marked stale, `limit` per transaction (the
   persons claimed `FOR UPDATE SKIP LOCKED`, so two workers split them, and
   without the lock, so one worker rebuilds while another links): a person
   receiving three records in one pass is rewritten once. A link batch
   marking a person waits for a rebuild holding it, so the limit is kept
   small. A long-running worker (`run` without `until_idle`, as `vaxhub mpi
   work` runs it) rebuilds them on a second thread instead, so that the
   linking passes, which hold the index's lock, do not stop for them.

Old-CMND look-ups at the population registry (when one is configured) are
made before the transaction, for the records the pass may claim, several at
once and waited on for at most two seconds (`OldIdLookups`); the claim is
then limited to the records answered, so no registry call runs under the
lock and a slow or hung call holds back only its own record.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import and_, bindparam, insert, select, update

from vaxhub.adapters.ports import PopulationRegistry
from vaxhub.hub.mpi.enqueue import queue_records
from vaxhub.hub.mpi.frequencies import TermChanges
from vaxhub.hub.mpi.index import RECORD, LinkWrites, PersonIndex
from vaxhub.hub.mpi.golden import is_golden
from vaxhub.hub.mpi.linker import LINKER, Linker, RegistryView, evidence_of, mark_failed, read_claimed, registry_views
from vaxhub.hub.mpi.old_ids import OldIdLookups
from vaxhub.hub.mpi.reads import BatchReads
from vaxhub.hub.mpi.service import MasterPatientIndex, linker_interaction
from vaxhub.hub.observability.request_context import bound_request_id
from vaxhub.hub.storage.engine import write_transaction
from vaxhub.hub.storage.lists import one_of
from vaxhub.hub.storage.mpi_tables import MpiCursorRow
from vaxhub.hub.storage.outbox_tables import VerificationResultRow
from vaxhub.hub.storage.store import RESOURCE, utcnow

log = logging.getLogger(__name__)
CURSOR = MpiCursorRow.__table__
RESULT = VerificationResultRow.__table__
VERIFICATION_CURSOR = "verification_result"
LOOK_BACK = 1000  # result ids re-read each pass: a transaction may commit after a later one


_LINKS_OF = select(RECORD.c.record_id, RECORD.c.state, RECORD.c.queued_at, RECORD.c.verified_cccd, RECORD.c.registry_cccd).where(
    one_of(RECORD.c.record_id, "records"))


def watch_verifications(engine, *, limit: int = 5000, seen: set[int] | None = None) -> int:
    """Queue records whose registry answer differs from what their link used; returns how many.

    `seen` (kept by a worker across its passes) holds the result ids already
    acted on: the look-back re-reads them only to find late commits among
    them, so they are not checked again (a new worker checks its first
    look-back once more, which changes nothing)."""
    with write_transaction(engine) as conn:
        position = conn.execute(select(CURSOR.c.position).where(CURSOR.c.name == VERIFICATION_CURSOR)).scalar()
        floor = max((position or 0) - LOOK_BACK, 0)
        rows = conn.execute(
            select(RESULT.c.id, RESULT.c.patient_id).where(RESULT.c.id > floor).order_by(RESULT.c.id).limit(limit)
        ).all()
        if seen is not None:
            seen.difference_update([i for i in seen if i <= floor])
            top = max((r.id for r in rows), default=None)
            rows = [r for r in rows if r.id not in seen]
            seen.update(r.id for r in rows)
            if not rows:
                _advance(conn, position, top)
                return 0
        if not rows:
            return 0
        patients = sorted({r.patient_id for r in rows})
        # A Patient the index has never seen (written by a path without the
        # link outbox) is queued on its first new result only.
        fresh = {r.patient_id for r in rows if r.id > (position or 0)}
        linked = {r.record_id: r for r in conn.execute(_LINKS_OF, {"records": patients})}
        now = utcnow()
        views = registry_views(conn, patients)
        changed = []
        for patient_id in patients:
            held = linked.get(patient_id)
            view = views.get(patient_id, RegistryView(None, None))
            if (held is None and patient_id in fresh) or (held is not None and held.state == "linked" and (
                view.verified_cccd != held.verified_cccd or (view.registry_cccd and view.registry_cccd != held.registry_cccd)
            )):
                changed.append(patient_id)
            elif held is not None and held.state == "queued" and held.queued_at > now and patient_id in fresh:
                changed.append(patient_id)  # held back for this answer (`LinkEnqueuer.verification_wait`): due now
        if changed:
            queue_records(conn, changed, now)
        _advance(conn, position, max(r.id for r in rows))
        return len(changed)


def _advance(conn, position: int | None, top: int | None) -> None:  # noqa: ANN001 - a connection
    if top is None:
        return
    if position is None:
        conn.execute(insert(CURSOR).values(name=VERIFICATION_CURSOR, position=top))
    elif top > position:
        conn.execute(update(CURSOR).where(CURSOR.c.name == VERIFICATION_CURSOR).values(position=top))


def _claim_statement(postgresql: bool, among: bool):
    due = [RECORD.c.state == "queued", RECORD.c.queued_at <= bindparam("now")]
    if among:
        due.append(one_of(RECORD.c.record_id, "among"))
    columns = (RECORD.c.record_id, RECORD.c.attempts, RECORD.c.request_id)
    if not postgresql:  # one writer at a time: the linker re-checks each record's state
        return select(*columns).where(*due).order_by(RECORD.c.queued_at).limit(bindparam("limit"))
    patient = and_(RESOURCE.c.res_type == "Patient", RESOURCE.c.res_id == RECORD.c.record_id)
    return (select(*columns).select_from(RECORD.join(RESOURCE, patient)).where(*due).order_by(RECORD.c.queued_at)
            .limit(bindparam("limit")).with_for_update(of=[RESOURCE, RECORD], skip_locked=True))


def _orphan_statement(among: bool):
    """Queued records without any Patient row (nothing for a site to lock first)."""
    due = [RECORD.c.state == "queued", RECORD.c.queued_at <= bindparam("now"),
           ~select(RESOURCE.c.res_id).where(RESOURCE.c.res_type == "Patient", RESOURCE.c.res_id == RECORD.c.record_id).exists()]
    if among:
        due.append(one_of(RECORD.c.record_id, "among"))
    return (select(RECORD.c.record_id, RECORD.c.attempts, RECORD.c.request_id).where(*due).order_by(RECORD.c.queued_at)
            .limit(bindparam("limit")).with_for_update(skip_locked=True))


_CLAIM = {(pg, among): _claim_statement(pg, among) for pg in (True, False) for among in (True, False)}
_ORPHANS = {among: _orphan_statement(among) for among in (True, False)}


def claim_queued(conn, limit: int, now, among: list[str] | None = None) -> list:
    """Queued records due by `now` (only those in `among`, if given), oldest
    first; on PostgreSQL locked until the caller's transaction ends, and
    records another transaction holds are skipped."""
    params = {"now": now, "limit": limit}
    if among is not None:
        if not among:
            return []
        params["among"] = among
    postgresql = conn.dialect.name == "postgresql"
    rows = list(conn.execute(_CLAIM[(postgresql, among is not None)], params))
    if postgresql and len(rows) < limit:
        rows += conn.execute(_ORPHANS[among is not None], {**params, "limit": limit - len(rows)}).all()
    return rows


@dataclass
class _RecordFailed(Exception):
    """One record of a batch failed to link; the batch is rolled back."""

    record_id: str
    attempts: int
    request_id: str | None
    error: Exception
    claimed: list[str]


class LinkWorker:
    def __init__(self, mpi: MasterPatientIndex, *, batch: int = 100, max_attempts: int = 5, backoff_seconds: float = 2.0):
        self.mpi = mpi
        self.batch = batch
        self.max_attempts = max_attempts
        self.backoff_seconds = backoff_seconds
        self.linked = 0
        self.failed = 0
        self._seen_results: set[int] = set()  # verification results already acted on (see watch_verifications)
        self._lookups: OldIdLookups | None = None  # old-CMND look-ups, made on the worker's own threads

    def run(self, stop: threading.Event | None = None, *, until_idle: bool = False, poll_seconds: float = 0.5,
            on_batch: Callable[[int], None] | None = None) -> int:
        """Work until `stop` is set (or, with `until_idle`, until nothing is queued); returns records linked.

        Until idle, each pass rebuilds the goldens it made stale before the
        next; otherwise a second thread rebuilds them while passes link."""
        stop = stop or threading.Event()
        halt = threading.Event()  # this run is over (stopped, or failed): the golden thread ends too
        goldens = None
        if not until_idle:
            goldens = threading.Thread(target=self._rebuild_goldens_until, args=(stop, halt, poll_seconds), name="mpi-goldens", daemon=True)
            goldens.start()
        try:
            while not stop.is_set():
                done = self.run_once(rebuild_goldens=goldens is None)
                if on_batch and done:
                    on_batch(done)
                if done == 0:
                    if until_idle:
                        break
                    stop.wait(poll_seconds)
        finally:
            halt.set()
            if goldens is not None:
                goldens.join()
            if self._lookups is not None:
                self._lookups.close()
                self._lookups = None
        return self.linked

    def _rebuild_goldens_until(self, stop: threading.Event, halt: threading.Event, poll_seconds: float) -> None:
        while not (stop.is_set() or halt.is_set()):
            try:
                rebuilt = self.refresh_stale()
            except Exception:  # a defect or a lost database: the persons stay marked stale for the next try
                log.exception("rebuilding golden Patients failed")
                rebuilt = 0
            if not rebuilt:
                halt.wait(poll_seconds)

    def run_once(self, *, rebuild_goldens: bool = True) -> int:
        watch_verifications(self.mpi.engine, seen=self._seen_results)
        now = utcnow()
        linker = self.mpi.linker()
        old_ids: dict[str, str | None] = {}
        with self.mpi.engine.connect() as conn:
            # Twice the batch: a second worker claims the records after the first one's.
            due = list(conn.execute(
                select(RECORD.c.record_id).where(RECORD.c.state == "queued", RECORD.c.queued_at <= now)
                .order_by(RECORD.c.queued_at).limit(2 * self.batch)
            ).scalars())
            if due and linker.registry is not None:
                old_ids, waiting = self._old_id_lookups(linker.registry).resolve(
                    conn, due, lambda ids: {i for i, view in registry_views(conn, ids).items() if view.registry_cccd})
                due = [record_id for record_id in due if record_id not in waiting]  # their answer is for a later pass
        done = self.link_batch(linker, now, among=due if linker.registry is not None else None, old_ids=old_ids) if due else 0
        return done + (self.refresh_stale() if rebuild_goldens else 0)

    def _old_id_lookups(self, registry: PopulationRegistry) -> OldIdLookups:
        if self._lookups is None or self._lookups.registry is not registry:
            self._lookups = OldIdLookups(registry)
        return self._lookups

    def link_batch(self, linker: Linker, now, *, among: list[str] | None = None, old_ids: dict[str, str | None] | None = None) -> int:
        """Claim and link up to `batch` queued records in one transaction; returns how many were claimed.

        The records link one after another with no savepoint between them (two
        statements fewer per record, where round trips are what a pass waits
        on): a record that fails rolls the whole batch back, is set aside for a
        retry with backoff, and the others are linked again without it."""
        try:
            return self._link_batch(linker, now, among=among, old_ids=old_ids)
        except _RecordFailed as failed:
            log.error("linking Patient/%s failed", failed.record_id, exc_info=failed.error)
            with bound_request_id(failed.request_id), write_transaction(self.mpi.engine) as conn:
                self._mark_failed(conn, failed.record_id, failed.attempts, failed.error)
            self.failed += 1
            rest = [record_id for record_id in failed.claimed if record_id != failed.record_id]
            return 1 + (self.link_batch(linker, now, among=rest, old_ids=old_ids) if rest else 0)

    def _link_batch(self, linker: Linker, now, *, among: list[str] | None, old_ids: dict[str, str | None] | None) -> int:
        old_ids = old_ids or {}
        interaction = linker_interaction(what="link")
        claimed: list = []
        linked = 0
        try:
            with self.mpi.store.writer(context=interaction) as w:
                index = PersonIndex(w, LINKER, inline_golden=False)
                # The lock first: a worker waiting for it holds no Patient row a site may be writing.
                index.lock()
                claimed = claim_queued(w.conn, self.batch, now, among)
                stale: set[str] = set()
                events: list[dict] = []
                terms = TermChanges()
                read = read_claimed(w.conn, [row[0] for row in claimed])
                # What deciding the batch's links reads of the index, read once for all of
                # them; their writes kept and sent together (before any other read).
                writes = LinkWrites()
                reads = BatchReads(w.conn, linker.model, {i: evidence_of(f, f.state, old_ids.get(i)) for i, f in read.items()
                                                          if f.content is not None and not is_golden(f.content)},
                                   before=lambda: writes.write(w.conn))
                for record_id, attempts, request_id in claimed:
                    with bound_request_id(request_id):  # the request that queued it, in this record's log lines
                        log.debug("linking Patient/%s, attempt %s", record_id, attempts + 1)
                        touched: set[str] = set()
                        kept: list[dict] = []
                        try:
                            outcome = linker.link_record(w, record_id, old_id_cccd=old_ids.get(record_id), only_if_queued=True,
                                                         inline_golden=False, stale=touched, events=kept, locked=True, terms=terms, read=read.get(record_id),
                                                         reads=reads, writes=writes)
                        except Exception as exc:  # a defect or a lost race: the batch is rolled back and linked again without it
                            raise _RecordFailed(record_id, attempts, request_id, exc, [row[0] for row in claimed]) from exc
                    if outcome is None:
                        continue  # linked by another worker since it was queued
                    linked += 1
                    stale |= touched
                    events += kept
                    interaction.entities.append(("Patient", record_id, None))
                    interaction.patients.add(record_id)
                writes.write(w.conn)
                index.write_events(events)
                terms.write(w.conn)
                index.mark_stale(stale)
                interaction.patients |= stale  # the persons (golden Patients) the links changed
                if not linked:
                    interaction.recorded = True  # no link changed: no AuditEvent
        except _RecordFailed:
            raise
        except Exception:
            if not claimed:
                raise
            log.exception("linking a batch of %s records failed; linking them one by one", len(claimed))
            for record_id, attempts, request_id in claimed:
                with bound_request_id(request_id):
                    self._link_one(linker, record_id, attempts)
            return len(claimed)
        self.linked += linked
        return len(claimed)

    def _mark_failed(self, conn, record_id: str, attempts: int, exc: Exception) -> None:  # noqa: ANN001 - a connection
        mark_failed(conn, record_id, f"{type(exc).__name__}: {exc}", attempts=attempts + 1, dead=attempts + 1 >= self.max_attempts,
                    now=utcnow() + timedelta(seconds=self.backoff_seconds * 2 ** attempts))

    def _link_one(self, linker, record_id: str, attempts: int) -> None:  # noqa: ANN001 - the index's linker
        """One record in a transaction of its own (a batch that could not commit)."""
        log.debug("linking Patient/%s alone, attempt %s", record_id, attempts + 1)
        try:
            if self.mpi.link(record_id, only_if_queued=True, linker=linker, inline_golden=False) is not None:
                self.linked += 1
        except Exception as exc:  # a defect or a lost race must not stop the queue: retried, then left failed
            log.exception("linking Patient/%s failed", record_id)
            self.failed += 1
            with write_transaction(self.mpi.engine) as conn:
                self._mark_failed(conn, record_id, attempts, exc)

    def refresh_stale(self, limit: int = 50) -> int:
        """Rebuild every golden Patient marked stale (by this pass's links or the
        batch re-linker), `limit` per transaction; returns how many."""
        total = 0
        while done := self.mpi.rebuild_goldens(limit):
            total += done
        return total
