"""The outbox side of linking: a site Patient written queues its record for
the MPI worker, in the same transaction as the Patient version.

Linking is not done inside the site's request: it reads candidates, scores
them and rewrites golden Patients, which would add that latency (and the
advisory lock that serialises membership changes) to every hospital write.
The queue is `mpi_record.state = 'queued'`, one row per record: a newer
version re-queues the same row. Only a change to what matching compares
re-queues it; a new address does not. A deleted Patient is queued too: the
worker takes it out of its person.

Golden Patients belong to the master patient index: this listener refuses
any write of one through the FHIR API (the tag, or the MPI's identifier
systems, on a site record), so a site can neither forge nor edit a person.
"""

from __future__ import annotations

import threading
import weakref
from datetime import timedelta

from sqlalchemy import Connection

from vaxhub.errors import Forbidden
from vaxhub.hub.mpi.golden import RESERVED_SYSTEMS, is_golden
from vaxhub.hub.observability.request_context import current_request_id
from vaxhub.hub.storage.bulk import Upsert
from vaxhub.hub.storage.mpi_tables import MpiRecordRow
from vaxhub.hub.storage.store import Stored, Writer
from vaxhub.hub.verification.claims import person_claim
from vaxhub.identity.keys import match_keys

RECORD = MpiRecordRow.__table__


class LinkEnqueuer:
    """`WriteListener` queuing each site Patient whose match keys changed.

    With `verification_wait` (seconds), a Patient version that also sent the
    person to the registry (its identity fields changed) is queued due that
    much later: the worker links it once the registry has answered (the
    answer brings it forward, see `worker.watch_verifications`) instead of
    linking it now and again, on the verified CCCD, a moment later. A
    registry that does not answer delays the link by at most the wait."""

    def __init__(self, *, verification_wait: float = 0.0) -> None:
        self.verification_wait = timedelta(seconds=verification_wait)
        # Per unit: each Patient's (verifying, request id); the request that wrote it,
        # which in a unit holding several requests is not the one bound at commit.
        self._pending: weakref.WeakKeyDictionary[Writer, dict[str, tuple[bool, str | None]]] = weakref.WeakKeyDictionary()
        self._lock = threading.Lock()

    def after_write(self, writer: Writer, stored: Stored, previous: Stored | None) -> None:
        if stored.rtype != "Patient":
            return
        for content in (stored.content, previous.content if previous else None):
            if is_golden(content):
                raise Forbidden(f"Patient/{stored.id} is a person of the master patient index; change its links through /ops/mpi")
        for ident in (stored.content or {}).get("identifier") or []:
            if isinstance(ident, dict) and ident.get("system") in RESERVED_SYSTEMS:
                raise Forbidden(f"Identifier system {ident['system']} is reserved to the master patient index")
        known = previous is not None and previous.content is not None
        if stored.content is not None and known and match_keys(stored.content) == match_keys(previous.content):
            return
        # Identity fields changed: `VerificationEnqueuer` has queued a registry check too.
        verifying = stored.content is not None and (not known or person_claim(stored.content) != person_claim(previous.content))
        with self._lock:
            records = self._pending.setdefault(writer, {})
            earlier, _request = records.get(stored.id, (False, None))
            records[stored.id] = (earlier or verifying, current_request_id())

    def before_commit(self, writer: Writer) -> None:
        with self._lock:
            records = self._pending.pop(writer, None)
        if not records:
            return
        rows = [_queued(r, writer.now + self.verification_wait if verifying and self.verification_wait else writer.now, request_id)
                for r, (verifying, request_id) in sorted(records.items())]
        writer.insert_later(QUEUE_RECORDS, rows)  # in the unit's one statement, with its resources


# A row that exists keeps its link until the worker decides.
QUEUE_RECORDS = Upsert(RECORD, ("record_id",), ("state", "queued_at", "attempts", "last_error", "request_id"))


def _queued(record_id: str, at, request_id: str | None) -> dict:  # noqa: ANN001 - a datetime
    # The request id of the API request that wrote the Patient (none for the
    # workers' own re-queues) goes with the row for the worker's logs.
    return {"record_id": record_id, "state": "queued", "queued_at": at, "locked": False, "attempts": 0, "last_error": None,
            "request_id": request_id}


def queue_records(conn: Connection, record_ids: list[str], now) -> None:
    """Queue records for (re)linking; a row that exists keeps its link until the worker decides."""
    QUEUE_RECORDS.execute(conn, [_queued(r, now, current_request_id()) for r in record_ids])
