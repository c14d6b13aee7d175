"""PostgreSQL: `pg_dump --format=custom` and `pg_restore`, driven with the hub's own URL.

The dump reads a snapshot exported from a REPEATABLE READ transaction in which
the row counts and the Alembic revision of the manifest are taken too, so the
manifest describes exactly the rows in the dump. The restore runs as one
transaction (`--single-transaction --exit-on-error`; replacing a database, the
DROP and the restore together in one psql transaction): it lands whole or not at all.
Point-in-time recovery (base backup + WAL archive) is a server procedure,
documented in docs/operations/backup.md.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import threading
from collections import deque
from dataclasses import dataclass
from pathlib import Path

import psycopg
from psycopg.conninfo import make_conninfo
from sqlalchemy.engine import make_url

from vaxhub.hub.backup.errors import BackupToolFailed, BadDestination, TargetInUse, VerificationFailed
from vaxhub.hub.backup.progress import Progress, no_progress

_DUMPING = re.compile(r'dumping contents of table "?([^"\s]+)"?')
_RESTORING = re.compile(r'processing data for table "?([^"\s]+)"?')


@dataclass(frozen=True)
class PgTarget:
    """A SQLAlchemy URL as libpq takes it: a connection string without the password,
    which travels in PGPASSWORD (never on a command line, where `ps` shows it)."""

    conninfo: str
    password: str | None

    @classmethod
    def from_url(cls, url: str) -> "PgTarget":
        parsed = make_url(url)
        params: dict[str, str] = {}
        for key, value in parsed.query.items():
            params[key] = value[-1] if isinstance(value, tuple) else value
        for key, value in (("host", parsed.host), ("port", parsed.port), ("dbname", parsed.database), ("user", parsed.username)):
            if value is not None:
                params[key] = str(value)
        password = None if parsed.password is None else str(parsed.password)
        return cls(make_conninfo(**params), password)

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        if self.password is not None:
            env["PGPASSWORD"] = self.password
        return env

    def connect(self) -> psycopg.Connection:
        extra = {"password": self.password} if self.password is not None else {}
        try:
            return psycopg.connect(self.conninfo, connect_timeout=10, **extra)
        except psycopg.OperationalError as exc:
            raise BadDestination(f"cannot reach the PostgreSQL database: {str(exc).strip().splitlines()[0]}") from None


def find_tool(name: str, bin_dir: Path | None = None) -> str:
    """`pg_dump`/`pg_restore`: from `bin_dir`, else the newest /usr/lib/postgresql/*/bin, else PATH."""
    candidates: list[Path] = []
    if bin_dir:
        candidates.append(Path(bin_dir) / name)
    else:
        versions = sorted(Path("/usr/lib/postgresql").glob("*/bin"), key=lambda p: _major(p.parent.name), reverse=True)
        candidates += [v / name for v in versions]
    for candidate in candidates:
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    found = None if bin_dir else shutil.which(name)
    if not found:
        where = bin_dir or "/usr/lib/postgresql/*/bin or PATH"
        raise BackupToolFailed(f"{name} not found in {where}; install the PostgreSQL client tools or set VAXHUB_PG_BIN_DIR")
    return found


def _major(name: str) -> int:
    return int(name) if name.isdigit() else -1


def _tables(conn: psycopg.Connection) -> list[str]:
    # Partitions are counted through their parent (a partitioned audit month is not a table of its own).
    rows = conn.execute(
        "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
        " WHERE n.nspname = current_schema() AND c.relkind IN ('r', 'p') AND NOT c.relispartition ORDER BY 1"
    ).fetchall()
    return [r[0] for r in rows]


def _revision(conn: psycopg.Connection) -> list[str]:
    if conn.execute("SELECT to_regclass('alembic_version')").fetchone()[0] is None:
        return []
    return sorted(r[0] for r in conn.execute("SELECT version_num FROM alembic_version").fetchall())


def tables_in(url: str) -> list[str]:
    with PgTarget.from_url(url).connect() as conn:
        return _tables(conn)


def row_counts_and_revision(url: str) -> tuple[dict[str, int], list[str]]:
    with PgTarget.from_url(url).connect() as conn:
        counts = {t: conn.execute(f'SELECT count(*) FROM "{t}"').fetchone()[0] for t in _tables(conn)}
        return counts, _revision(conn)


def dump_database(url: str, target: Path, *, bin_dir: Path | None = None, progress: Progress = no_progress) -> tuple[dict[str, int], list[str]]:
    """Dump the database to `target`; returns the rows per table and the revision of the same snapshot."""
    pg_dump = find_tool("pg_dump", bin_dir)
    pg = PgTarget.from_url(url)
    with pg.connect() as conn:
        conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
        conn.read_only = True
        snapshot = conn.execute("SELECT pg_export_snapshot()").fetchone()[0]
        tables = _tables(conn)
        counts = {t: conn.execute(f'SELECT count(*) FROM "{t}"').fetchone()[0] for t in tables}
        revision = _revision(conn)
        # The exporting transaction stays open until pg_dump is done with its snapshot.
        args = [pg_dump, "--format=custom", "--compress=0", f"--snapshot={snapshot}", "--verbose", f"--file={target}", f"--dbname={pg.conninfo}"]
        _run(args, pg.env(), _DUMPING, "dumping database", len(tables), progress)
        conn.rollback()
    return counts, revision


