"""Fixtures of the observability tests: hub apps built from settings on the
test database (several at once, as several hub processes), a JSON log
capture, Redis, the registry simulators, and /metrics read and parsed."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from tests.auth_helpers import ClientKey, assertion, token_form
from tests.conftest import TOKEN_URL
from vaxhub.adapters.registry_data import SAMPLE_CITIZENS, SyntheticRegistry
from vaxhub.adapters.simulators.launch import RegistrySimulators, start_registry_simulators
from vaxhub.hub.logging_setup import make_handler
from vaxhub.settings import Settings, load_settings

METRICS_TOKEN = "prometheus-scrape-token-0123456789abcdef"


def hub_settings(engine, data_dir: Path, **overrides) -> Settings:
    values = dict(
        database_url=engine.url.render_as_string(hide_password=False), auto_migrate=False, base_url="http://hub.test/fhir",
        data_dir=data_dir, rate_limit_per_second=1000, rate_limit_burst=5000, metrics_token=METRICS_TOKEN,
        log_format="json",  # as in production
    )
    return load_settings(**{**values, **overrides})


@contextmanager
def hub_app(engine, data_dir: Path, sms, **overrides) -> Iterator[TestClient]:
    """One hub process: an app built by the composition root, and a client on it."""
    from vaxhub.hub.app import build_app

    app = build_app(hub_settings(engine, data_dir, **overrides), engine=engine, sms=sms)
    with TestClient(app) as client:
        yield client


def register(client: TestClient, client_id: str, scopes: str, *, kind: str = "system", roles: str = "", site: str | None = None) -> ClientKey:
    key = ClientKey.generate()
    client.app.state.clients.register(client_id, name=client_id, kind=kind, jwks=key.jwks(), scopes=scopes, site_code=site, roles=roles)
    return key


def bearer(client: TestClient, client_id: str, key: ClientKey, **extra_headers: str) -> dict[str, str]:
    r = client.post("/auth/token", data=token_form(assertion(client_id, key, TOKEN_URL)), headers=extra_headers)
    assert r.status_code == 200, r.text
    return {"authorization": f"Bearer {r.json()['access_token']}", "content-type": "application/fhir+json"}


def login(client: TestClient, client_id: str, scopes: str, **kwargs) -> dict[str, str]:
    return bearer(client, client_id, register(client, client_id, scopes, **kwargs))


def scrape(client: TestClient, token: str = METRICS_TOKEN) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """GET /metrics, parsed: {(sample name, sorted labels): value}."""
    r = client.get("/metrics", headers={"authorization": f"Bearer {token}"})
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/plain")
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(r.text)
        for sample in family.samples
    }


def value(samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


@pytest.fixture
def sms():
    from vaxhub.adapters.sms import RecordingSms

    return RecordingSms()


@pytest.fixture
def hub_client(engine, tmp_path, sms) -> Iterator[TestClient]:
    with hub_app(engine, tmp_path / "hub-data", sms) as client:
        yield client


class JsonLines:
    """Log lines as the hub writes them in production, parsed back."""

    def __init__(self, stream: io.StringIO):
        self.stream = stream

    def records(self) -> list[dict]:
        return [json.loads(line) for line in self.stream.getvalue().splitlines() if line.strip()]

    def with_request_id(self, request_id: str) -> list[dict]:
        return [r for r in self.records() if r.get("request_id") == request_id]


@pytest.fixture
def json_logs() -> Iterator[JsonLines]:
    """Every log line of the test, at DEBUG, through the hub's JSON formatter."""
    stream = io.StringIO()
    handler = make_handler("json", stream)
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    try:
        yield JsonLines(stream)
    finally:
        root.removeHandler(handler)
        root.setLevel(level)


@pytest.fixture(scope="session")
def simulators() -> Iterator[RegistrySimulators]:
    with start_registry_simulators(SyntheticRegistry(SAMPLE_CITIZENS)) as running:
        yield running
