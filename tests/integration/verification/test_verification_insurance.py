"""The social insurance cross-check made with each population call: consistent,
disagreeing fields with both registries' values, not enrolled, and a failing
insurance registry that leaves the population result intact — against the
in-memory fake and the REST simulator over loopback."""

from __future__ import annotations

import dataclasses
import random

import pytest
from sqlalchemy import select

from tests.integration.verification.verification_builders import AN, DUC, HOA, HUONG, patient_of, store_patients
from vaxhub.adapters.errors import RegistryUnavailable
from vaxhub.adapters.fakes import InMemoryPopulationRegistry, InMemorySocialInsurance
from vaxhub.adapters.registry_data import SyntheticRegistry
from vaxhub.adapters.simulators.conditions import SimulatedConditions
from vaxhub.fhir.normalise import CMND_SYSTEM
from vaxhub.hub.storage.outbox_tables import RegistryCircuitRow, VerificationResultRow
from vaxhub.hub.verification.circuit import CircuitBreaker
from vaxhub.hub.verification.insurance import build_social_insurance
from vaxhub.hub.verification.operator_view import patient_verification
from vaxhub.hub.verification.worker import REGISTRY_NAME, VerificationWorker, WorkerOptions, run_worker
from vaxhub.settings import load_settings

RESULT = VerificationResultRow.__table__
CIRCUIT = RegistryCircuitRow.__table__
FAST = WorkerOptions(concurrency=4, poll_seconds=0.02, backoff_base=0.01, backoff_cap=0.05, max_attempts=3)


def verify_all(engine, registry, insurance) -> int:
    breaker = CircuitBreaker(engine, REGISTRY_NAME, worker="insurance-test", window=50, cooldown=0.2)
    return VerificationWorker(engine, InMemoryPopulationRegistry(registry), options=FAST, breaker=breaker,
                              rng=random.Random(1), insurance=insurance, name="insurance-test").run(until_idle=True)


class FailingInsurance:
    """A social insurance registry that is down."""

    def __init__(self):
        self.calls = 0

    def lookup(self, bhxh=None, cccd=None):
        self.calls += 1
        raise RegistryUnavailable("connection refused", service="social insurance")


@pytest.fixture
def insurance_sims(sims):
    """The simulators, with the social insurance one put back to a perfect network afterwards."""
    yield sims
    sims.social_insurance.conditions = SimulatedConditions()


@pytest.fixture(params=["memory", "rest"])
def social_insurance(request, registry, insurance_sims):
    if request.param == "memory":
        yield InMemorySocialInsurance(registry)
        return
    client = build_social_insurance(load_settings(social_insurance_url=insurance_sims.social_insurance_url,
                                                  social_insurance_api_key=insurance_sims.api_key, registry_timeout=2.0))
    yield client
    client.close()


def insurance_of(engine, patient_id):
    return patient_verification(engine, patient_id)["result"]["insurance"]


def test_consistent_and_not_enrolled_people(hub_store, engine, registry, social_insurance):
    cmnd_only = patient_of(HUONG, identifier=[{"system": CMND_SYSTEM, "value": HUONG.cmnd}])
    an, hoa, duc, huong_by_cmnd = store_patients(hub_store, [patient_of(AN), patient_of(HOA), patient_of(DUC), cmnd_only])
    assert verify_all(engine, registry, social_insurance) == 4

    for patient_id in (an, hoa, huong_by_cmnd):  # HOA: year-only birth date on both sides
        state = patient_verification(engine, patient_id)
        assert state["status"] == "verified"
        assert state["result"]["insurance"] == {"status": "consistent", "mismatches": {}, "message": None}
    duc_state = patient_verification(engine, duc)
    assert duc_state["status"] == "verified"  # the population registry knows him; social insurance does not
    assert duc_state["result"]["insurance"]["status"] == "not_enrolled"
    if isinstance(social_insurance, InMemorySocialInsurance):
        # BHXH when the Patient has one, else the CCCD (for a CMND-only claim, the one the registry gave).
        asked = [key for name, keys in social_insurance.calls if name == "lookup_many" for key in keys]
        assert len(asked) == 4 and all(name == "lookup_many" for name, _ in social_insurance.calls)
        assert {"bhxh": AN.bhxh} in asked
        assert {"cccd": DUC.cccd} in asked
        assert {"cccd": HUONG.cccd} in asked

    [provenance] = duc_state["provenance"]
    from fhir.resources.R4B.provenance import Provenance

    Provenance.model_validate(provenance)
    assert [a["type"]["coding"][0]["code"] for a in provenance["agent"]] == ["verifier", "verifier", "performer"]
    assert "social insurance" in provenance["agent"][1]["who"]["display"]
    assert {"url": "insurance", "extension": [{"url": "status", "valueCode": "not_enrolled"}]} in \
        provenance["extension"][0]["extension"]


