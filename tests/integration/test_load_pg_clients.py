"""The load report charges PostgreSQL's CPU to the hub service each backend
serves, by the name each service gives its connections."""

from __future__ import annotations

from sqlalchemy import text

from bench.load import pg_clients, probes
from tests.rich_tables import cells as _rows
from vaxhub.hub.storage.engine import make_engine, name_connections


def test_each_backend_is_known_by_the_service_it_serves(postgres_database, monkeypatch):
    monkeypatch.setenv("PGAPPNAME", "placeholder")
    monkeypatch.delenv("PGAPPNAME")  # the undo leaves the environment as it was
    name_connections("vaxhub mpi work")
    linker, probe = make_engine(postgres_database, pool_size=1), make_engine(postgres_database, pool_size=1)
    try:
        with linker.connect() as conn:
            pid = conn.execute(text("SELECT pg_backend_pid()")).scalar_one()
            found = probes.backends(probe)
        assert pg_clients.service(found[pid]) == "MPI link workers (vaxhub mpi work)"
        with probe.connect() as conn:
            own = conn.execute(text("SELECT pg_backend_pid()")).scalar_one()
        assert own in probes.backends(probe)  # the probe's own connection is a backend of the database too
    finally:
        linker.dispose()
        probe.dispose()


def test_a_service_without_a_known_name_is_shown_by_its_own():
    assert pg_clients.service(None) == pg_clients.service("") == "unnamed: the harness's probes"
    assert pg_clients.service("psql") == "psql"


def test_each_service_has_its_share_and_its_cpu_per_dose():
    rendered = pg_clients.table({"API (vaxhub serve)": 30.0, "MPI link workers (vaxhub mpi work)": 10.0}, stored=10_000, window=100.0)
    assert _rows(rendered) == [
        ["API (vaxhub serve)", "30.0", "75%", "3.00"],
        ["MPI link workers (vaxhub mpi work)", "10.0", "25%", "1.00"],
    ]
    assert _rows(pg_clients.table({"API (vaxhub serve)": 1.0}, stored=0, window=1.0)) == [["API (vaxhub serve)", "1.0", "100%", "-"]]
