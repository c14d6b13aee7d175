"""Reads' AuditEvents on PostgreSQL: one statement, one round trip, no lock held.

A write appends its AuditEvent inside its own transaction, holding a chain
head (`SELECT … FOR UPDATE`) until it commits. A read has nothing else to
commit, so holding the head across round trips buys it nothing: its events
go to chains of their own (numbered after the writers', `chains` of them),
and each process remembers the head it last wrote. Appending is then one
autocommitted statement that moves the head only if it is still where this
process left it, and inserts the events only if the head moved:

    WITH moved AS (UPDATE head … WHERE chain = c AND last_seq = s AND last_hash = h RETURNING chain),
         e AS (INSERT INTO audit_event … WHERE EXISTS (SELECT FROM moved)),
         p AS (INSERT INTO audit_patient … WHERE EXISTS (SELECT FROM moved))
    SELECT count(*) FROM moved

The row lock the UPDATE takes serialises appenders as the writers' lock does:
one that waited re-checks the head after the other commits, finds it moved,
and changes nothing. The process then reads the head of another read chain
(processes spread out over the chains as they meet) and appends there. The
hash chain is the same as the writers': `AuditTrail.verify` cannot tell them
apart.
"""

from __future__ import annotations

import random
from typing import Callable

import orjson
import psycopg
from sqlalchemy import Engine, Table

from vaxhub.hub.audit.tables import AuditChainHeadRow, AuditEventRow, AuditPatientRow
from vaxhub.hub.observability.metrics import AUDIT_READ_CHAIN_MOVES

HEADS = AuditChainHeadRow.__tablename__
Rows = tuple[list[str], list[tuple[Table, list[dict]]]]
# `_rows(chain, seq, prev)`: the event ids and rows that append a batch after (seq, prev) of chain.
BuildRows = Callable[[int, int, str], Rows]

_APPEND = (
    f"WITH moved AS (UPDATE {HEADS} SET last_seq = %s, last_hash = %s "
    "WHERE chain = %s AND last_seq = %s AND last_hash = %s RETURNING chain), "
    f"e AS (INSERT INTO {AuditEventRow.__tablename__} SELECT r.* FROM "
    f"json_populate_recordset(NULL::{AuditEventRow.__tablename__}, %s::json) r WHERE EXISTS (SELECT FROM moved)), "
    f"p AS (INSERT INTO {AuditPatientRow.__tablename__} SELECT r.* FROM "
    f"json_populate_recordset(NULL::{AuditPatientRow.__tablename__}, %s::json) r WHERE EXISTS (SELECT FROM moved)) "
    "SELECT count(*) FROM moved"
)
_HEAD = f"SELECT last_seq, last_hash FROM {HEADS} WHERE chain = %s"
_NEW_HEAD = f"INSERT INTO {HEADS} (chain, last_seq, last_hash) VALUES (%s, 0, %s) ON CONFLICT (chain) DO NOTHING"


class ReadChains:
    """One process's appender to the read chains `first` … `first + count - 1`.

    Not thread-safe: `AuditTrail` calls it from its group commit, one batch
    at a time."""

    def __init__(self, engine: Engine, first: int, count: int, genesis: str, *, attempts: int = 8):
        self.engine = engine
        self.chains = range(first, first + count)
        self.genesis = genesis
        self.attempts = attempts
        self.chain = random.choice(self.chains)
        self._head: tuple[int, str] | None = None  # (seq, hash) as this process last left `chain`
        self.moves = 0  # times another appender was found on our chain

    def append(self, build: BuildRows) -> list[str] | None:
        """Append the batch `build` makes; its event ids, or None (nothing
        written) when every attempt met another appender."""
        with self.engine.connect() as conn:
            pg = conn.connection.dbapi_connection
            pg.autocommit = True  # each statement its own transaction: no BEGIN, no COMMIT round trip
            try:
                with pg.cursor() as cur:
                    for _ in range(self.attempts):
                        if self._head is None:
                            self._head = self._read_head(cur, self.chain)
                        seq, prev = self._head
                        event_ids, rows = build(self.chain, seq, prev)
                        by_table = {table: batch for table, batch in rows}
                        events, patients = by_table[AuditEventRow.__table__], by_table.get(AuditPatientRow.__table__, [])
                        last = events[-1]
                        cur.execute(_APPEND, (last["seq"], last["hash"], self.chain, seq, prev,
                                              orjson.dumps(events).decode(), orjson.dumps(patients).decode()), prepare=True)
                        (moved,) = cur.fetchone()
                        if moved:
                            self._head = (last["seq"], last["hash"])
                            return event_ids
                        self._move_on()
            except BaseException:
                self._head = None  # whether the statement committed is unknown: read the head again
                if pg.closed or pg.broken:
                    conn.invalidate()
                raise
            finally:
                if not pg.closed:
                    pg.autocommit = False
        return None

    def _move_on(self) -> None:
        """Another process appends to this chain too: try another."""
        self.moves += 1
        AUDIT_READ_CHAIN_MOVES.inc()
        others = [c for c in self.chains if c != self.chain]
        if others:
            self.chain = random.choice(others)
        self._head = None

    def _read_head(self, cur: psycopg.Cursor, chain: int) -> tuple[int, str]:
        cur.execute(_HEAD, (chain,))
        row = cur.fetchone()
        if row is None:
            cur.execute(_NEW_HEAD, (chain, self.genesis))
            cur.execute(_HEAD, (chain,))
            row = cur.fetchone()
        return row[0], row[1]
