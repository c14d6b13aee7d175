"""The worker: results on the Patient, retries with backoff, dead letters,
the circuit breaker, and several workers at once — against the in-memory fake
and the SOAP simulator over loopback."""

from __future__ import annotations

import random
import socket
import threading

import pytest
from sqlalchemy import func, select

from tests.integration.verification.verification_builders import AN, DUC, HOA, HUONG, OTHER_SITE, patient_of, store_patients
from vaxhub.adapters.errors import RegistryAuthenticationFailed, RegistryFault, RegistryTimeout, RegistryUnavailable
from vaxhub.adapters.fakes import InMemoryPopulationRegistry
from vaxhub.adapters.population_soap import SoapPopulationRegistry
from vaxhub.adapters.ports import PersonClaim, VerificationResult
from vaxhub.adapters.simulators.conditions import SimulatedConditions
from vaxhub.fhir.normalise import CCCD_SYSTEM
from vaxhub.hub.storage.outbox_tables import RegistryCircuitRow, VerificationResultRow
from vaxhub.hub.verification.backoff import backoff_delay
from vaxhub.hub.verification.circuit import CircuitBreaker
from vaxhub.hub.verification.operator_view import patient_verification, status_counts
from vaxhub.hub.verification.worker import REGISTRY_NAME, VerificationWorker, WorkerOptions, build_population_registry
from vaxhub.settings import load_settings

RESULT = VerificationResultRow.__table__
FAST = WorkerOptions(concurrency=8, poll_seconds=0.02, backoff_base=0.01, backoff_cap=0.05, max_attempts=4)


class FlakyRegistry:
    """Fails the first `failures` calls for each claim, then answers from `inner`."""

    def __init__(self, inner, failures: int, error=RegistryUnavailable):
        self.inner, self.failures, self.error = inner, failures, error
        self.calls: dict[str, int] = {}
        self._lock = threading.Lock()

    def verify(self, claim: PersonClaim) -> VerificationResult:
        key = claim.cccd or claim.cmnd or ""
        with self._lock:
            self.calls[key] = self.calls.get(key, 0) + 1
            failing = self.calls[key] <= self.failures
        if failing:
            raise self.error("connection refused", service="population registry")
        return self.inner.verify(claim)

    def lookup_by_old_id(self, cmnd: str) -> str | None:
        return self.inner.lookup_by_old_id(cmnd)


def worker(engine, registry, options=FAST, **kwargs) -> VerificationWorker:
    breaker = CircuitBreaker(engine, REGISTRY_NAME, worker=kwargs.get("name", "test"), window=50, cooldown=0.2)
    return VerificationWorker(engine, registry, options=options, breaker=breaker, rng=random.Random(1), **kwargs)


def sample_patients():
    wrong_birth = patient_of(HUONG, birthDate="1985-12-20", site=OTHER_SITE)
    unknown = patient_of(AN, identifier=[{"system": CCCD_SYSTEM, "value": "001090999999"}])
    no_card = patient_of(DUC, identifier=[])
    return [patient_of(AN), patient_of(HOA), wrong_birth, unknown, no_card]


@pytest.fixture(params=["memory", "soap"])
def population_registry(request, registry, sims):
    if request.param == "memory":
        return InMemoryPopulationRegistry(registry)
    return build_population_registry(load_settings(population_registry_wsdl=sims.population_wsdl_url, registry_timeout=2.0),
                                     concurrency=8)


def test_the_workers_soap_transport_keeps_registry_errors_meaningful(sims):
    client = build_population_registry(load_settings(population_registry_wsdl=sims.population_wsdl_url, registry_timeout=0.3),
                                       concurrency=2)
    claim = PersonClaim(AN.full_name, AN.birth_date, AN.sex, cccd=AN.cccd)
    assert client.verify(claim).verified
    sims.population.conditions = SimulatedConditions(timeout_rate=1.0, hang_seconds=2.0)
    with pytest.raises(RegistryTimeout):
        client.verify(claim)
    sims.population.conditions = SimulatedConditions(error_rate=1.0)
    with pytest.raises(RegistryFault) as fault:
        client.verify(claim)
    assert fault.value.retryable
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{unused.getsockname()[1]}/population-registry"
    refused = build_population_registry(load_settings(population_registry_wsdl=sims.population_wsdl_url,
                                                      population_registry_address=closed), concurrency=1)
    with pytest.raises(RegistryUnavailable):
        refused.verify(claim)


