"""The load test's own PostgreSQL cluster (`--own-postgres`): made with the
operations guide's settings, usable by the hub's migrations, and gone after
(unless kept, when it still answers and its stop command removes it)."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest
from sqlalchemy import create_engine, text

from bench.load import statements
from bench.load.own_postgres import SETTINGS, OwnPostgres, _bin_dir

pytestmark = pytest.mark.skipif(
    _bin_dir() is None and shutil.which("initdb") is None, reason="PostgreSQL's initdb and pg_ctl are not installed here"
)


def test_a_cluster_of_its_own_runs_with_the_guides_settings_and_is_removed_after():
    if os.geteuid() == 0 and shutil.which("runuser") is None:
        pytest.skip("as root the cluster runs as the postgres user, through runuser")
    server = OwnPostgres()
    with server as admin_url:
        engine = create_engine(admin_url)
        try:
            with engine.connect() as conn:
                shown = {name: conn.execute(text(f"SHOW {name}")).scalar() for name in ("shared_buffers", "max_wal_size", "autovacuum")}
                assert conn.execute(text("SELECT inet_server_addr()::text")).scalar().startswith("127.0.0.1")
        finally:
            engine.dispose()
    assert shown == {"shared_buffers": SETTINGS["shared_buffers"], "max_wal_size": SETTINGS["max_wal_size"], "autovacuum": "on"}
    assert not server.root.exists()


def test_a_kept_cluster_still_answers_after_the_run_and_its_stop_command_removes_it():
    if os.geteuid() == 0 and shutil.which("runuser") is None:
        pytest.skip("as root the cluster runs as the postgres user, through runuser")
    server = OwnPostgres(keep=True)
    try:
        with server as admin_url:
            pass
        engine = create_engine(admin_url)
        try:
            with engine.connect() as conn:
                assert conn.execute(text("SELECT 1")).scalar() == 1
        finally:
            engine.dispose()
    finally:
        subprocess.run(server.stop_command(), shell=True, check=True, capture_output=True)
    assert not server.root.exists()


def test_with_statements_the_cluster_counts_each_statement_from_the_reset():
    if os.geteuid() == 0 and shutil.which("runuser") is None:
        pytest.skip("as root the cluster runs as the postgres user, through runuser")
    with OwnPostgres(statements.SERVER_SETTINGS) as admin_url:
        engine = create_engine(admin_url)
        try:
            statements.enable(engine)
            with engine.connect() as conn:
                conn.execute(text("CREATE TABLE counted (n int)"))
                conn.commit()
            statements.reset(engine)
            with engine.connect() as conn:
                for n in range(7):
                    conn.execute(text("INSERT INTO counted VALUES (:n)"), {"n": n})
                conn.commit()
            found = statements.read(engine)
        finally:
            engine.dispose()
    (insert,) = [s for s in found if s.query.startswith("INSERT INTO counted")]
    assert insert.calls == 7 and insert.rows == 7 and insert.wal_bytes > 0
    assert not any(s.query.startswith("CREATE TABLE") for s in found)  # before the reset
    assert found == sorted(found, key=lambda s: s.total_ms, reverse=True)
