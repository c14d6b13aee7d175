"""Pooled PostgreSQL connections: pinged when they sat idle, trusted when just returned."""

from __future__ import annotations

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.exc import DBAPIError

from vaxhub.hub.storage import engine as engine_module
from vaxhub.hub.storage.engine import make_engine


@pytest.fixture
def pooled(postgres_database):
    engine = make_engine(postgres_database, pool_size=1)
    admin = create_engine(postgres_database, isolation_level="AUTOCOMMIT")
    yield engine, admin
    engine.dispose()
    admin.dispose()


def _backend(engine) -> int:
    with engine.connect() as conn:
        return conn.execute(text("SELECT pg_backend_pid()")).scalar_one()


def _cut(admin, pid: int) -> None:
    with admin.connect() as conn:
        assert conn.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid}).scalar_one()


def test_an_idle_connection_cut_by_the_server_is_replaced_before_use(pooled, monkeypatch):
    engine, admin = pooled
    first = _backend(engine)
    _cut(admin, first)
    monkeypatch.setattr(engine_module, "PING_AFTER_IDLE_SECONDS", 0.0)  # every returned connection counts as idle
    second = _backend(engine)  # the ping finds it dead; the pool connects anew and the query succeeds
    assert second != first


def test_a_connection_just_returned_is_not_pinged_and_a_cut_costs_one_statement(pooled, monkeypatch):
    engine, admin = pooled
    monkeypatch.setattr(engine_module, "PING_AFTER_IDLE_SECONDS", 3600.0)
    first = _backend(engine)
    _cut(admin, first)
    with pytest.raises(DBAPIError) as failed:
        _backend(engine)  # no ping: the statement itself meets the closed connection
    assert failed.value.connection_invalidated
    assert _backend(engine) != first  # SQLAlchemy dropped the dead connection; the next checkout is new