def test_results_land_on_the_patient_with_a_provenance(hub_store, engine, population_registry):
    an, hoa, huong, unknown, no_card = store_patients(hub_store, sample_patients())
    assert worker(engine, population_registry).run(until_idle=True) == 5

    assert status_counts(engine)["counts"] == {
        "pending": 0, "verified": 2, "mismatch": 1, "not_found": 1, "unverifiable": 1, "dead": 0,
    }
    mismatch = patient_verification(engine, huong)
    assert mismatch["status"] == "mismatch"
    assert mismatch["result"]["mismatches"] == {"birth_date": {"claimed": "1985-12-20", "registry": "1985-11-20"}}
    [provenance] = mismatch["provenance"]
    assert provenance["target"] == [{"reference": f"Patient/{huong}/_history/1"}]
    assert provenance["activity"]["coding"][0]["code"] == "mismatch"
    assert {"url": "mismatch", "valueString": "birth_date"} in provenance["extension"][0]["extension"]
    from fhir.resources.R4B.provenance import Provenance

    Provenance.model_validate(provenance)  # a valid FHIR R4 Provenance
    assert patient_verification(engine, hoa)["result"]["registry_id"] == HOA.cccd
    assert patient_verification(engine, no_card)["status"] == "unverifiable"


def test_a_changed_patient_is_verified_again(hub_store, engine, registry):
    [patient_id] = store_patients(hub_store, [patient_of(AN, gender="female")])
    fake = InMemoryPopulationRegistry(registry)
    worker(engine, fake).run(until_idle=True)
    assert patient_verification(engine, patient_id)["status"] == "mismatch"

    store_patients(hub_store, [patient_of(AN)], ids=[patient_id])
    assert patient_verification(engine, patient_id)["status"] == "pending"
    worker(engine, fake).run(until_idle=True)
    state = patient_verification(engine, patient_id)
    assert state["status"] == "verified" and state["result"]["version"] == 2
    assert [p["target"][0]["reference"].rsplit("/", 1)[1] for p in state["provenance"]] == ["2", "1"]


def test_failed_calls_are_retried_with_backoff_and_counted(hub_store, engine, registry):
    ids = store_patients(hub_store, [patient_of(c) for c in (AN, HOA, HUONG)])
    flaky = FlakyRegistry(InMemoryPopulationRegistry(registry), failures=2)
    worker(engine, flaky).run(until_idle=True)
    for patient_id in ids:
        state = patient_verification(engine, patient_id)
        assert (state["status"], state["attempts"], len(state["provenance"])) == ("verified", 3, 1)
    assert set(flaky.calls.values()) == {3}


BATCHED = WorkerOptions(concurrency=2, batch_size=4, poll_seconds=0.02, backoff_base=0.01, backoff_cap=0.05, max_attempts=4)


def test_jobs_travel_in_batches_and_each_result_lands_on_its_own_patient(hub_store, engine, population_registry):
    an, hoa, huong, unknown, no_card = store_patients(hub_store, sample_patients())
    w = worker(engine, population_registry, options=BATCHED)
    assert w.run(until_idle=True) == 5
    assert w.calls == 2  # 4 + 1 jobs, not 5 calls
    assert status_counts(engine)["counts"] == {
        "pending": 0, "verified": 2, "mismatch": 1, "not_found": 1, "unverifiable": 1, "dead": 0,
    }
    assert patient_verification(engine, huong)["result"]["mismatches"] == {"birth_date": {"claimed": "1985-12-20", "registry": "1985-11-20"}}
    assert patient_verification(engine, hoa)["result"]["registry_id"] == HOA.cccd
    assert patient_verification(engine, unknown)["status"] == "not_found"


