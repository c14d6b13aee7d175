"""Probes for load balancers and orchestrators.

`/healthz` (liveness) answers from the process alone: no database call, so a
slow database never gets a healthy process restarted. `/readyz` (readiness)
answers 200 only when a database round trip succeeds within a short deadline
and the database's Alembic heads are exactly the code's (a set: unmerged
branches have several heads). Both are public, as load balancers call them
without credentials, and say only which check failed; the details (host names,
error texts, revision ids) go to the log, and `vaxhub db current` shows them.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import threading
from pathlib import Path

from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from fastapi import APIRouter
from fastapi.responses import JSONResponse
from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from vaxhub.hub.storage.engine import alembic_config

log = logging.getLogger(__name__)
READY_TIMEOUT_SECONDS = 2.0
NO_STORE = {"cache-control": "no-store"}


class ReadinessProbe:
    """Checks the database; at most one check runs at a time, so a hung database
    does not pile up a thread per probe (later probes share the running one)."""

    def __init__(self, engine: Engine, heads: set[str], known: set[str], *, timeout: float = READY_TIMEOUT_SECONDS):
        self.engine = engine
        self.heads = heads
        self.known = known  # every revision of the code: a database at another one is ahead of it
        self.timeout = timeout
        self._lock = threading.Lock()
        self._running: concurrent.futures.Future | None = None

    async def checks(self) -> dict[str, str]:
        with self._lock:
            if self._running is None or self._running.done():
                self._running = self._start()
            running = self._running
        try:
            return await asyncio.wait_for(asyncio.shield(asyncio.wrap_future(running)), self.timeout)
        except asyncio.TimeoutError:
            log.warning("readiness: the database did not answer within %.1f s", self.timeout)
            return {"database": "timeout"}

    def _start(self) -> concurrent.futures.Future:
        future: concurrent.futures.Future = concurrent.futures.Future()

        def run() -> None:
            try:
                future.set_result(self.check_database())
            except BaseException as exc:  # noqa: BLE001 - handed to the waiting probe
                future.set_exception(exc)

        # A daemon thread: a check stuck in connect() must not hold up the process's exit.
        threading.Thread(target=run, name="readyz", daemon=True).start()
        return future

    def check_database(self) -> dict[str, str]:
        if self.engine.dialect.name == "sqlite":
            database = self.engine.url.database
            # Connecting would create an empty file in place of a removed one.
            if database and database != ":memory:" and not Path(database).is_file():
                log.warning("readiness: the SQLite database file %s is missing", database)
                return {"database": "missing"}
        try:
            with self.engine.connect() as conn:
                if conn.dialect.name == "postgresql":
                    # A little longer than the probe waits: the probe answers "timeout", and
                    # the connection is freed soon after instead of holding a pool slot.
                    conn.exec_driver_sql(f"SET LOCAL statement_timeout = {int(self.timeout * 1000) + 1000}")
                conn.exec_driver_sql("SELECT 1")
                current = set(MigrationContext.configure(conn).get_current_heads())
        except (SQLAlchemyError, OSError) as exc:
            log.warning("readiness: database unreachable: %s", exc)
            return {"database": "unreachable"}
        return {"database": "ok", "migrations": self._migrations(current)}

    def _migrations(self, current: set[str]) -> str:
        if current == self.heads:
            return "ok"
        log.warning("readiness: database at revision %s, code at %s", ",".join(sorted(current)) or "none", ",".join(sorted(self.heads)))
        if not current:
            return "missing"
        return "behind" if current <= self.known else "ahead"


def build_router(engine: Engine) -> APIRouter:
    router = APIRouter(tags=["operations"])
    scripts = ScriptDirectory.from_config(alembic_config("sqlite://"))
    probe = ReadinessProbe(engine, set(scripts.get_heads()), {s.revision for s in scripts.walk_revisions()})

    # HEAD (what some load balancers send) answered by the same function, as a
    # route of its own kept out of the API description: one route with both
    # methods gave both the same operation id there.
    @router.get("/healthz", summary="Liveness: the process answers (no database call)")
    @router.head("/healthz", include_in_schema=False)
    def healthz() -> JSONResponse:
        return JSONResponse({"status": "ok"}, headers=NO_STORE)

    @router.get("/readyz", summary="Readiness: database reachable and migrated to the code's head")
    @router.head("/readyz", include_in_schema=False)
    async def readyz() -> JSONResponse:
        checks = await probe.checks()
        ready = all(value == "ok" for value in checks.values()) and "migrations" in checks
        return JSONResponse({"status": "ready" if ready else "unavailable", "checks": checks}, status_code=200 if ready else 503, headers=NO_STORE)

    return router
