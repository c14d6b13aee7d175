"""Fixtures of the retention tests: a database of its own at any migration
revision (a new SQLite file, or a new PostgreSQL database created and dropped
around the test), and audit events appended at chosen moments."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from datetime import datetime, timezone

import pytest
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import make_url

from vaxhub.hub.audit.trail import AuditTrail, Interaction
from vaxhub.hub.retention.months import Month
from vaxhub.hub.security.principal import Principal
from vaxhub.hub.storage.engine import make_engine

SITE = Principal("system", "site-79001", client_id="site-79001", site_code="79001")


@pytest.fixture(params=["sqlite", "postgres"])
def own_database(request, tmp_path) -> Iterator[Callable[[], Engine]]:
    """`make()` returns an engine on an empty database of this test's own, on each backend."""
    engines: list[Engine] = []
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'own.db'}"
        admin = None
    else:
        admin_url = os.environ.get("VAXHUB_TEST_POSTGRES_URL")
        if not admin_url:
            pytest.skip("VAXHUB_TEST_POSTGRES_URL is not set; PostgreSQL half skipped")
        name = f"vaxhub_retention_{uuid.uuid4().hex[:10]}"
        admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        url = make_url(admin_url).set(database=name).render_as_string(hide_password=False)

    def make() -> Engine:
        engine = make_engine(url, pool_size=3)
        engines.append(engine)
        return engine

    yield make
    for engine in engines:
        engine.dispose()
    if admin is not None:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def utcnow() -> datetime:
    return datetime.now(timezone.utc).replace(tzinfo=None)


def in_month(month: Month, day: int = 10, second: int = 0) -> datetime:
    return month.start.replace(day=day, hour=9, second=second, microsecond=123456)


class Recorder:
    """Appends read events at chosen moments, as the hub would have at those times."""

    def __init__(self, engine: Engine, chains: int = 3):
        self.moment = utcnow()
        self.trail = AuditTrail(engine, chains=chains, clock=lambda: self.moment)

    def read(self, when: datetime, *patients: str) -> str:
        self.moment = when
        interaction = Interaction("read", "GET", f"/fhir/Patient/{patients[0] if patients else 'x'}", principal=SITE)
        interaction.patients.update(patients)
        return self.trail.record(interaction)


@pytest.fixture
def recorder(engine) -> Recorder:
    return Recorder(engine)
