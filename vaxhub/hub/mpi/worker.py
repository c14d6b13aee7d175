"""The MPI worker behind `vaxhub mpi work`: links queued records, one unit each.

Each pass:

1. reads the verification results recorded since its last pass
   (`verification_result` by id, from a cursor kept in `mpi_cursor`, with a
   look-back for results that committed late) and re-queues every record
   whose registry answer changed, so a CCCD verified today links the record
   deterministically today; the verification code is not touched;
2. links up to `batch` queued records, oldest first, each in its own
   transaction (a crash loses nothing: the row stays queued); a record that
   fails is retried with backoff, then left as `failed` with its error;
3. rebuilds, together, the golden Patients of the persons its links touched
   (and those the batch re-linker marked): a person receiving three records
   in one pass is rewritten once, and the link transactions stay short.

Several workers may run: membership changes take one advisory lock, and a
record another worker linked meanwhile is skipped.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import timedelta

from sqlalchemy import insert, select, update

from vaxhub.hub.mpi.enqueue import queue_records
from vaxhub.hub.mpi.index import RECORD
from vaxhub.hub.mpi.linker import RegistryView, mark_failed, registry_views
from vaxhub.hub.mpi.service import MasterPatientIndex
from vaxhub.hub.observability.request_context import bound_request_id
from vaxhub.hub.storage.engine import write_transaction
from vaxhub.hub.storage.mpi_tables import MpiCursorRow
from vaxhub.hub.storage.outbox_tables import VerificationResultRow
from vaxhub.hub.storage.store import utcnow

log = logging.getLogger(__name__)
CURSOR = MpiCursorRow.__table__
RESULT = VerificationResultRow.__table__
VERIFICATION_CURSOR = "verification_result"
LOOK_BACK = 1000  # result ids re-read each pass: a transaction may commit after a later one


def watch_verifications(engine, *, limit: int = 5000) -> int:
    """Queue records whose registry answer differs from what their link used; returns how many."""
    with write_transaction(engine) as conn:
        position = conn.execute(select(CURSOR.c.position).where(CURSOR.c.name == VERIFICATION_CURSOR)).scalar()
        rows = conn.execute(
            select(RESULT.c.id, RESULT.c.patient_id).where(RESULT.c.id > max((position or 0) - LOOK_BACK, 0)).order_by(RESULT.c.id).limit(limit)
        ).all()
        if not rows:
            return 0
        patients = sorted({r.patient_id for r in rows})
        # A Patient the index has never seen (written by a path without the
        # link outbox) is queued on its first new result only.
        fresh = {r.patient_id for r in rows if r.id > (position or 0)}
        linked = {r.record_id: r for r in conn.execute(
            select(RECORD.c.record_id, RECORD.c.state, RECORD.c.verified_cccd, RECORD.c.registry_cccd).where(RECORD.c.record_id.in_(patients))
        )}
        views = registry_views(conn, patients)
        changed = []
        for patient_id in patients:
            held = linked.get(patient_id)
            view = views.get(patient_id, RegistryView(None, None))
            if (held is None and patient_id in fresh) or (held is not None and held.state == "linked" and (
                view.verified_cccd != held.verified_cccd or (view.registry_cccd and view.registry_cccd != held.registry_cccd)
            )):
                changed.append(patient_id)
        if changed:
            queue_records(conn, changed, utcnow())
        top = max(r.id for r in rows)
        if position is None:
            conn.execute(insert(CURSOR).values(name=VERIFICATION_CURSOR, position=top))
        elif top > position:
            conn.execute(update(CURSOR).where(CURSOR.c.name == VERIFICATION_CURSOR).values(position=top))
        return len(changed)


class LinkWorker:
    def __init__(self, mpi: MasterPatientIndex, *, batch: int = 200, max_attempts: int = 5, backoff_seconds: float = 2.0):
        self.mpi = mpi
        self.batch = batch
        self.max_attempts = max_attempts
        self.backoff_seconds = backoff_seconds
        self.linked = 0
        self.failed = 0

    def run(self, stop: threading.Event | None = None, *, until_idle: bool = False, poll_seconds: float = 0.5,
            on_batch: Callable[[int], None] | None = None) -> int:
        """Work until `stop` is set (or, with `until_idle`, until nothing is queued); returns records linked."""
        stop = stop or threading.Event()
        while not stop.is_set():
            done = self.run_once()
            if on_batch and done:
                on_batch(done)
            if done == 0:
                if until_idle:
                    break
                stop.wait(poll_seconds)
        return self.linked

    def run_once(self) -> int:
        watch_verifications(self.mpi.engine)
        now = utcnow()
        with self.mpi.engine.connect() as conn:
            due = list(conn.execute(
                select(RECORD.c.record_id, RECORD.c.attempts, RECORD.c.request_id).where(RECORD.c.state == "queued", RECORD.c.queued_at <= now)
                .order_by(RECORD.c.queued_at).limit(self.batch)
            ))
        linker = self.mpi.linker()
        for record_id, attempts, request_id in due:
            with bound_request_id(request_id):  # the request that queued it, in this record's log lines
                self._link_one(linker, record_id, attempts)
        return len(due) + self.refresh_stale()

    def _link_one(self, linker, record_id: str, attempts: int) -> None:  # noqa: ANN001 - the index's linker
        log.debug("linking Patient/%s, attempt %s", record_id, attempts + 1)
        try:
            if self.mpi.link(record_id, only_if_queued=True, linker=linker, inline_golden=False) is not None:
                self.linked += 1
        except Exception as exc:  # a defect or a lost race must not stop the queue: retried, then left failed
            log.exception("linking Patient/%s failed", record_id)
            self.failed += 1
            dead = attempts + 1 >= self.max_attempts
            with write_transaction(self.mpi.engine) as conn:
                mark_failed(conn, record_id, f"{type(exc).__name__}: {exc}", attempts=attempts + 1, dead=dead,
                            now=utcnow() + timedelta(seconds=self.backoff_seconds * 2 ** attempts))

    def refresh_stale(self, limit: int = 200) -> int:
        """Rebuild every golden Patient marked stale (by this pass's links or the
        batch re-linker), `limit` per transaction; returns how many."""
        total = 0
        while done := self.mpi.rebuild_goldens(limit):
            total += done
        return total
