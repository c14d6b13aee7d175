"""Shared fixtures of the registry contract suite.

One synthetic registry feeds the in-memory fakes and both simulators; the
simulators run once per session on 127.0.0.1 (real HTTP, real uvicorn), and
tests that change their network conditions use `sims`, which resets them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from vaxhub.adapters.fakes import InMemoryPopulationRegistry, InMemorySocialInsurance
from vaxhub.adapters.population_soap import SoapPopulationRegistry
from vaxhub.adapters.ports import PopulationRegistry, SocialInsurance
from vaxhub.adapters.registry_data import SAMPLE_CITIZENS, SyntheticRegistry, generate_citizens
from vaxhub.adapters.simulators.conditions import SimulatedConditions
from vaxhub.adapters.simulators.launch import RegistrySimulators, start_registry_simulators
from vaxhub.adapters.social_insurance_rest import (
    ApiKeyAuth,
    ClientCredentialsAuth,
    RestSocialInsurance,
)

AN, HOA, HUONG, DUC = SAMPLE_CITIZENS

SOAP_TIMEOUT = 2.0


@pytest.fixture(scope="session")
def registry() -> SyntheticRegistry:
    return SyntheticRegistry([*generate_citizens(30, seed=11), *SAMPLE_CITIZENS])


@pytest.fixture(scope="session")
def simulators(registry: SyntheticRegistry) -> Iterator[RegistrySimulators]:
    with start_registry_simulators(registry) as running:
        yield running


@pytest.fixture
def sims(simulators: RegistrySimulators) -> Iterator[RegistrySimulators]:
    """The running simulators, put back to a perfect network after the test."""
    yield simulators
    simulators.population.conditions = SimulatedConditions()
    simulators.social_insurance.conditions = SimulatedConditions()


@pytest.fixture(scope="session")
def soap_registry(simulators: RegistrySimulators) -> SoapPopulationRegistry:
    """The zeep client, built from the WSDL the simulator serves."""
    return SoapPopulationRegistry(simulators.population_wsdl_url, timeout=SOAP_TIMEOUT, user_id="VN001090012345")


@pytest.fixture(params=["memory", "soap"])
def population_registry(request: pytest.FixtureRequest, registry: SyntheticRegistry) -> PopulationRegistry:
    if request.param == "memory":
        return InMemoryPopulationRegistry(registry)
    return request.getfixturevalue("soap_registry")


RestClientFactory = Callable[..., RestSocialInsurance]


@pytest.fixture(scope="session")
def make_rest_client(simulators: RegistrySimulators) -> RestClientFactory:
    """`make_rest_client(oauth=False, timeout=2.0)`: a REST client of the simulator."""

    def make(*, oauth: bool = False, timeout: float = 2.0) -> RestSocialInsurance:
        auth = (
            ClientCredentialsAuth(simulators.token_url, simulators.client_id, simulators.client_secret)
            if oauth
            else ApiKeyAuth(simulators.api_key)
        )
        return RestSocialInsurance(simulators.social_insurance_url, auth=auth, timeout=timeout)

    return make


@pytest.fixture(params=["memory", "rest-api-key", "rest-oauth"])
def social_insurance(request: pytest.FixtureRequest, registry: SyntheticRegistry) -> Iterator[SocialInsurance]:
    if request.param == "memory":
        yield InMemorySocialInsurance(registry)
        return
    make_rest_client = request.getfixturevalue("make_rest_client")
    with make_rest_client(oauth=request.param == "rest-oauth") as client:
        yield client
