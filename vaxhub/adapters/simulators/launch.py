"""Start both registry simulators over one synthetic registry.

    with start_registry_simulators(SyntheticRegistry.generated(50)) as sims:
        population = SoapPopulationRegistry(sims.population_wsdl_url)
        insurance = RestSocialInsurance(sims.social_insurance_url,
                                        auth=ApiKeyAuth(sims.api_key))

Each simulator runs under uvicorn in its own background thread on a free
port of 127.0.0.1 unless ports are given (`vaxhub.adapters.simulators.background`); leaving the
`with` block (or calling `stop()`) shuts both down.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import TracebackType

from vaxhub.adapters.registry_data import SyntheticRegistry
from vaxhub.adapters.simulators.background import BackgroundServer, serve_in_background
from vaxhub.adapters.simulators.conditions import SimulatedConditions
from vaxhub.adapters.simulators.population_soap_server import DEFAULT_PATH, PopulationRegistrySimulator
from vaxhub.adapters.simulators.social_insurance_server import SocialInsuranceSimulator


@dataclass
class RegistrySimulators:
    """Both simulators, running; their state stays reachable for tests."""

    population: PopulationRegistrySimulator
    social_insurance: SocialInsuranceSimulator
    population_server: BackgroundServer
    social_insurance_server: BackgroundServer
    api_key: str
    client_id: str
    client_secret: str

    @property
    def population_url(self) -> str:
        """Service address of the SOAP population registry."""
        return self.population_server.url + self.population.path

    @property
    def population_wsdl_url(self) -> str:
        return self.population_url + "?wsdl"

    @property
    def social_insurance_url(self) -> str:
        return self.social_insurance_server.url

    @property
    def token_url(self) -> str:
        return self.social_insurance_server.url + "/oauth/token"

    def stop(self) -> None:
        self.population_server.stop()
        self.social_insurance_server.stop()

    def __enter__(self) -> RegistrySimulators:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()


def start_registry_simulators(
    registry: SyntheticRegistry,
    *,
    population_conditions: SimulatedConditions | None = None,
    social_insurance_conditions: SimulatedConditions | None = None,
    api_key: str = "demo-api-key",
    client_id: str = "vaxhub",
    client_secret: str = "demo-secret",
    host: str = "127.0.0.1",
    population_port: int = 0,
    social_insurance_port: int = 0,
) -> RegistrySimulators:
    """Start the SOAP population registry and the REST social insurance
    simulators, both answering from `registry` (ports 0: free ports)."""
    population = PopulationRegistrySimulator(registry, population_conditions, path=DEFAULT_PATH)
    insurance = SocialInsuranceSimulator(
        registry, social_insurance_conditions,
        api_keys={api_key}, oauth_clients={client_id: client_secret},
    )
    population_server = serve_in_background(population.app, host=host, port=population_port)
    try:
        insurance_server = serve_in_background(insurance.app, host=host, port=social_insurance_port)
    except BaseException:
        population_server.stop()
        raise
    return RegistrySimulators(population, insurance, population_server, insurance_server,
                              api_key, client_id, client_secret)
