"""The outbox: a job per Patient version, in the same transaction, coalesced;
claiming with leases; completions that refuse stale answers."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func, select

from tests.integration.verification.verification_builders import AN, DUC, HOA, HUONG, OTHER_SITE, patient_of, store_patients
from vaxhub.adapters.ports import PersonClaim, VerificationResult, VerificationStatus
from vaxhub.fhir.normalise import CMND_SYSTEM
from vaxhub.hub.storage.outbox_tables import VerificationJobRow, VerificationResultRow
from vaxhub.hub.storage.store import utcnow
from vaxhub.hub.verification.claims import person_claim
from vaxhub.hub.verification.operator_view import status_counts
from vaxhub.hub.verification.queue import Completion, Reschedule, claim_jobs, record

JOB = VerificationJobRow.__table__
RESULT = VerificationResultRow.__table__


def jobs(engine) -> dict[str, dict]:
    with engine.connect() as conn:
        return {r.patient_id: r._asdict() for r in conn.execute(select(JOB))}


def test_patient_claim_reads_identifiers_name_and_year_only_birth_date():
    claim = person_claim(patient_of(HOA))
    assert claim == PersonClaim("Trần Thị Hoà", "1958", "female", cccd=HOA.cccd, cmnd=HOA.cmnd, bhxh=HOA.bhxh)
    only_cmnd = person_claim(patient_of(AN, use_cmnd_only=True, identifier=[{"system": CMND_SYSTEM, "value": "012 345 678"}]))
    assert (only_cmnd.cccd, only_cmnd.cmnd) == (None, "012345678")
    assert person_claim(patient_of(DUC, name=[{"text": "Lê  Minh Đức", "family": "x"}])).full_name == "Lê Minh Đức"
    assert person_claim({"resourceType": "Patient"}) == PersonClaim("", "", "unknown")


def test_writing_a_patient_records_a_job_in_the_same_transaction(hub_store, engine):
    [patient_id] = store_patients(hub_store, [patient_of(AN)])
    job = jobs(engine)[patient_id]
    assert (job["state"], job["patient_version"], job["attempts"]) == ("queued", 1, 0)
    assert job["claim"]["cccd"] == AN.cccd and job["site_ref"] == "Organization/site-hanoi"

    with pytest.raises(RuntimeError):
        with hub_store.writer() as w:
            w.create(patient_of(HOA, site="Organization/site-hanoi"))
            raise RuntimeError("the site's request fails after the Patient was written")
    assert list(jobs(engine)) == [patient_id]


def test_only_a_change_to_identity_fields_queues_a_new_verification(hub_store, engine):
    [patient_id] = store_patients(hub_store, [patient_of(AN)])
    [job] = claim_jobs(engine, worker="w1", limit=10, lease_seconds=60)
    record(engine, [Completion(job, VerificationResult(VerificationStatus.VERIFIED, current_id=AN.cccd))],
           worker="w1", registry="population-registry")

    store_patients(hub_store, [patient_of(AN, telecom=[{"system": "phone", "value": "0912345678"}])], ids=[patient_id])
    assert jobs(engine)[patient_id]["state"] == "done"

    store_patients(hub_store, [patient_of(AN, birthDate="1990-04-03")], ids=[patient_id])
    job = jobs(engine)[patient_id]
    assert (job["state"], job["patient_version"], job["claim"]["birth_date"]) == ("queued", 3, "1990-04-03")
    assert job["result_status"] == "verified" and job["result_version"] == 1  # the previous answer stays visible


def test_a_newer_version_supersedes_a_pending_job_and_its_stale_answer_is_refused(hub_store, engine):
    [patient_id] = store_patients(hub_store, [patient_of(HUONG)])
    [old] = claim_jobs(engine, worker="w1", limit=10, lease_seconds=60)
    store_patients(hub_store, [patient_of(HUONG, gender="male")], ids=[patient_id])

    recorded = record(engine, [Completion(old, VerificationResult(VerificationStatus.VERIFIED))],
                      worker="w1", registry="population-registry")
    assert recorded == 0
    [new] = claim_jobs(engine, worker="w2", limit=10, lease_seconds=60)
    assert (new.patient_version, new.claim.sex, new.attempts) == (2, "male", 1)


def test_deleting_a_patient_removes_its_job(hub_store, engine):
    [patient_id] = store_patients(hub_store, [patient_of(DUC)])
    with hub_store.writer() as w:
        w.delete("Patient", patient_id)
    assert jobs(engine) == {}


def test_leases_keep_workers_apart_and_an_expired_lease_comes_back(hub_store, engine):
    store_patients(hub_store, [patient_of(c) for c in (AN, HOA, HUONG, DUC)])
    first = claim_jobs(engine, worker="w1", limit=3, lease_seconds=30)
    second = claim_jobs(engine, worker="w2", limit=3, lease_seconds=120)
    assert len(first) == 3 and len(second) == 1
    assert not {j.patient_id for j in first} & {j.patient_id for j in second}
    assert claim_jobs(engine, worker="w3", limit=3, lease_seconds=30) == []

    # w1 is killed; after its leases expire w3 takes the jobs over.
    later = utcnow() + timedelta(seconds=31)
    taken = claim_jobs(engine, worker="w3", limit=10, lease_seconds=30, now=later)
    assert {j.patient_id for j in taken} == {j.patient_id for j in first}
    assert {j.attempts for j in taken} == {2}

    answer = VerificationResult(VerificationStatus.VERIFIED)
    assert record(engine, [Completion(j, answer) for j in first], worker="w1", registry="population-registry") == 0
    assert record(engine, [Completion(j, answer) for j in taken], worker="w3", registry="population-registry") == 3
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(RESULT)).scalar_one() == 3


def test_reschedule_and_dead_letter(hub_store, engine):
    store_patients(hub_store, [patient_of(AN), patient_of(HOA, site=OTHER_SITE)])
    a, b = claim_jobs(engine, worker="w1", limit=2, lease_seconds=30)
    record(engine, [Reschedule(a, "RegistryUnavailable: down", delay=60), Reschedule(b, "auth refused", dead=True)],
           worker="w1", registry="population-registry")
    report = status_counts(engine)
    assert report["counts"]["pending"] == 1 and report["counts"]["dead"] == 1 and report["retrying"] == 1
    assert claim_jobs(engine, worker="w1", limit=2, lease_seconds=30) == []  # the retry is not due yet
    assert [j.patient_id for j in claim_jobs(engine, worker="w1", limit=2, lease_seconds=30,
                                             now=utcnow() + timedelta(seconds=61))] == [a.patient_id]
