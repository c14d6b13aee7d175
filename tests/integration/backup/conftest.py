"""Fixtures of the backup tests: a hub of its own per test (a new SQLite file, or a
new PostgreSQL database created and dropped around the test), its settings and
key folder, and a way to destroy it and get an empty database back."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import make_url

from vaxhub.hub.storage.engine import make_engine, upgrade
from vaxhub.settings import Settings, load_settings


@dataclass
class HubPlace:
    """Where one hub keeps its data: the database URL and its data folder (keys)."""

    backend: str
    url: str
    data_dir: Path
    admin_url: str | None = None

    def settings(self, **overrides: object) -> Settings:
        return load_settings(database_url=self.url, data_dir=self.data_dir, auto_migrate=False, **overrides)

    def engine(self, *, migrate: bool = True) -> Engine:
        engine = make_engine(self.url, pool_size=2)
        if migrate:
            upgrade(engine)
        return engine

    def env(self) -> dict[str, str]:
        """The environment the CLI reads its settings from."""
        return {"VAXHUB_DATABASE_URL": self.url, "VAXHUB_DATA_DIR": str(self.data_dir), "VAXHUB_ENVIRONMENT": "development"}

    def destroy(self) -> None:
        """Lose the database and every key file, leaving an empty database to restore into."""
        if self.backend == "sqlite":
            database = Path(make_url(self.url).database)
            for path in (database, Path(f"{database}-wal"), Path(f"{database}-shm")):
                path.unlink(missing_ok=True)
        else:
            name = make_url(self.url).database
            admin = create_engine(self.admin_url, isolation_level="AUTOCOMMIT")
            with admin.connect() as conn:
                conn.execute(text(f'DROP DATABASE "{name}" WITH (FORCE)'))
                conn.execute(text(f'CREATE DATABASE "{name}"'))
            admin.dispose()
        for path in sorted(self.data_dir.rglob("*"), reverse=True):
            path.rmdir() if path.is_dir() else path.unlink()
        assert not any(self.data_dir.iterdir())


def _fresh_place(backend: str, tmp_path: Path) -> Iterator[HubPlace]:
    data_dir = tmp_path / "hub-data"
    data_dir.mkdir()
    if backend == "sqlite":
        yield HubPlace("sqlite", f"sqlite:///{tmp_path / 'db' / 'vaxhub.db'}", data_dir)
        return
    admin_url = os.environ.get("VAXHUB_TEST_POSTGRES_URL")
    if not admin_url:
        pytest.skip("VAXHUB_TEST_POSTGRES_URL is not set; PostgreSQL backups not tested")
    name = f"vaxhub_backup_{uuid.uuid4().hex[:10]}"
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield HubPlace("postgresql", make_url(admin_url).set(database=name).render_as_string(hide_password=False), data_dir, admin_url)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(params=["sqlite", "postgres"])
def place(request, tmp_path) -> Iterator[HubPlace]:
    """A new, empty hub location on each backend."""
    yield from _fresh_place("sqlite" if request.param == "sqlite" else "postgresql", tmp_path)


@pytest.fixture
def sqlite_place(tmp_path) -> Iterator[HubPlace]:
    yield from _fresh_place("sqlite", tmp_path)


@pytest.fixture
def other_place(request, tmp_path) -> Iterator[HubPlace]:
    """A second, empty location on the same backend as `place` (restores elsewhere)."""
    backend = "sqlite" if request.node.callspec.params.get("place") == "sqlite" else "postgresql"
    second = tmp_path / "second"
    second.mkdir()
    yield from _fresh_place(backend, second)
