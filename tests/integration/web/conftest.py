"""Fixtures of the web page tests: the hub on SQLite and PostgreSQL, with a
site that sends people and their doses, and a browser-like client."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from tests.conftest import running_hub
from tests.web_pages import AN, DOSES, HUONG, SITE, WebHub
from vaxhub.adapters.sms import RecordingSms
from vaxhub.hub.storage.engine import make_engine, upgrade


@pytest.fixture
def web(hub) -> WebHub:
    app, raw, login = hub
    site = login(f"site-{SITE}", "system/Patient.cruds system/Immunization.cruds system/Organization.cruds", site=SITE)
    return WebHub(app, raw, login, site)


@pytest.fixture
def browser_client(web):
    """A client with its own cookie jar, as a person's browser would be."""
    with TestClient(web.app) as client:
        yield client


@pytest.fixture
def two_people(web) -> tuple[str, str]:
    """Nguyễn Văn An and Phạm Thu Hương, two doses each, identities verified."""
    an = web.person(AN, DOSES, phone="0912345678", province="Hà Nội")
    huong = web.person(HUONG, DOSES, phone="0987654321", province="Hồ Chí Minh")
    web.verify_identities()
    return an, huong


@pytest.fixture(scope="module")
def _module_pages_client(tmp_path_factory):
    folder = tmp_path_factory.mktemp("pages")
    engine = make_engine(f"sqlite:///{folder / 'hub.db'}")
    upgrade(engine)
    with running_hub(engine, folder / "data", RecordingSms()) as (app, _raw, _login):
        with TestClient(app) as client:
            yield client
    engine.dispose()


@pytest.fixture
def pages_client(_module_pages_client):
    """A client of one hub on SQLite shared by a module, with a fresh cookie jar
    per test: for what does not depend on the database (form parsing, assets)."""
    _module_pages_client.cookies.clear()
    return _module_pages_client
