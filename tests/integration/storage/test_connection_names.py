"""Each hub service names its PostgreSQL connections, so that an operator
reading `pg_stat_activity` (or a log line with `%a`) sees who is who."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from vaxhub.hub.storage.engine import make_engine, name_connections


@pytest.fixture
def no_name(monkeypatch):
    # Set, then removed: the undo leaves the environment as it was, whatever the test adds.
    monkeypatch.setenv("PGAPPNAME", "placeholder")
    monkeypatch.delenv("PGAPPNAME")


def _seen_as(url: str) -> str:
    engine = make_engine(url, pool_size=1)
    try:
        with engine.connect() as conn:
            return conn.execute(text("SELECT application_name FROM pg_stat_activity WHERE pid = pg_backend_pid()")).scalar_one()
    finally:
        engine.dispose()


def test_a_named_service_is_seen_by_its_name(postgres_database, no_name):
    assert _seen_as(postgres_database) == ""
    name_connections("vaxhub worker")
    assert _seen_as(postgres_database) == "vaxhub worker"


def test_the_operators_name_wins(postgres_database, monkeypatch):
    monkeypatch.setenv("PGAPPNAME", "vaccination-site-gateway")
    name_connections("vaxhub worker")
    assert _seen_as(postgres_database) == "vaccination-site-gateway"
