"""Fixtures of the verification queue tests: a registry of citizens, a store
that enqueues, and the simulators over loopback."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from vaxhub.adapters.registry_data import SAMPLE_CITIZENS, Citizen, SyntheticRegistry, generate_citizens
from vaxhub.adapters.simulators.conditions import SimulatedConditions
from vaxhub.adapters.simulators.launch import RegistrySimulators, start_registry_simulators
from vaxhub.hub.storage.store import FhirStore
from vaxhub.hub.verification.enqueue import VerificationEnqueuer


@pytest.fixture(scope="session")
def citizens() -> list[Citizen]:
    return [*SAMPLE_CITIZENS, *generate_citizens(200, seed=6)]


@pytest.fixture(scope="session")
def registry(citizens) -> SyntheticRegistry:
    return SyntheticRegistry(citizens)


@pytest.fixture
def hub_store(engine) -> FhirStore:
    """A store that records a verification job with every Patient written."""
    return FhirStore(engine, listeners=[VerificationEnqueuer()])


@pytest.fixture(scope="session")
def simulators(registry) -> Iterator[RegistrySimulators]:
    with start_registry_simulators(registry) as running:
        yield running


@pytest.fixture
def sims(simulators) -> Iterator[RegistrySimulators]:
    """The running simulators, put back to a perfect network after the test."""
    yield simulators
    simulators.population.conditions = SimulatedConditions()


@pytest.fixture
def ops_client(hub):
    """A national operator console with the verification role."""
    from fastapi.testclient import TestClient

    app, _raw, login = hub
    headers = login("moh-verification-desk", "system/Patient.rs", kind="operator", roles="verification")
    with TestClient(app, headers=headers) as c:
        yield c
