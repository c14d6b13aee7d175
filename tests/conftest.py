"""Shared fixtures: every storage and API test runs on SQLite and on PostgreSQL.

PostgreSQL is reached at VAXHUB_TEST_POSTGRES_URL (set by `make test`). Each
test process creates its own database there and drops it at the end. When the
variable is empty the PostgreSQL half is skipped with a reason; when it is set
but the server does not answer, the tests fail rather than skip, so CI cannot
pass without PostgreSQL.
"""

from __future__ import annotations

import os
import uuid
from contextlib import contextmanager
from pathlib import Path

import pytest
from sqlalchemy import create_engine, inspect, text
from sqlalchemy.engine import make_url

from vaxhub.hub.storage.engine import make_engine, upgrade
from vaxhub.hub.storage.store import FhirStore

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def _postgres_url() -> str | None:
    return os.environ.get("VAXHUB_TEST_POSTGRES_URL") or None


@pytest.fixture(scope="session")
def postgres_database():
    """A fresh PostgreSQL database for this test process; dropped afterwards."""
    admin_url = _postgres_url()
    if not admin_url:
        pytest.skip("VAXHUB_TEST_POSTGRES_URL is not set; PostgreSQL half of the suite skipped")
    name = f"vaxhub_test_{os.environ.get('PYTEST_XDIST_WORKER', 'main')}_{uuid.uuid4().hex[:8]}"
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = make_url(admin_url).set(database=name).render_as_string(hide_password=False)
    yield url
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture(scope="session", params=["sqlite", "postgres"])
def db_url(request, tmp_path_factory):
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path_factory.mktemp('sqlite') / 'vaxhub.db'}"
    return request.getfixturevalue("postgres_database")


@pytest.fixture(scope="session")
def migrated_engine(db_url):
    engine = make_engine(db_url, pool_size=5)
    upgrade(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def engine(migrated_engine):
    """The migrated engine, emptied before each test (every table the migrations made)."""
    names = [n for n in inspect(migrated_engine).get_table_names() if n != "alembic_version"]
    with migrated_engine.begin() as conn:
        if migrated_engine.dialect.name == "postgresql":
            conn.execute(text("TRUNCATE " + ", ".join(f'"{n}"' for n in names)))
        else:
            for name in names:
                conn.execute(text(f'DELETE FROM "{name}"'))
    return migrated_engine


@pytest.fixture
def backend(engine) -> str:
    return engine.dialect.name


@pytest.fixture
def store(engine) -> FhirStore:
    return FhirStore(engine)


TOKEN_URL = "http://testserver/auth/token"


@pytest.fixture
def sms():
    from vaxhub.adapters.sms import RecordingSms

    return RecordingSms()


@contextmanager
def running_hub(engine, data_dir: Path, sms, settings_overrides: dict | None = None, **build_kwargs):
    """The app on `engine`, a raw TestClient, and `login(client_id, scopes, …)` returning bearer headers."""
    from fastapi.testclient import TestClient

    from tests.auth_helpers import ClientKey, assertion, token_form
    from vaxhub.hub.app import build_app
    from vaxhub.settings import load_settings

    settings = load_settings(
        database_url=engine.url.render_as_string(hide_password=False),
        auto_migrate=False,
        base_url="http://hub.test/fhir",
        data_dir=data_dir,
        rate_limit_per_second=1000,
        rate_limit_burst=5000,
        **(settings_overrides or {}),
    )
    app = build_app(settings, engine=engine, sms=sms, **build_kwargs)
    raw = TestClient(app)

    def login(client_id: str, scopes: str, *, site: str | None = None, kind: str = "system", roles: str = "") -> dict[str, str]:
        key = ClientKey.generate()
        app.state.clients.register(client_id, name=client_id, kind=kind, jwks=key.jwks(), scopes=scopes, site_code=site, roles=roles)
        r = raw.post("/auth/token", data=token_form(assertion(client_id, key, TOKEN_URL)))
        assert r.status_code == 200, r.text
        return {"authorization": f"Bearer {r.json()['access_token']}", "content-type": "application/fhir+json"}

    with raw:
        yield app, raw, login


@pytest.fixture
def hub(engine, tmp_path, sms):
    with running_hub(engine, tmp_path / "hub-data", sms) as running:
        yield running


@pytest.fixture
def client(hub):
    """A TestClient authorised as a national system client with every FHIR scope."""
    from fastapi.testclient import TestClient

    app, _raw, login = hub
    headers = login("national-admin", "system/*.cruds", roles="auditor")
    with TestClient(app, headers=headers) as c:
        yield c


@pytest.fixture
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"public test data not found at {SHARED_DATA} (it sits beside the project in development clones)")
    return SHARED_DATA


@pytest.fixture(scope="session")
def redis_url() -> str:
    """Redis (shared rate limits, shared render cache): VAXHUB_TEST_REDIS_URL (must answer), else the local server if there is one."""
    import redis

    given = os.environ.get("VAXHUB_TEST_REDIS_URL")
    url = given or "redis://127.0.0.1:6379/15"
    try:
        redis.Redis.from_url(url, socket_connect_timeout=1).ping()
    except redis.RedisError as exc:
        if given:
            raise
        pytest.skip(f"no Redis at {url} ({exc}); set VAXHUB_TEST_REDIS_URL to run the Redis half")
    return url
