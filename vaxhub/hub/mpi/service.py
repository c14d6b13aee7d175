"""The hub's master patient index: one object the API, the worker and the CLI share.

It owns a FHIR store of its own for golden Patients: audited like every
write (an AuditEvent per unit, the operator's interaction or the linker's),
but without the site-facing listeners, so a golden Patient is never sent to
the population registry nor queued for linking itself.

The match model is the committed one, its prior set for the size of the
index (`MatchModel.for_population`: more records, more namesakes, more
evidence needed); an index smaller than the model's training population is
given the training population's prior, never a laxer one.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable
from typing import Any

from sqlalchemy import Engine, select

from vaxhub.adapters.ports import PopulationRegistry
from vaxhub.hub.audit.listener import AuditListener
from vaxhub.hub.audit.trail import AuditTrail, Interaction
from vaxhub.hub.mpi.frequencies import TERM, TOTAL
from vaxhub.hub.mpi.index import PERSON, PersonIndex
from vaxhub.hub.mpi.linker import LINKER, Linker, LinkOutcome
from vaxhub.hub.security.principal import SYSTEM, Principal
from vaxhub.hub.storage.store import FhirStore
from vaxhub.identity.scoring import MatchModel

LINKER_PRINCIPAL = Principal(SYSTEM, LINKER, client_id=LINKER)


def linker_interaction(action: str = "update", what: str = "link") -> Interaction:
    """The audited interaction of the index's own work (no request behind it)."""
    return Interaction(action=action, method="MPI", path=f"/mpi/{what}", principal=LINKER_PRINCIPAL)


class MasterPatientIndex:
    def __init__(self, engine: Engine, *, trail: AuditTrail | None = None, model: MatchModel | None = None,
                 registry: PopulationRegistry | None = None):
        self.engine = engine
        self.trail = trail
        self.store = FhirStore(engine, listeners=[AuditListener(trail)] if trail is not None else [])
        self.registry = registry
        self._base_model = model
        self._models: dict[int, MatchModel] = {}
        self._lock = threading.Lock()

    # -- the model for the index's size

    def model(self, records: int | None = None) -> MatchModel:
        base = self._base_model or MatchModel.default()
        if records is None:
            with self.engine.connect() as conn:
                records = self.indexed_records(conn)
        population = max(records, base.prior_records or 0, 2)
        bucket = round(math.log2(population) * 8)  # re-derive when the index grows by ~9%
        with self._lock:
            found = self._models.get(bucket)
            if found is None:
                found = self._models[bucket] = base.for_population(round(2 ** (bucket / 8)))
        return found

    @staticmethod
    def indexed_records(conn) -> int:
        return conn.execute(select(TERM.c.count).where(TERM.c.field == TOTAL[0], TERM.c.value == TOTAL[1])).scalar() or 0

    def linker(self) -> Linker:
        return Linker(self.model(), registry=self.registry)

    # -- linking

    def link(self, record_id: str, *, only_if_queued: bool = False, linker: Linker | None = None, inline_golden: bool = True,
             context: Interaction | None = None) -> LinkOutcome | None:
        """Link one record in a unit of work of its own.

        With `inline_golden` the golden Patients are rewritten in the same unit
        (audited as the linker's write); without, the persons are marked for
        `rebuild_goldens`, and the unit changes only the index's own tables,
        whose history is `mpi_event`."""
        linker = linker or self.linker()
        old_id = None
        if linker.registry is not None:
            with self.engine.connect() as conn:
                old_id = linker.resolve_old_id(conn, record_id)
        if context is None and inline_golden:
            context = linker_interaction()
        with self.store.writer(context=context) as w:
            return linker.link_record(w, record_id, old_id_cccd=old_id, only_if_queued=only_if_queued, inline_golden=inline_golden)

    def rebuild_goldens(self, limit: int = 200) -> int:
        """Rebuild up to `limit` golden Patients marked stale, in one audited unit; returns how many.

        On PostgreSQL the persons are claimed `FOR UPDATE SKIP LOCKED`: two
        workers rebuild different persons, and a link that changes a claimed
        person's members marks it stale again after this unit commits (its
        mark waits for the row), so no rebuild from an older membership
        stands."""
        interaction = linker_interaction(what="golden")
        with self.store.writer(context=interaction) as w:
            stmt = select(PERSON.c.person_id).where(PERSON.c.golden_stale.is_(True)).order_by(PERSON.c.person_id).limit(limit)
            if w.conn.dialect.name == "postgresql":
                stmt = stmt.with_for_update(skip_locked=True)
            stale = list(w.conn.execute(stmt).scalars())
            if not stale:
                interaction.recorded = True  # nothing written: no AuditEvent
                return 0
            PersonIndex(w, LINKER).refresh_goldens_of(stale)
        return len(stale)

    # -- an operator's changes

    def change(self, operation: Callable[..., dict[str, Any]], *args: Any, actor: str, context: Interaction | None = None) -> dict[str, Any]:
        """Run an operation of `vaxhub.hub.mpi.operations` in a unit of work."""
        with self.store.writer(context=context or linker_interaction(what="change")) as w:
            return operation(PersonIndex(w, actor), *args)
