"""The simulators' failure knobs reach each client as the typed errors of
`vaxhub.adapters.errors`, within the client's timeout, over real HTTP."""

from __future__ import annotations

import socket
import time

import pytest

from vaxhub.adapters.errors import (
    RegistryAuthenticationFailed,
    RegistryError,
    RegistryFault,
    RegistryThrottled,
    RegistryTimeout,
    RegistryUnavailable,
)
from vaxhub.adapters.population_soap import SoapPopulationRegistry
from vaxhub.adapters.ports import PersonClaim
from vaxhub.adapters.registry_data import SAMPLE_CITIZENS
from vaxhub.adapters.simulators.conditions import SimulatedConditions
from vaxhub.adapters.social_insurance_rest import (
    ApiKeyAuth,
    ClientCredentialsAuth,
    RestSocialInsurance,
)
from vaxhub.errors import ExternalServiceError

AN = SAMPLE_CITIZENS[0]
CLAIM = PersonClaim(AN.full_name, AN.birth_date, AN.sex, cccd=AN.cccd)
SHORT_TIMEOUT = 0.3


@pytest.fixture
def quick_soap(sims) -> SoapPopulationRegistry:
    return SoapPopulationRegistry(sims.population_wsdl_url, timeout=SHORT_TIMEOUT)


@pytest.fixture
def quick_rest(sims, make_rest_client):
    with make_rest_client(timeout=SHORT_TIMEOUT) as client:
        yield client


def closed_port_url() -> str:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}"


# -- population registry over SOAP ---------------------------------------------


def test_injected_server_error_is_a_retryable_soap_fault(sims, quick_soap):
    sims.population.conditions = SimulatedConditions(error_rate=1.0)
    with pytest.raises(RegistryFault) as caught:
        quick_soap.verify(CLAIM)
    assert caught.value.code == "Server.ServiceFailed"
    assert caught.value.retryable
    assert isinstance(caught.value, ExternalServiceError)


def test_hanging_registry_times_out_within_the_client_timeout(sims, quick_soap):
    sims.population.conditions = SimulatedConditions(timeout_rate=1.0, hang_seconds=1.0)
    started = time.monotonic()
    with pytest.raises(RegistryTimeout) as caught:
        quick_soap.lookup_by_old_id(AN.cmnd)
    assert time.monotonic() - started < SHORT_TIMEOUT + 0.5
    assert caught.value.retryable


def test_rate_limited_registry_throttles_with_a_retry_delay(sims, quick_soap):
    sims.population.conditions = SimulatedConditions(rate_limit=2, rate_window=60.0)
    quick_soap.verify(CLAIM)
    quick_soap.lookup_by_old_id(AN.cmnd)
    with pytest.raises(RegistryThrottled) as caught:
        quick_soap.verify(CLAIM)
    assert 55.0 < caught.value.retry_after <= 60.0


def test_latency_delays_the_answer(sims, quick_soap):
    sims.population.conditions = SimulatedConditions(latency=0.1)
    started = time.monotonic()
    assert quick_soap.verify(CLAIM).verified
    assert time.monotonic() - started >= 0.1


def test_same_seed_gives_the_same_failures(sims, quick_soap):
    def outcomes() -> list[str]:
        sims.population.conditions = SimulatedConditions(error_rate=0.5, seed=7)
        seen = []
        for _ in range(8):
            try:
                quick_soap.lookup_by_old_id(AN.cmnd)
                seen.append("ok")
            except RegistryFault:
                seen.append("fault")
        return seen

    first = outcomes()
    assert first == outcomes()
    assert {"ok", "fault"} == set(first)


def test_unreachable_registry_is_unavailable(sims):
    client = SoapPopulationRegistry(address=closed_port_url() + "/population-registry", timeout=SHORT_TIMEOUT)
    with pytest.raises(RegistryUnavailable):
        client.verify(CLAIM)


# -- social insurance over REST --------------------------------------------------


