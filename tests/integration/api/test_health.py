"""`/healthz` and `/readyz` tell a load balancer the truth: public, answering
without a token, and saying which check failed without revealing anything else."""

from __future__ import annotations

import os
import socket
import threading
import uuid
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, event, text
from sqlalchemy.engine import make_url

from tests.own_loop import run_on_own_loop
from vaxhub.hub.api import health
from vaxhub.hub.storage.engine import head_revision, make_engine, upgrade


def _probe_app(engine) -> TestClient:  # noqa: ANN001
    app = FastAPI()
    app.include_router(health.build_router(engine))
    return TestClient(app)


@pytest.fixture
def fresh_database(request, tmp_path):
    """A URL of a new, empty database on the backend asked for (dropped afterwards)."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'probe.db'}"
        return
    admin_url = os.environ.get("VAXHUB_TEST_POSTGRES_URL")
    if not admin_url:
        pytest.skip("VAXHUB_TEST_POSTGRES_URL is not set")
    name = f"vaxhub_health_{uuid.uuid4().hex[:10]}"
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    yield make_url(admin_url).set(database=name).render_as_string(hide_password=False)
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def test_the_hub_answers_both_probes_without_a_token(hub):
    _app, raw, _login = hub
    r = raw.get("/healthz")
    assert (r.status_code, r.json()) == (200, {"status": "ok"})
    r = raw.get("/readyz")
    assert r.status_code == 200, r.text
    assert r.json() == {"status": "ready", "checks": {"database": "ok", "migrations": "ok"}}
    assert r.headers["cache-control"] == "no-store"


def test_head_probes_are_answered_and_the_api_description_names_each_operation_once(hub):
    _app, raw, _login = hub
    for path in ("/healthz", "/readyz"):
        r = raw.head(path)
        assert (r.status_code, r.content, r.headers["cache-control"]) == (200, b"", "no-store")
    operations = [op.get("operationId") for item in raw.get("/openapi.json").json()["paths"].values() for op in item.values()]
    assert len(operations) == len(set(operations)), sorted(o for o in operations if operations.count(o) > 1)


def test_liveness_never_asks_the_database_and_readiness_does(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path / 'hub.db'}")
    upgrade(engine)
    statements = []
    event.listen(engine, "before_cursor_execute", lambda _c, _cur, statement, *_: statements.append(statement))
    probes = _probe_app(engine)
    assert probes.get("/healthz").status_code == 200
    assert statements == []
    assert probes.get("/readyz").status_code == 200
    assert statements
    engine.dispose()


@pytest.mark.parametrize("fresh_database", ["sqlite", "postgres"], indirect=True)
def test_a_database_behind_the_code_is_not_ready(fresh_database):
    engine = make_engine(fresh_database)
    upgrade(engine, "0008")
    probes = _probe_app(engine)
    r = probes.get("/readyz")
    assert r.status_code == 503
    assert r.json() == {"status": "unavailable", "checks": {"database": "ok", "migrations": "behind"}}
    assert "0008" not in r.text  # revisions are for `vaxhub db current`, not for anyone asking
    upgrade(engine)
    assert probes.get("/readyz").status_code == 200
    assert probes.get("/healthz").status_code == 200
    engine.dispose()


@pytest.mark.parametrize("fresh_database", ["sqlite", "postgres"], indirect=True)
def test_unmigrated_and_unknown_revisions_are_not_ready(fresh_database):
    engine = make_engine(fresh_database)
    with engine.connect():
        pass  # the database exists, empty
    probes = _probe_app(engine)
    assert probes.get("/readyz").json()["checks"] == {"database": "ok", "migrations": "missing"}
    upgrade(engine)
    with engine.begin() as conn:  # as a newer release's migration would leave it
        conn.execute(text("DELETE FROM alembic_version"))
        conn.execute(text("INSERT INTO alembic_version (version_num) VALUES ('f00d_from_a_newer_release')"))
    r = probes.get("/readyz")
    assert (r.status_code, r.json()["checks"]["migrations"]) == (503, "ahead")
    engine.dispose()


def test_head_revisions_are_compared_as_a_set():
    heads = set((head_revision() or "").split(","))
    probe = health.ReadinessProbe(engine=None, heads=heads, known=heads)  # type: ignore[arg-type]
    assert probe._migrations(set(reversed(sorted(heads)))) == "ok"


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_an_unreachable_postgres_is_not_ready():
    engine = make_engine(f"postgresql+psycopg://postgres@127.0.0.1:{_closed_port()}/vaxhub")
    r = _probe_app(engine).get("/readyz")
    assert r.status_code == 503
    assert r.json() == {"status": "unavailable", "checks": {"database": "unreachable"}}
    assert "127.0.0.1" not in r.text and "postgres" not in r.text
    assert _probe_app(engine).get("/healthz").status_code == 200  # alive all the same
    engine.dispose()


def test_a_removed_sqlite_file_is_not_ready_and_not_recreated(tmp_path):
    path = tmp_path / "hub.db"
    engine = make_engine(f"sqlite:///{path}")
    upgrade(engine)
    probes = _probe_app(engine)
    assert probes.get("/readyz").status_code == 200
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    r = probes.get("/readyz")
    assert (r.status_code, r.json()["checks"]) == (503, {"database": "missing"})
    assert not path.exists()
    engine.dispose()


@pytest.mark.parametrize("fresh_database", ["postgres"], indirect=True)
def test_a_hung_database_answers_timeout_and_runs_one_check_at_a_time(fresh_database):
    engine = make_engine(fresh_database)
    upgrade(engine)
    heads = set((head_revision() or "").split(","))
    probe = health.ReadinessProbe(engine, heads, heads, timeout=0.3)
    locker = engine.connect()
    locker.begin()
    locker.execute(text("LOCK TABLE alembic_version IN ACCESS EXCLUSIVE MODE"))  # readers of it now wait
    try:
        assert run_on_own_loop(probe.checks) == {"database": "timeout"}
        assert run_on_own_loop(probe.checks) == {"database": "timeout"}
        assert [t.name for t in threading.enumerate()].count("readyz") == 1, "probes piled up checks"
    finally:
        locker.rollback()
        locker.close()
    running = probe._running
    running.result(timeout=5)  # the stuck check finishes once the lock is gone
    assert run_on_own_loop(probe.checks) == {"database": "ok", "migrations": "ok"}
    engine.dispose()