class FlakyBatches(FlakyRegistry):
    """Fails the first `failures` batch calls, then answers from `inner`."""

    verifies_in_batches = True

    def verify_many(self, claims):
        with self._lock:
            self.calls["batch"] = self.calls.get("batch", 0) + 1
            failing = self.calls["batch"] <= self.failures
        if failing:
            raise self.error("connection refused", service="population registry")
        return self.inner.verify_many(claims)


def test_a_failed_batch_call_retries_every_job_it_carried(hub_store, engine, registry):
    ids = store_patients(hub_store, [patient_of(c) for c in (AN, HOA, HUONG)])
    flaky = FlakyBatches(InMemoryPopulationRegistry(registry), failures=1)
    worker(engine, flaky, options=BATCHED).run(until_idle=True)
    states = [patient_verification(engine, patient_id) for patient_id in ids]
    assert [(s["status"], s["attempts"]) for s in states] == [("verified", 2)] * 3
    assert 2 <= flaky.calls["batch"] <= 4  # the failed call, then the three again (together or as their backoffs end)


class HeldBatches:
    """Batch calls answered from `inner`; the first waits for `release`. Keeps each call's size."""

    verifies_in_batches = True

    def __init__(self, inner):
        self.inner, self.sizes, self.release, self.first_started = inner, [], threading.Event(), threading.Event()

    def verify_many(self, claims):
        self.sizes.append(len(claims))
        if len(self.sizes) == 1:
            self.first_started.set()
            assert self.release.wait(30)
        return self.inner.verify_many(claims)

    def lookup_by_old_id(self, cmnd: str) -> str | None:
        return self.inner.lookup_by_old_id(cmnd)


@pytest.mark.parametrize("claim_every, sizes", [(1.0, [1, 3]), (0.0, [1, 1, 1, 1])])
def test_patients_arriving_one_by_one_travel_together_while_a_call_is_out(hub_store, engine, registry, claim_every, sizes):
    held = HeldBatches(InMemoryPopulationRegistry(registry))
    options = WorkerOptions(concurrency=4, batch_size=4, poll_seconds=0.01, claim_every=claim_every)
    stop = threading.Event()
    w = worker(engine, held, options=options)
    runner = threading.Thread(target=w.run, args=(stop,))
    store_patients(hub_store, [patient_of(AN)])
    runner.start()
    try:
        assert held.first_started.wait(10)
        for citizen in (HOA, HUONG, DUC):  # one by one, while the first call is out
            store_patients(hub_store, [patient_of(citizen)])
            threading.Event().wait(0.1)
        threading.Event().wait(1.5)  # past the next claim
        held.release.set()
        deadline = threading.Event()
        for _ in range(100):
            if status_counts(engine)["counts"]["pending"] == 0:
                break
            deadline.wait(0.05)
    finally:
        held.release.set()
        stop.set()
        runner.join(10)
    assert held.sizes == sizes
    assert status_counts(engine)["counts"]["pending"] == 0


def test_backoff_grows_exponentially_with_full_jitter():
    rng = random.Random(7)
    draws = [[backoff_delay(attempt, base=1.0, cap=60.0, rng=rng) for _ in range(200)] for attempt in (1, 2, 3, 8)]
    assert max(draws[0]) < 1.0 and max(draws[1]) < 2.0 and max(draws[2]) < 4.0 and max(draws[3]) <= 60.0
    assert max(draws[2]) > 2.0 and min(draws[2]) < 1.0  # spread over the whole range, not bunched at the ceiling


def test_a_job_that_keeps_failing_becomes_a_dead_letter_and_can_be_requeued(hub_store, engine, registry, ops_client):
    client = ops_client
    [patient_id] = store_patients(hub_store, [patient_of(AN)])
    worker(engine, FlakyRegistry(InMemoryPopulationRegistry(registry), failures=10)).run(until_idle=True)
    dead = client.get("/ops/verification/dead").json()
    assert dead["total"] == 1
    assert dead["items"][0]["patient"] == f"Patient/{patient_id}" and dead["items"][0]["attempts"] == FAST.max_attempts
    assert "RegistryUnavailable" in dead["items"][0]["error"]

    assert client.post("/ops/verification/requeue", json={"status": "dead"}).json() == {"requeued": 1}
    worker(engine, InMemoryPopulationRegistry(registry)).run(until_idle=True)
    assert client.get(f"/ops/verification/patients/{patient_id}").json()["status"] == "verified"


