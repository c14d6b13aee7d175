"""A circuit breaker per registry, shared by every worker through the database.

Each worker watches its own recent calls (a sliding window: cheap, no write
per call) and, when most of them failed, opens the registry's breaker in the
`registry_circuit` row. Every worker reads that row before claiming work, so
one worker's discovery stops them all, and operators see the state. After the
cool-down one worker wins the half-open probe (a conditional UPDATE) and sends
a single job: success closes the breaker for everyone, failure re-opens it
with twice the cool-down (up to a ceiling). A probe whose worker died is
taken over after another cool-down.

Throttling is not a failure (the registry is up and asked us to slow down);
timeouts, unreachable service, server faults and refused credentials are.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from datetime import datetime, timedelta

from sqlalchemy import Engine, select, update
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from vaxhub.hub.storage.engine import WRITE_OPTION
from vaxhub.hub.storage.outbox_tables import RegistryCircuitRow
from vaxhub.hub.storage.store import utcnow

CIRCUIT = RegistryCircuitRow.__table__


class CircuitBreaker:
    def __init__(
        self,
        engine: Engine,
        registry: str,
        *,
        worker: str,
        window: int = 20,
        failure_ratio: float = 0.8,
        cooldown: float = 30.0,
        max_cooldown: float = 600.0,
        refresh_seconds: float = 1.0,
        clock: Callable[[], datetime] = utcnow,
    ):
        self.engine, self.registry, self.worker = engine, registry, worker
        self.window, self.failure_ratio = window, failure_ratio
        self.cooldown, self.max_cooldown = cooldown, max_cooldown
        self.refresh_seconds = refresh_seconds
        self.clock = clock
        self._recent: deque[bool] = deque(maxlen=window)
        self._lock = threading.Lock()
        self._state = "closed"
        self._read_at = float("-inf")
        self.probing = False  # this worker holds the half-open probe
        self._ensure_row()

    def _write(self):
        return self.engine.connect().execution_options(**{WRITE_OPTION: True})

    def _ensure_row(self) -> None:
        insert = postgresql_insert if self.engine.dialect.name == "postgresql" else sqlite_insert
        stmt = insert(CIRCUIT).values(
            registry_name=self.registry, state="closed", cooldown_seconds=self.cooldown, opened_count=0,
            updated_at=self.clock(),
        ).on_conflict_do_nothing(index_elements=[CIRCUIT.c.registry_name])
        with self._write() as conn, conn.begin():
            conn.execute(stmt)

    # -- before claiming

    def allows_calls(self) -> bool:
        """Whether this worker may call the registry now (at most one probe job
        while half-open, for the worker holding the probe)."""
        if self.probing:
            return True
        # The shared row is re-read at most once per `refresh_seconds`; a trip by
        # this worker counts at once, before its write of the row is visible.
        if self._state in ("closed", "open") and time.monotonic() - self._read_at < self.refresh_seconds:
            return self._state == "closed"
        with self.engine.connect() as conn:
            row = conn.execute(select(CIRCUIT).where(CIRCUIT.c.registry_name == self.registry)).one()
        self._state, self._read_at = row.state, time.monotonic()
        now = self.clock()
        if row.state == "closed":
            return True
        if row.state == "open" and row.open_until is not None and row.open_until <= now:
            return self._take_probe(CIRCUIT.c.state == "open", now)
        if row.state == "half_open" and row.updated_at <= now - timedelta(seconds=row.cooldown_seconds):
            return self._take_probe(CIRCUIT.c.state == "half_open", now)
        return False

    def _take_probe(self, condition, now: datetime) -> bool:
        with self._write() as conn, conn.begin():
            won = conn.execute(
                update(CIRCUIT).where(CIRCUIT.c.registry_name == self.registry, condition)
                .values(state="half_open", probe_by=self.worker, updated_at=now)
            ).rowcount == 1
        self.probing = won
        return won

    # -- after each call

    def record_success(self) -> None:
        with self._lock:
            self._recent.append(True)
            probing, self.probing = self.probing, False
        if probing:
            with self._write() as conn, conn.begin():
                conn.execute(
                    update(CIRCUIT).where(CIRCUIT.c.registry_name == self.registry).values(
                        state="closed", open_until=None, probe_by=None, reason=None,
                        cooldown_seconds=self.cooldown, updated_at=self.clock(),
                    )
                )
            self._state, self._read_at = "closed", time.monotonic()

    def record_failure(self, reason: str) -> None:
        with self._lock:
            self._recent.append(False)
            probing, self.probing = self.probing, False
            failures = self._recent.count(False)
            trip = probing or (len(self._recent) == self.window and failures >= self.failure_ratio * self.window)
            if trip:
                self._recent.clear()
                # Stop this worker's own claims at once, before the shared row says
                # so: otherwise its loop may claim again in the moment between.
                self._state, self._read_at = "open", time.monotonic()
        if not trip:
            return
        now = self.clock()
        with self._write() as conn, conn.begin():
            row = conn.execute(select(CIRCUIT).where(CIRCUIT.c.registry_name == self.registry)).one()
            if probing:
                cooldown = min(self.max_cooldown, row.cooldown_seconds * 2)
            elif row.state == "closed":
                cooldown = self.cooldown
            else:
                return  # another worker opened it already
            conn.execute(
                update(CIRCUIT).where(CIRCUIT.c.registry_name == self.registry).values(
                    state="open", open_until=now + timedelta(seconds=cooldown), cooldown_seconds=cooldown,
                    opened_count=CIRCUIT.c.opened_count + 1, reason=reason[:2000], probe_by=None, updated_at=now,
                )
            )
        self._state, self._read_at = "open", time.monotonic()
