"""The link worker's old-CMND look-ups (`vaxhub/hub/mpi/old_ids.py`) against the
SOAP population registry simulator over loopback: asked together, a slow answer
leaves its record for a later pass, answers are kept, failures are not."""

from __future__ import annotations

import threading

import pytest

from tests.builders import patient
from vaxhub.adapters.population_soap import SoapPopulationRegistry
from vaxhub.adapters.simulators.conditions import SimulatedConditions
from vaxhub.fhir.normalise import CMND_SYSTEM
from vaxhub.hub.mpi.old_ids import OldIdLookups


class CountingRegistry(SoapPopulationRegistry):
    """The SOAP client, counting the look-ups it makes and how many ran at once."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.asked: list[str] = []
        self.running = self.most_at_once = 0
        self._lock = threading.Lock()

    def lookup_by_old_id(self, cmnd: str) -> str | None:
        with self._lock:
            self.asked.append(cmnd)
            self.running += 1
            self.most_at_once = max(self.most_at_once, self.running)
        try:
            return super().lookup_by_old_id(cmnd)
        finally:
            with self._lock:
                self.running -= 1


def _cmnd_only(citizen) -> dict:
    record = patient(citizen.cccd)
    record["identifier"] = [{"system": CMND_SYSTEM, "value": citizen.cmnd, "use": "official"}]
    return record


@pytest.fixture
def stored(hub_store, citizens):
    """Four CMND-only Patients and one with its CCCD: their ids, and each CMND-only one's citizen."""
    with_cmnd = [c for c in citizens if c.cmnd][:4]
    by_id = {hub_store.run_unit(lambda w, c=c: w.create(_cmnd_only(c))).stored.id: c for c in with_cmnd}
    other = hub_store.run_unit(lambda w: w.create(patient(citizens[0].cccd))).stored.id
    return by_id, other


def _nobody_answered(ids: list[str]) -> set[str]:
    return set()


def test_look_ups_run_together_and_a_late_answer_waits_for_a_later_pass(sims, engine, stored):
    by_id, other = stored
    sims.population.conditions = SimulatedConditions(latency=1.0)
    registry = CountingRegistry(sims.population_wsdl_url, timeout=10)
    lookups = OldIdLookups(registry, threads=4, wait_seconds=0.05)
    try:
        with engine.connect() as conn:
            found, waiting = lookups.resolve(conn, [*by_id, other], _nobody_answered)
            assert found == {} and waiting == set(by_id)  # asked, not answered within the pass's wait
            lookups.wait_seconds = 10
            found, waiting = lookups.resolve(conn, [*by_id, other], _nobody_answered)
    finally:
        lookups.close()
    assert waiting == set() and found == {record_id: citizen.cccd for record_id, citizen in by_id.items()}
    assert sorted(registry.asked) == sorted(c.cmnd for c in by_id.values())  # each asked once: the second pass waited for the same calls
    assert registry.most_at_once > 1


def test_answers_are_kept_and_records_the_registry_answered_are_not_asked_about(sims, engine, stored):
    by_id, _other = stored
    registry = CountingRegistry(sims.population_wsdl_url, timeout=10)
    lookups = OldIdLookups(registry, wait_seconds=10)
    verified = next(iter(by_id))
    try:
        with engine.connect() as conn:
            found, _waiting = lookups.resolve(conn, list(by_id), lambda ids: {verified} & set(ids))
            again, _waiting = lookups.resolve(conn, list(by_id), _nobody_answered)
    finally:
        lookups.close()
    assert verified not in found and len(found) == 3
    assert again[verified] == by_id[verified].cccd
    assert len(registry.asked) == 4  # the three kept answers were not asked again


def test_a_failed_look_up_links_without_its_answer_and_is_asked_again(sims, engine, stored):
    by_id, _other = stored
    sims.population.conditions = SimulatedConditions(error_rate=1.0)
    registry = CountingRegistry(sims.population_wsdl_url, timeout=10)
    lookups = OldIdLookups(registry, wait_seconds=10)
    try:
        with engine.connect() as conn:
            found, waiting = lookups.resolve(conn, list(by_id), _nobody_answered)
            sims.population.conditions = SimulatedConditions()
            again, _waiting = lookups.resolve(conn, list(by_id), _nobody_answered)
    finally:
        lookups.close()
    assert waiting == set() and found == dict.fromkeys(by_id)  # no answer: the records link on their other evidence
    assert again == {record_id: citizen.cccd for record_id, citizen in by_id.items()}
    assert len(registry.asked) == 8