def test_refused_credentials_are_dead_letters_at_once(hub_store, engine, registry):
    [patient_id] = store_patients(hub_store, [patient_of(HOA)])
    refused = FlakyRegistry(InMemoryPopulationRegistry(registry), failures=99, error=RegistryAuthenticationFailed)
    worker(engine, refused).run(until_idle=True)
    state = patient_verification(engine, patient_id)
    assert (state["status"], state["attempts"]) == ("dead", 1)


def test_the_circuit_breaker_stops_calls_to_a_registry_that_is_down(hub_store, engine, sims):
    store_patients(hub_store, [patient_of(c) for c in (AN, HOA, HUONG, DUC)])
    sims.population.conditions = SimulatedConditions(error_rate=1.0)
    soap = SoapPopulationRegistry(sims.population_wsdl_url, timeout=2.0)
    breaker = CircuitBreaker(engine, REGISTRY_NAME, worker="w1", window=4, failure_ratio=1.0, cooldown=60)
    stop = threading.Event()
    w = VerificationWorker(engine, soap, options=WorkerOptions(concurrency=4, poll_seconds=0.02, backoff_base=0.01,
                                                               backoff_cap=0.02), breaker=breaker, name="w1")
    thread = threading.Thread(target=w.run, args=(stop,))
    thread.start()
    try:
        deadline = threading.Event()
        for _ in range(100):
            if status_counts(engine)["circuits"][0]["state"] == "open":
                break
            deadline.wait(0.05)
        calls_when_open = w.calls
        deadline.wait(0.5)
        assert w.calls == calls_when_open  # nothing more is sent while the breaker is open
    finally:
        stop.set()
        thread.join(10)
    report = status_counts(engine)
    [circuit] = report["circuits"]
    assert circuit["state"] == "open" and circuit["opened_count"] == 1 and "ServiceFailed" in circuit["reason"]
    assert report["counts"]["pending"] == 4 and report["counts"]["dead"] == 0  # waiting, not burnt

    # The registry recovers; after the cool-down one probe closes the breaker for every worker.
    sims.population.conditions = SimulatedConditions()
    with engine.begin() as conn:
        conn.execute(RegistryCircuitRow.__table__.update().values(open_until=RegistryCircuitRow.__table__.c.updated_at))
    other = VerificationWorker(engine, soap, options=FAST, name="w2",
                               breaker=CircuitBreaker(engine, REGISTRY_NAME, worker="w2", cooldown=60))
    from datetime import timedelta

    from vaxhub.hub.verification import queue

    with engine.begin() as conn:  # the failed attempts' backoff is over too
        conn.execute(queue.JOB.update().values(available_at=queue.JOB.c.available_at - timedelta(minutes=5)))
    other.run(until_idle=True)
    report = status_counts(engine)
    assert report["circuits"][0]["state"] == "closed" and report["counts"]["verified"] == 4


@pytest.mark.postgres
def test_concurrent_workers_never_verify_a_patient_twice(hub_store, engine, registry, citizens, backend):
    if backend != "postgresql":
        pytest.skip("several workers at once need SKIP LOCKED (PostgreSQL); SQLite runs one worker")
    store_patients(hub_store, [patient_of(c) for c in citizens])
    fake = InMemoryPopulationRegistry(registry)
    workers = [worker(engine, fake, options=WorkerOptions(concurrency=8, poll_seconds=0.01), name=f"w{i}") for i in range(4)]
    threads = [threading.Thread(target=w.run, kwargs={"until_idle": True}) for w in workers]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert sum(w.recorded for w in workers) == len(citizens)
    assert sum(1 for w in workers if w.recorded) > 1  # the work was shared
    with engine.connect() as conn:
        per_patient = conn.execute(select(RESULT.c.patient_id, func.count()).group_by(RESULT.c.patient_id)).all()
    assert len(per_patient) == len(citizens) and {n for _, n in per_patient} == {1}
    assert len(fake.calls) == len(citizens)
