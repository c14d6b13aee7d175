"""Nothing is lost: Patients pushed while the SOAP registry fails 30% of calls
and answers in up to 2 s, with real `vaxhub worker` processes on PostgreSQL,
one of them killed with SIGKILL in the middle and replaced.

CI runs 5,000 Patients; the full 50,000 is the same test with
VAXHUB_FAULT_TEST_PATIENTS=50000 (about ten times as long; figures in the README).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time

import pytest
from sqlalchemy import func, select

from tests.integration.verification.verification_builders import patient_of, store_patients
from vaxhub.adapters.registry_data import SyntheticRegistry, generate_citizens
from vaxhub.adapters.simulators.conditions import SimulatedConditions
from vaxhub.adapters.simulators.launch import start_registry_simulators
from vaxhub.hub.storage.outbox_tables import VerificationJobRow, VerificationResultRow
from vaxhub.hub.verification.operator_view import status_counts

JOB = VerificationJobRow.__table__
RESULT = VerificationResultRow.__table__
PATIENTS = int(os.environ.get("VAXHUB_FAULT_TEST_PATIENTS", "5000"))
FAULTY = SimulatedConditions(jitter=2.0, error_rate=0.3, seed=2021)  # 30% faults, answers within 0–2 s


def start_worker(db_url: str, wsdl: str, name: str, *, concurrency: int = 150, lease: float = 10.0) -> subprocess.Popen:
    env = {
        **os.environ,
        "VAXHUB_DATABASE_URL": db_url,
        "VAXHUB_AUTO_MIGRATE": "false",
        "VAXHUB_POPULATION_REGISTRY_WSDL": wsdl,
        "VAXHUB_REGISTRY_TIMEOUT": "5",
        "VAXHUB_VERIFICATION_CONCURRENCY": str(concurrency),
        "VAXHUB_VERIFICATION_LEASE_SECONDS": str(lease),
        "VAXHUB_VERIFICATION_MAX_ATTEMPTS": "25",
        "VAXHUB_VERIFICATION_BACKOFF_BASE": "0.2",
        "VAXHUB_VERIFICATION_BACKOFF_CAP": "5",
    }
    return subprocess.Popen(
        [sys.executable, "-m", "vaxhub.hub.cli", "worker", "--name", name],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )


def results_recorded(engine) -> int:
    with engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(RESULT)).scalar_one()


@pytest.mark.postgres
def test_no_patient_is_lost_or_verified_twice_when_a_worker_is_killed(hub_store, engine, backend):
    if backend != "postgresql":
        pytest.skip("worker processes claiming side by side need PostgreSQL (SKIP LOCKED)")
    citizens = generate_citizens(PATIENTS, seed=50)
    db_url = engine.url.render_as_string(hide_password=False)
    with start_registry_simulators(SyntheticRegistry(citizens), population_conditions=FAULTY) as sims:
        workers = {name: start_worker(db_url, sims.population_wsdl_url, name) for name in ("w1", "w2")}
        try:
            pushed: list[str] = []
            pusher = threading.Thread(target=lambda: [
                pushed.extend(store_patients(hub_store, [patient_of(c) for c in citizens[i: i + 500]]))
                for i in range(0, len(citizens), 500)
            ])
            started = time.monotonic()
            pusher.start()
            while results_recorded(engine) < PATIENTS // 3:
                assert time.monotonic() - started < 600, "the workers stalled before the kill"
                time.sleep(0.2)
            workers["w1"].send_signal(signal.SIGKILL)
            workers["w1"].wait(10)
            # Read after the kill, before the leases expire: exactly what the victim
            # held when it died (read before, it could still finish some of them).
            with engine.connect() as conn:
                held_by_victim = set(conn.execute(
                    select(JOB.c.patient_id).where(JOB.c.leased_by == "w1", JOB.c.lease_token.is_not(None))
                ).scalars())
            workers["w3"] = start_worker(db_url, sims.population_wsdl_url, "w3")
            pusher.join(600)
            while status_counts(engine)["counts"]["pending"]:
                assert time.monotonic() - started < 900, f"still pending: {status_counts(engine)}"
                time.sleep(0.5)
            elapsed = time.monotonic() - started
        finally:
            for process in workers.values():
                if process.poll() is None:
                    process.send_signal(signal.SIGTERM)
            for process in workers.values():
                try:
                    process.wait(30)
                except subprocess.TimeoutExpired:
                    process.kill()

    assert len(pushed) == PATIENTS and held_by_victim, "the kill must interrupt jobs in flight"
    report = status_counts(engine)
    assert report["total"] == PATIENTS  # none lost
    assert report["counts"]["pending"] == 0 and report["counts"]["dead"] == 0
    assert report["counts"]["verified"] == PATIENTS
    with engine.connect() as conn:
        per_patient = dict(conn.execute(select(RESULT.c.patient_id, func.count()).group_by(RESULT.c.patient_id)).all())
        attempts = conn.execute(select(func.sum(JOB.c.attempts))).scalar_one()
        recovered = conn.execute(
            select(func.count()).select_from(RESULT).where(RESULT.c.patient_id.in_(held_by_victim), RESULT.c.worker != "w1")
        ).scalar_one()
    assert set(per_patient) == set(pushed)  # every patient has a final result
    assert set(per_patient.values()) == {1}  # and none was verified twice
    assert recovered == len(held_by_victim)  # the killed worker's leased jobs came back to the others
    assert attempts > PATIENTS * 1.2  # the faults were real: about 1/0.7 attempts per patient
    print(f"\nfault test: {PATIENTS} patients, {attempts} attempts, {len(held_by_victim)} jobs recovered "
          f"from the killed worker, {elapsed:.0f} s")
