"""A throw-away PostgreSQL database for one benchmark run."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Callable

from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import make_url


def fresh_postgres_database(admin_url: str, prefix: str) -> tuple[str, Callable[[], None]]:
    """Create `<prefix>_<random>` through `admin_url`; return its URL and a function that drops it."""
    name = f"{prefix}_{uuid.uuid4().hex[:8]}"
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))

    def drop() -> None:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()

    return make_url(admin_url).set(database=name).render_as_string(hide_password=False), drop


def drop_unless_kept(drop: Callable[[], None], url: str, *, keep: bool, say: Callable[[str], None] = print) -> None:
    """End of a run: drop the scratch database, or (`--keep`) say where it stays."""
    if keep:
        say(f"database kept: {url}")
    else:
        drop()


@contextmanager
def scratch_engine(admin_url: str, prefix: str, *, keep: bool, say: Callable[[str], None] = print) -> Iterator[Engine]:
    """A migrated engine on a fresh database; disposed at the end, and the
    database dropped unless `keep`."""
    from vaxhub.hub.storage.engine import make_engine, upgrade  # the hub's settings for its engines

    url, drop = fresh_postgres_database(admin_url, prefix)
    engine = make_engine(url)
    try:
        upgrade(engine)
        yield engine
    finally:
        engine.dispose()
        drop_unless_kept(drop, url, keep=keep, say=say)