def test_disagreeing_fields_are_reported_with_both_registries_values(hub_store, engine, registry, ops_client):
    # The insurance registry holds AN under an unaccented name and another birth day.
    insured_an = dataclasses.replace(AN, full_name="Nguyen Van An", birth_date="1975-05-02")
    insurance = InMemorySocialInsurance(SyntheticRegistry([insured_an, HOA, HUONG]))
    wrong_sex = patient_of(HUONG, gender="male")
    an, huong = store_patients(hub_store, [patient_of(AN), wrong_sex])
    verify_all(engine, registry, insurance)

    state = ops_client.get(f"/ops/verification/patients/{an}").json()
    assert state["status"] == "verified"  # the population registry, the reference, agrees with the site
    assert state["result"]["mismatches"] == {}
    assert state["result"]["insurance"]["status"] == "mismatch"
    assert state["result"]["insurance"]["mismatches"] == {
        "full_name": {"claimed": AN.full_name, "registry": "Nguyen Van An"},
        "birth_date": {"claimed": AN.birth_date, "registry": "1975-05-02"},
    }
    insurance_extension = next(e for e in state["provenance"][0]["extension"][0]["extension"] if e["url"] == "insurance")
    assert insurance_extension["extension"] == [
        {"url": "status", "valueCode": "mismatch"},
        {"url": "mismatch", "valueString": "birth_date"},
        {"url": "mismatch", "valueString": "full_name"},
    ]

    # A field both registries contradict is reported by each of them.
    both = patient_verification(engine, huong)["result"]
    assert both["status"] == "mismatch"
    assert both["mismatches"] == {"sex": {"claimed": "male", "registry": "female"}}
    assert both["insurance"]["mismatches"] == {"sex": {"claimed": "male", "registry": "female"}}


def test_an_insurance_failure_keeps_the_population_result(hub_store, engine, registry, insurance_sims):
    insurance_sims.social_insurance.conditions = SimulatedConditions(error_rate=1.0)
    rest = build_social_insurance(load_settings(social_insurance_url=insurance_sims.social_insurance_url,
                                                social_insurance_api_key=insurance_sims.api_key, registry_timeout=2.0))
    down = FailingInsurance()
    try:
        people = {down: (AN, HUONG), rest: (HOA, DUC)}
        for insurance, (right, wrong) in people.items():
            good, bad = store_patients(hub_store, [patient_of(right), patient_of(wrong, gender="other")])
            assert verify_all(engine, registry, insurance) == 2
            for patient_id, status in ((good, "verified"), (bad, "mismatch")):
                state = patient_verification(engine, patient_id)
                assert (state["status"], state["attempts"], state["last_error"]) == (status, 1, None)
                assert state["result"]["insurance"]["status"] == "error"
                assert "RegistryUnavailable" in state["result"]["insurance"]["message"]
            assert patient_verification(engine, bad)["result"]["mismatches"] == {
                "sex": {"claimed": "other", "registry": wrong.sex}}
    finally:
        rest.close()
    assert down.calls == 2  # not retried
    with engine.connect() as conn:
        assert conn.execute(select(CIRCUIT.c.state)).scalar_one() == "closed"  # insurance failures do not trip it
        assert len(conn.execute(select(RESULT.c.id)).all()) == 4


def test_the_worker_command_cross_checks_when_configured(hub_store, engine, insurance_sims):
    no_bhxh = patient_of(DUC, identifier=[])
    an, nothing_to_ask = store_patients(hub_store, [patient_of(AN), no_bhxh])
    settings = load_settings(
        database_url=engine.url.render_as_string(hide_password=False),
        population_registry_wsdl=insurance_sims.population_wsdl_url,
        social_insurance_url=insurance_sims.social_insurance_url,
        social_insurance_api_key=insurance_sims.api_key,
        registry_timeout=2.0,
    )
    assert run_worker(settings, engine, name="settings-test", until_idle=True, concurrency=2, poll_seconds=0.02) == 2
    assert insurance_of(engine, an)["status"] == "consistent"
    assert insurance_of(engine, nothing_to_ask)["status"] == "skipped"

    # Without a social insurance registry the result carries no cross-check.
    store_patients(hub_store, [patient_of(AN, gender="female")], ids=[an])
    unconfigured = settings.model_copy(update={"social_insurance_url": None})
    run_worker(unconfigured, engine, name="settings-test", until_idle=True, concurrency=2, poll_seconds=0.02)
    state = patient_verification(engine, an)
    assert state["status"] == "mismatch" and state["result"]["insurance"] is None
    assert "insurance" not in {e["url"] for e in state["provenance"][0]["extension"][0]["extension"]}


def test_an_insurance_url_needs_its_key():
    with pytest.raises(ValueError, match="SOCIAL_INSURANCE_API_KEY"):
        build_social_insurance(load_settings(social_insurance_url="http://127.0.0.1:1"))
    assert build_social_insurance(load_settings()) is None
