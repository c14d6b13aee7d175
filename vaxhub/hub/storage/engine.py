"""Database engines and schema migrations.

SQLite runs in WAL mode so readers never block the writer; PostgreSQL is the
production store. The schema is owned by Alembic from the first table on:
`upgrade()` brings any database to the current revision.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import orjson
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, create_engine, event, exc
from sqlalchemy.engine import make_url

MIGRATIONS = Path(__file__).with_name("migrations")
# Execution option marking a connection that will write (see the SQLite "begin" hook).
WRITE_OPTION = "vaxhub_write"


def _dumps(value: object) -> str:
    return orjson.dumps(value).decode()


def name_connections(name: str) -> None:
    """Name the PostgreSQL connections of this process and of the processes it starts.

    libpq sends `PGAPPNAME` as the connection's `application_name`, which
    `pg_stat_activity` shows beside each backend and `log_line_prefix` can
    print (`%a`): an operator looking at a busy server sees which hub service
    each connection serves. Set in the environment rather than on the engine
    so that uvicorn's worker processes, started afresh, inherit it. A name the
    operator set (`PGAPPNAME`, or `application_name` in the database URL)
    wins."""
    os.environ.setdefault("PGAPPNAME", name[:63])  # PostgreSQL keeps 63 bytes (NAMEDATALEN - 1)


def make_engine(url: str, *, pool_size: int = 10, echo: bool = False, statement_timeout_ms: int | None = None) -> Engine:
    """An engine for `url` with the settings each backend needs."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(
            url,
            echo=echo,
            json_serializer=_dumps,
            json_deserializer=orjson.loads,
            connect_args={"check_same_thread": False, "timeout": 30},
        )

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn, _record):  # noqa: ANN001
            # Let SQLAlchemy, not pysqlite, open transactions, so BEGIN IMMEDIATE is ours to issue.
            dbapi_conn.isolation_level = None
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.close()

        @event.listens_for(engine, "begin")
        def _sqlite_begin(conn):  # noqa: ANN001
            # A writer takes the write lock up front: a deferred transaction that reads
            # and then writes fails with "database is locked" when another writer got in
            # between. Readers begin deferred and, in WAL mode, never wait for writers.
            write = conn.get_execution_options().get(WRITE_OPTION, False)
            conn.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")

        return engine
    engine = create_engine(
        url,
        echo=echo,
        json_serializer=_dumps,
        json_deserializer=orjson.loads,
        pool_size=pool_size,
        max_overflow=pool_size,
    )
    _ping_when_idle(engine)
    if statement_timeout_ms and engine.dialect.name == "postgresql":

        @event.listens_for(engine, "connect")
        def _timeout(dbapi_conn, _record):  # noqa: ANN001
            # One runaway query must not hold a connection (and its locks) for ever.
            with dbapi_conn.cursor() as cur:
                cur.execute(f"SET statement_timeout = {int(statement_timeout_ms)}")
            dbapi_conn.commit()

    return engine


def reader(engine: Engine) -> Engine:
    """The engine for reads that stand alone (no write follows in their transaction).

    On PostgreSQL its connections run in autocommit: psycopg would otherwise
    open each checkout's transaction with a BEGIN round trip and the pool
    close it with a ROLLBACK, two round trips that cost the server more CPU
    than a keyed read itself. Under READ COMMITTED every statement takes its
    own snapshot either way, so what a read sees does not change; a read that
    needs one snapshot across statements or takes row locks must use `engine`.
    SQLite keeps its deferred BEGIN (its readers hold a WAL snapshot)."""
    if engine.dialect.name != "postgresql":
        return engine
    # One per engine: each `execution_options` call builds an engine and hooks
    # events on it, too much to do per request. Kept on the engine itself (a
    # weak-keyed map would never let it go: the reader refers to its engine).
    found = getattr(engine, _READER_ATTRIBUTE, None)
    if found is None:
        found = engine.execution_options(isolation_level="AUTOCOMMIT")
        setattr(engine, _READER_ATTRIBUTE, found)
    return found


_READER_ATTRIBUTE = "_vaxhub_reader"


# A pooled connection unused this long is pinged before it is handed out.
PING_AFTER_IDLE_SECONDS = 10.0


def _ping_when_idle(engine: Engine) -> None:
    """Pessimistic disconnect handling, but only for connections that sat idle.

    SQLAlchemy's `pool_pre_ping` costs a round trip on every checkout, and a
    request checks out a connection several times. A connection returned
    moments ago is as alive as the database: if the server went away since,
    the statement fails, SQLAlchemy sees the disconnect and drops the pool.
    One that sat idle may have been cut by a restart, a failover or a
    firewall's idle timeout, so it is pinged, and a dead one replaced.
    """

    @event.listens_for(engine, "checkin")
    def _idle_from(_dbapi_conn, record) -> None:  # noqa: ANN001
        record.info["idle_since"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _ping_if_idle(dbapi_conn, record, _proxy) -> None:  # noqa: ANN001
        since = record.info.get("idle_since")
        if since is not None and time.monotonic() - since > PING_AFTER_IDLE_SECONDS:
            try:
                engine.dialect.do_ping(dbapi_conn)
            except engine.dialect.loaded_dbapi.Error as err:  # the pool discards it and connects anew
                raise exc.DisconnectionError("the pooled connection did not answer a ping") from err


def alembic_config(url: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def upgrade(engine: Engine, revision: str = "heads") -> None:
    """Apply migrations up to `revision` (default: every head) on the engine's database."""
    cfg = alembic_config(engine.url.render_as_string(hide_password=False))
    with engine.connect().execution_options(**{WRITE_OPTION: True}) as conn, conn.begin():
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, revision)


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as conn:
        heads = MigrationContext.configure(conn).get_current_heads()
    return ",".join(sorted(heads)) or None


def head_revision() -> str | None:
    """The newest revision; the heads joined by commas while branches are unmerged."""
    heads = ScriptDirectory.from_config(alembic_config("sqlite://")).get_heads()
    return ",".join(sorted(heads)) or None


@contextmanager
def write_transaction(engine: Engine) -> Iterator[Connection]:
    """A transaction that will write: on SQLite it takes the write lock up front."""
    with engine.connect().execution_options(**{WRITE_OPTION: True}) as conn, conn.begin():
        yield conn