def test_injected_server_error_is_unavailable(sims, quick_rest):
    sims.social_insurance.conditions = SimulatedConditions(error_rate=1.0)
    with pytest.raises(RegistryUnavailable):
        quick_rest.lookup(bhxh=AN.bhxh)


def test_hanging_insurance_registry_times_out_within_the_client_timeout(sims, quick_rest):
    sims.social_insurance.conditions = SimulatedConditions(timeout_rate=1.0, hang_seconds=1.0)
    started = time.monotonic()
    with pytest.raises(RegistryTimeout):
        quick_rest.lookup(cccd=AN.cccd)
    assert time.monotonic() - started < SHORT_TIMEOUT + 0.5


def test_rate_limited_insurance_registry_sends_retry_after(sims, quick_rest):
    sims.social_insurance.conditions = SimulatedConditions(rate_limit=1, rate_window=30.0)
    quick_rest.lookup(bhxh=AN.bhxh)
    with pytest.raises(RegistryThrottled) as caught:
        quick_rest.lookup(bhxh=AN.bhxh)
    assert caught.value.retry_after == 30.0


def test_wrong_api_key_is_refused(sims):
    with RestSocialInsurance(sims.social_insurance_url, auth=ApiKeyAuth("not-the-key")) as client:
        with pytest.raises(RegistryAuthenticationFailed) as caught:
            client.lookup(bhxh=AN.bhxh)
    assert not caught.value.retryable


def test_wrong_client_secret_is_refused_at_the_token_endpoint(sims):
    auth = ClientCredentialsAuth(sims.token_url, sims.client_id, "wrong-secret")
    with RestSocialInsurance(sims.social_insurance_url, auth=auth) as client:
        with pytest.raises(RegistryAuthenticationFailed):
            client.lookup(bhxh=AN.bhxh)


def test_token_is_fetched_once_and_reused(sims):
    auth = ClientCredentialsAuth(sims.token_url, sims.client_id, sims.client_secret)
    issued_before = sims.social_insurance.tokens_issued
    with RestSocialInsurance(sims.social_insurance_url, auth=auth) as client:
        for _ in range(3):
            assert client.lookup(bhxh=AN.bhxh) is not None
    assert auth.tokens_fetched == 1
    assert sims.social_insurance.tokens_issued == issued_before + 1


def test_revoked_token_is_replaced_transparently(sims):
    auth = ClientCredentialsAuth(sims.token_url, sims.client_id, sims.client_secret)
    with RestSocialInsurance(sims.social_insurance_url, auth=auth) as client:
        client.lookup(bhxh=AN.bhxh)
        sims.social_insurance.revoke_all_tokens()
        assert client.lookup(bhxh=AN.bhxh) is not None
    assert auth.tokens_fetched == 2


def test_expiring_token_is_renewed_before_use(sims):
    now = [1000.0]
    auth = ClientCredentialsAuth(sims.token_url, sims.client_id, sims.client_secret, clock=lambda: now[0])
    with RestSocialInsurance(sims.social_insurance_url, auth=auth) as client:
        client.lookup(bhxh=AN.bhxh)
        now[0] += sims.social_insurance.token_lifetime - 10  # inside the 30 s leeway
        client.lookup(bhxh=AN.bhxh)
    assert auth.tokens_fetched == 2


def test_unreachable_insurance_registry_is_unavailable():
    with RestSocialInsurance(closed_port_url(), auth=ApiKeyAuth("k"), timeout=SHORT_TIMEOUT) as client:
        with pytest.raises(RegistryUnavailable) as caught:
            client.lookup(bhxh=AN.bhxh)
    assert isinstance(caught.value, RegistryError) and caught.value.retryable


def test_client_faults_are_not_retryable_and_server_faults_are():
    assert not RegistryFault("bad", service="x", code="Client.InvalidRequest").retryable
    assert RegistryFault("down", service="x", code="Server.ServiceFailed").retryable
