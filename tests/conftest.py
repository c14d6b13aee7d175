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


@pytest.fixture
def client(engine):
    from fastapi.testclient import TestClient

    from vaxhub.hub.app import build_app
    from vaxhub.settings import load_settings

    settings = load_settings(database_url=str(engine.url), auto_migrate=False, base_url="http://hub.test/fhir")
    with TestClient(build_app(settings, engine=engine), headers={"content-type": "application/fhir+json"}) as c:
        yield c


@pytest.fixture
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"public test data not found at {SHARED_DATA} (it sits beside the project in development clones)")
    return SHARED_DATA