def list_dump(dump: Path, *, bin_dir: Path | None = None) -> None:
    """Read the dump's table of contents back: pg_restore must be able to open it."""
    result = subprocess.run([find_tool("pg_restore", bin_dir), "--list", str(dump)], capture_output=True, text=True)
    if result.returncode != 0:
        raise VerificationFailed(f"pg_restore cannot read the dump it was given: {result.stderr.strip()[:300]}")


def restore_dump(
    dump: Path, url: str, *, expected_tables: set[str], replace: bool, bin_dir: Path | None = None, progress: Progress = no_progress
) -> None:
    """Restore `dump` into the database at `url`: an empty one, or with `replace` one that
    holds only tables the dump brings (dropped and recreated, in the same transaction)."""
    pg_restore = find_tool("pg_restore", bin_dir)
    pg = PgTarget.from_url(url)
    present = set(tables_in(url))
    if present and not replace:
        raise TargetInUse("the target database is not empty; restore into an empty database or pass --replace (stop the hub first)")
    strangers = present - expected_tables
    if strangers:
        raise TargetInUse(
            f"the target database holds tables the backup does not ({', '.join(sorted(strangers))}); restore into an empty database"
        )
    if present:
        _replace(dump, pg, sorted(present), pg_restore, find_tool("psql", bin_dir), len(expected_tables), progress)
        return
    args = [pg_restore, "--no-owner", "--no-privileges", "--exit-on-error", "--single-transaction", "--verbose", f"--dbname={pg.conninfo}"]
    _run([*args, str(dump)], pg.env(), _RESTORING, "restoring database", len(expected_tables), progress)


def _replace(dump: Path, pg: PgTarget, tables: list[str], pg_restore: str, psql: str, total: int, progress: Progress) -> None:
    """Drop the hub's tables and restore the dump in ONE transaction: pg_restore
    writes the script, psql runs it after the DROP under --single-transaction.
    (`pg_restore --clean` cannot drop the constraints of partitioned tables.)"""
    drop = "DROP TABLE IF EXISTS " + ", ".join(f'"{t}"' for t in tables) + " CASCADE"
    env = {**pg.env(), "PGOPTIONS": "-c client_min_messages=warning"}
    restore = [pg_restore, "--no-owner", "--no-privileges", "--verbose", "--file=-", str(dump)]
    run_sql = [psql, "-X", "-q", "--single-transaction", "-v", "ON_ERROR_STOP=1", "-c", drop, "-f", "-", f"--dbname={pg.conninfo}"]
    done = 0
    progress("restoring database", 0, total)
    tail: deque[str] = deque(maxlen=30)
    with subprocess.Popen(restore, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) as writer, \
            subprocess.Popen(run_sql, env=env, stdin=writer.stdout, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True) as runner:
        assert writer.stdout is not None and writer.stderr is not None and runner.stderr is not None
        writer.stdout.close()  # psql holds the read end now
        psql_errors: list[str] = []
        reader = threading.Thread(target=lambda: psql_errors.extend(runner.stderr), daemon=True)
        reader.start()
        for line in writer.stderr:
            tail.append(line.rstrip())
            if _RESTORING.search(line):
                done += 1
                progress("restoring database", min(done, total), total)
        wrote, ran = writer.wait(), runner.wait()
        reader.join()
    if wrote != 0:
        raise BackupToolFailed(f"pg_restore failed (exit {wrote}): " + " | ".join(list(tail)[-5:]))
    if ran != 0:
        raise BackupToolFailed(f"psql failed (exit {ran}); nothing was changed: " + " | ".join(e.strip() for e in psql_errors[-5:]))


def _run(args: list[str], env: dict[str, str], step_line: re.Pattern[str], step: str, total: int, progress: Progress) -> None:
    """Run a PostgreSQL tool, moving the progress on each table its --verbose output names."""
    tool = Path(args[0]).name
    tail: deque[str] = deque(maxlen=30)
    done = 0
    progress(step, 0, total)
    with subprocess.Popen(args, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True) as proc:
        assert proc.stderr is not None
        for line in proc.stderr:
            tail.append(line.rstrip())
            if step_line.search(line):
                done += 1
                progress(step, min(done, total), total)
        code = proc.wait()
    if code != 0:
        errors = [line for line in tail if "error" in line.lower()] or list(tail)[-5:]
        raise BackupToolFailed(f"{tool} failed (exit {code}): " + " | ".join(errors[-5:]))
