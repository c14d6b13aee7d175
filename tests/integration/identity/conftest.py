"""Fixtures of the master patient index tests: sites writing through the API,
the registry fake, the verification and link workers run to idle."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from tests.integration.identity.identity_builders import FAMILY
from vaxhub.adapters.fakes import InMemoryPopulationRegistry
from vaxhub.adapters.registry_data import SAMPLE_CITIZENS, SyntheticRegistry
from vaxhub.hub.mpi.service import MasterPatientIndex
from vaxhub.hub.mpi.worker import LinkWorker
from vaxhub.hub.verification.worker import VerificationWorker, WorkerOptions


@pytest.fixture(scope="session")
def registry() -> SyntheticRegistry:
    return SyntheticRegistry([*SAMPLE_CITIZENS, *FAMILY])


@pytest.fixture
def population_registry(registry) -> InMemoryPopulationRegistry:
    return InMemoryPopulationRegistry(registry)


@pytest.fixture
def mpi(hub) -> MasterPatientIndex:
    """The hub's own index (its golden writes are audited in the hub's trail)."""
    app, _raw, _login = hub
    return app.state.mpi


@pytest.fixture
def link_all(mpi):
    """Run the link worker until nothing is queued; returns what it linked."""
    def run(registry: InMemoryPopulationRegistry | None = None) -> int:
        mpi.registry = registry
        try:
            return LinkWorker(mpi, backoff_seconds=0).run(until_idle=True)
        finally:
            mpi.registry = None
    return run


@pytest.fixture
def verify_all(engine, population_registry):
    """Run the verification worker (in-memory registry) until its queue is empty."""
    def run() -> None:
        VerificationWorker(engine, population_registry, options=WorkerOptions(poll_seconds=0.02), name="mpi-test").run(until_idle=True)
    return run


@pytest.fixture
def site(hub):
    """A TestClient for a vaccination site writing as itself: site("79001")."""
    app, _raw, login = hub
    made = []

    def make(code: str) -> TestClient:
        headers = login(f"site-{code}", "system/Patient.cruds system/Immunization.cruds", site=code)
        client = TestClient(app, headers=headers)
        made.append(client)
        return client

    yield make


@pytest.fixture
def ops(hub) -> TestClient:
    """A national operator console with the mpi role."""
    app, _raw, login = hub
    headers = login("moh-mpi-desk", "system/Patient.rs", kind="operator", roles="mpi")
    return TestClient(app, headers=headers)
