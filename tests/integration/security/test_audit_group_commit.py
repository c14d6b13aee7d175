"""Reads recorded at the same time share one audit transaction
(`AuditTrail.record` through `GroupCommit`), and the chains still verify."""

from __future__ import annotations

import threading
import time
from datetime import datetime, timezone

from sqlalchemy import func, select

from vaxhub.hub.audit.tables import AuditEventRow, AuditPatientRow
from vaxhub.hub.audit.trail import AuditTrail, Interaction


def _read_of(patient_id: str) -> Interaction:
    interaction = Interaction("read", "GET", f"/fhir/Patient/{patient_id}")
    interaction.touched("Patient", patient_id, 1, {"resourceType": "Patient", "id": patient_id})
    return interaction


def test_reads_recorded_together_go_out_in_one_transaction_on_one_chain(engine):
    first_event = threading.Event()
    others_queued = threading.Event()

    def clock() -> datetime:
        # The first event's clock is read inside the first transaction: hold it
        # there until the other readers are waiting, as under load.
        if not first_event.is_set():
            first_event.set()
            assert others_queued.wait(10)
        return datetime.now(timezone.utc).replace(tzinfo=None)

    trail = AuditTrail(engine, chains=8, clock=clock)
    with engine.connect() as conn:
        before = conn.execute(select(func.count()).select_from(AuditEventRow)).scalar_one()
    ids: dict[str, str] = {}
    reads = {f"p-{i}": _read_of(f"p-{i}") for i in range(6)}

    def record(patient_id: str) -> None:
        ids[patient_id] = trail.record(reads[patient_id])

    lead = threading.Thread(target=record, args=("p-0",))
    lead.start()
    assert first_event.wait(10)
    rest = [threading.Thread(target=record, args=(p,)) for p in list(reads)[1:]]
    for t in rest:
        t.start()
    deadline = time.monotonic() + 10
    while len(trail._group._waiting) < 5:
        assert time.monotonic() < deadline
        time.sleep(0.005)
    others_queued.set()
    for t in [lead, *rest]:
        t.join(10)

    assert set(ids) == set(reads) and all(r.recorded for r in reads.values())
    with engine.connect() as conn:
        rows = conn.execute(select(AuditEventRow.event_id, AuditEventRow.chain, AuditEventRow.seq)
                            .where(AuditEventRow.event_id.in_(list(ids.values())))).all()
        patients = {r.patient_id for r in conn.execute(select(AuditPatientRow.patient_id))}
        after = conn.execute(select(func.count()).select_from(AuditEventRow)).scalar_one()
    assert after - before == 6
    assert patients >= set(reads)
    later = [r for r in rows if r.event_id != ids["p-0"]]
    assert len({r.chain for r in later}) == 1, "the five waiting reads were not committed together"
    seqs = sorted(r.seq for r in later)
    assert seqs == list(range(seqs[0], seqs[0] + 5))
    assert trail.verify().ok
