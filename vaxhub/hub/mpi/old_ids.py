"""Old-CMND look-ups for the link worker: asked together, never waited on for long.

A record that names only an old 9-digit CMND links better once the
population registry has said which CCCD replaced it. The registry is slow
(hundreds of milliseconds a call) and sometimes hangs until the client's
timeout. Asked one after another before each pass, the look-ups made a pass
of a hundred records with a few CMND-only ones wait a second or more, and a
hung call stopped linking for the whole timeout.

`OldIdLookups` asks on a pool of threads, waits at most `wait_seconds` for a
pass, and leaves a record whose answer has not come yet for a later pass
(its call goes on; the answer is kept for when the record is claimed).
Answers are kept for `keep_seconds`: a CMND's replacement does not change,
and a record read in one pass but claimed in the next is not asked about
twice. A failed call is not kept: the record links without the answer, as
it would with the registry down, and the next record with that CMND asks
again.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor, wait

from sqlalchemy import select

from vaxhub.adapters.ports import PopulationRegistry
from vaxhub.hub.storage.lists import one_of
from vaxhub.hub.storage.store import RESOURCE
from vaxhub.identity.keys import national_numbers

log = logging.getLogger(__name__)

_PATIENTS = select(RESOURCE.c.res_id, RESOURCE.c.content).where(
    RESOURCE.c.res_type == "Patient", one_of(RESOURCE.c.res_id, "records"), RESOURCE.c.deleted.is_(False))


def old_id_to_ask(patient: dict) -> str | None:
    """The old CMND of a record that names no CCCD: what the registry's
    old-id look-up can add to it (None when there is nothing to ask)."""
    cccd, cmnd, _bhxh = national_numbers(patient)
    return cmnd if cmnd and not cccd else None


class OldIdLookups:
    def __init__(self, registry: PopulationRegistry, *, threads: int = 8, wait_seconds: float = 2.0, keep_seconds: float = 600.0,
                 keep_most: int = 100_000, clock: Callable[[], float] = time.monotonic):
        self.registry = registry
        self.wait_seconds = wait_seconds
        self.keep_seconds = keep_seconds
        self.keep_most = keep_most
        self.clock = clock
        self._pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="old-id")
        self._lock = threading.RLock()
        # CMND → (its CCCD, or None: the registry knows no such card; when answered), oldest first.
        self._answers: dict[str, tuple[str | None, float]] = {}
        self._asking: dict[str, Future] = {}  # CMND → the call under way

    def resolve(self, conn, record_ids: list[str], answered: Callable[[list[str]], set[str]]) -> tuple[dict[str, str | None], set[str]]:  # noqa: ANN001
        """For each CMND-only record among `record_ids` that the registry has not
        named a CCCD for yet (`answered` gives those it has), the CCCD its CMND
        was replaced by, or None (no such card, or the call failed). Returns
        those answers and the records whose look-up is still under way (to
        leave out of this pass)."""
        asking: dict[str, str] = {}
        for r in conn.execute(_PATIENTS, {"records": list(record_ids)}):
            if cmnd := old_id_to_ask(r.content):
                asking[r.res_id] = cmnd
        for record_id in answered(sorted(asking)) if asking else ():
            del asking[record_id]
        if not asking:
            return {}, set()
        calls = [call for cmnd in set(asking.values()) if (call := self._call(cmnd)) is not None]
        wait(calls, timeout=self.wait_seconds)
        found: dict[str, str | None] = {}
        pending: set[str] = set()
        with self._lock:
            for cmnd, call in [(cmnd, call) for cmnd, call in self._asking.items() if call.done()]:
                self._done(cmnd, call)
            for record_id, cmnd in asking.items():
                if cmnd in self._answers:
                    found[record_id] = self._answers[cmnd][0]
                elif cmnd in self._asking:
                    pending.add(record_id)
                else:
                    found[record_id] = None  # the call failed
        return found, pending

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)

    def _call(self, cmnd: str) -> Future | None:
        """The call for this CMND: started now unless one is under way; None if answered."""
        with self._lock:
            self._forget_old()
            if cmnd in self._answers:
                return None
            call = self._asking.get(cmnd)
            if call is not None:
                return call
            call = self._asking[cmnd] = self._pool.submit(self.registry.lookup_by_old_id, cmnd)
        call.add_done_callback(lambda done: self._done(cmnd, done))
        return call

    def _done(self, cmnd: str, call: Future) -> None:
        """File a finished call's answer (once: from its callback, or from
        `resolve`, which can see the call done before the callback has run)."""
        with self._lock:
            if self._asking.get(cmnd) is not call:
                return
            del self._asking[cmnd]
            failed = call.cancelled() or call.exception() is not None
            if not failed:
                self._answers[cmnd] = (call.result(), self.clock())
        if failed and not call.cancelled():  # an unreachable registry only means less evidence this time
            log.warning("old-id look-up failed: %s", call.exception())

    def _forget_old(self) -> None:
        now = self.clock()
        while self._answers:
            oldest = next(iter(self._answers))
            if len(self._answers) <= self.keep_most and now - self._answers[oldest][1] <= self.keep_seconds:
                break
            del self._answers[oldest]
