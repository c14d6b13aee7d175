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

from sqlalchemy import Connection
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from vaxhub.errors import Forbidden
from vaxhub.hub.mpi.golden import RESERVED_SYSTEMS, is_golden
from vaxhub.hub.observability.request_context import current_request_id
from vaxhub.hub.storage.mpi_tables import MpiRecordRow
from vaxhub.hub.storage.store import Stored, Writer
from vaxhub.identity.keys import match_keys

RECORD = MpiRecordRow.__table__


class LinkEnqueuer:
    """`WriteListener` queuing each site Patient whose match keys changed."""

    def __init__(self) -> None:
        self._pending: weakref.WeakKeyDictionary[Writer, set[str]] = weakref.WeakKeyDictionary()
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
        if stored.content is not None and previous is not None and previous.content is not None:
            if match_keys(stored.content) == match_keys(previous.content):
                return
        with self._lock:
            self._pending.setdefault(writer, set()).add(stored.id)

    def before_commit(self, writer: Writer) -> None:
        with self._lock:
            records = self._pending.pop(writer, None)
        if records:
            queue_records(writer.conn, sorted(records), writer.now)


def queue_records(conn: Connection, record_ids: list[str], now) -> None:
    """Queue records for (re)linking; a row that exists keeps its link until the worker decides.

    The request id bound now (the API request that wrote the Patient; none for
    the workers' own re-queues) goes with the row for the worker's logs."""
    insert = postgresql_insert if conn.dialect.name == "postgresql" else sqlite_insert
    stmt = insert(RECORD)
    stmt = stmt.on_conflict_do_update(
        index_elements=[RECORD.c.record_id],
        set_={"state": "queued", "queued_at": stmt.excluded.queued_at, "attempts": 0, "last_error": None,
              "request_id": stmt.excluded.request_id},
    )
    request_id = current_request_id()
    conn.execute(stmt, [{"record_id": r, "state": "queued", "queued_at": now, "locked": False, "attempts": 0,
                         "request_id": request_id} for r in record_ids])
