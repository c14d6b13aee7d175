"""A link batch reads the index once (`BatchReads`) and keeps that read current
as it links, its writes kept to go out together (`LinkWrites`): at every step
it must answer exactly as the database does once those writes are sent."""

from __future__ import annotations

from tests.integration.identity.identity_builders import FAMILY_PHONE, HUONG, MAI, NAM, TWIN, of, person_of, site_patient
from tests.integration.identity.test_mpi_worker import created, write_people
from vaxhub.hub.mpi.golden import is_golden
from vaxhub.hub.mpi.index import LinkWrites, PersonIndex
from vaxhub.hub.mpi.linker import LINKER, evidence_of, read_claimed
from vaxhub.hub.mpi.reads import BatchReads, IndexReads
from vaxhub.hub.mpi.service import linker_interaction
from vaxhub.hub.mpi.worker import LinkWorker, claim_queued
from vaxhub.hub.storage.store import utcnow


class _Rollback(Exception):
    """Ends the unit of work without committing."""


def _answers(reads: IndexReads, evidence, record_id: str) -> tuple:
    holder = reads.verified_holder(evidence.verified_cccd, besides=record_id) if evidence.verified_cccd else None
    candidates = reads.candidates(evidence.blocks(), besides=record_id)
    persons = sorted({c.person_id for c in candidates})
    return holder, [(c.record_id, c.person_id, c.evidence) for c in candidates], {p: sorted(reads.members(p)) for p in persons}


def test_a_batch_answers_as_the_database_after_every_link_it_makes(hub, site, engine, mpi, verify_all, link_all):
    hanoi, hcm, hue = site("79001"), site("79002"), site("79003")
    # Already in the index: Hương by her CCCD, her mother, and a dozen others.
    huong = created(hanoi.post("/fhir/Patient", json=of(HUONG, phone="0912 345 678", site="79001")))
    created(hcm.post("/fhir/Patient", json=of(MAI, phone=FAMILY_PHONE, site="79002", number="mai")))
    write_people(site, 12)
    verify_all()
    link_all()
    # One batch: Hương twice more (one by her old CMND, which the registry verifies
    # as her CCCD's, one without ID
    # on the family phone), her brother and her twin on that phone, two copies of
    # a new person, and new copies of known people: each may be another's candidate.
    again = created(site("79004").post("/fhir/Patient", json=of(HUONG, cccd=None, cmnd=HUONG.cmnd, birth="1990", site="79004")))
    newcomer = [created(s.post("/fhir/Patient", json=site_patient("Đặng Thị Xuân Yến", birth="2001-09-17", gender="female",
                                                                   phone="0977 123 456", site=code, number=f"yen-{code}")))
                for s, code in ((hanoi, "79001"), (hue, "79003"))]
    created(hcm.post("/fhir/Patient", json=of(HUONG, cccd=None, phone=FAMILY_PHONE, site="79002", number="huong-2")))
    created(hcm.post("/fhir/Patient", json=of(NAM, phone=FAMILY_PHONE, site="79002", number="nam")))
    created(hue.post("/fhir/Patient", json=of(TWIN, cccd=None, phone=FAMILY_PHONE, site="79003", number="twin")))
    write_people(site, 4, copies=2, first_copy=2)
    verify_all()

    linker = mpi.linker()
    compared = 0
    try:
        with mpi.store.writer(context=linker_interaction(what="link")) as w:
            index = PersonIndex(w, LINKER, inline_golden=False)
            index.lock()
            claimed = [row[0] for row in claim_queued(w.conn, 100, utcnow())]
            assert len(claimed) >= 12
            read = read_claimed(w.conn, claimed)
            evidence = {i: evidence_of(f, f.state) for i, f in read.items() if f.content is not None and not is_golden(f.content)}
            writes = LinkWrites()  # kept by the batch; the database answers once they are sent
            batch = BatchReads(w.conn, linker.model, evidence, before=lambda: writes.write(w.conn))
            database = IndexReads(w.conn, before=lambda: writes.write(w.conn))
            for position, record_id in enumerate(claimed):
                for other in claimed[position:]:
                    assert _answers(batch, evidence[other], other) == _answers(database, evidence[other], other), (position, other)
                    compared += 1
                outcome = linker.link_record(w, record_id, only_if_queued=True, inline_golden=False, stale=set(), events=[],
                                             locked=True, read=read[record_id], reads=batch, writes=writes)
                assert outcome is not None
            raise _Rollback
    except _Rollback:
        pass
    assert compared >= 12 * 13 // 2

    # Linked for real in one batch: the verified CCCD joins her person, and the
    # newcomer's second record finds the person its first one made moments before.
    LinkWorker(mpi, batch=100, backoff_seconds=0).run(until_idle=True)
    assert person_of(engine, again) == person_of(engine, huong) is not None
    assert person_of(engine, newcomer[1]) == person_of(engine, newcomer[0]) is not None
