"""SQLite: an online copy with the backup API, and putting a copy back.

The copy holds one read transaction on the source for its whole run. In WAL mode
that pins a snapshot without blocking the hub's writers, so the backup steps
(which let the progress bar move) all read the same state and never restart,
however busy the hub is.

Restore never deletes or renames a database file that processes may have open
(they would go on writing to the unlinked file). A missing target gets the
verified copy renamed into place; an existing one, only with `replace`, is
overwritten through the backup API, which holds the target's write lock for the
whole copy: readers see the old or the new database, never a mix.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import quote

from vaxhub.hub.backup.durable import fsync_dir
from vaxhub.hub.backup.errors import BackupError, BadDestination, TargetInUse, VerificationFailed
from vaxhub.hub.backup.progress import Progress, no_progress

PAGES_PER_STEP = 1024
SIDECARS = ("-wal", "-shm", "-journal")


@contextmanager
def _sqlite_errors(what: str) -> Iterator[None]:
    """SQLite's own errors (not a database, disk full, locked too long) as a backup error."""
    try:
        yield
    except sqlite3.Error as exc:
        raise BackupError(f"{what}: {exc}") from None


def _open_existing(path: Path) -> sqlite3.Connection:
    # mode=rw: a missing file is an error, not a new empty database.
    conn = sqlite3.connect(f"file:{quote(str(path))}?mode=rw", uri=True, isolation_level=None, timeout=30)
    conn.execute("PRAGMA busy_timeout=30000")
    return conn


def copy_database(source: Path, target: Path, progress: Progress = no_progress, *, pages_per_step: int = PAGES_PER_STEP) -> None:
    """Copy the live database `source` to the new file `target`, consistently."""
    if not source.is_file():
        raise BadDestination(f"no SQLite database at {source}")
    with _sqlite_errors(f"cannot copy the SQLite database {source}"):
        _copy(source, target, progress, pages_per_step)


def _copy(source: Path, target: Path, progress: Progress, pages_per_step: int) -> None:
    src = _open_existing(source)
    dst = sqlite3.connect(target, isolation_level=None)
    try:
        src.execute("BEGIN")
        src.execute("SELECT count(*) FROM sqlite_master").fetchone()  # starts the read snapshot
        src.backup(dst, pages=pages_per_step, progress=lambda _s, remaining, total: progress("copying database", total - remaining, total))
        src.execute("COMMIT")
        # The copy stands alone: one file, no WAL beside it.
        dst.execute("PRAGMA journal_mode=DELETE")
    finally:
        dst.close()
        src.close()


def check_database(path: Path) -> dict[str, int]:
    """`PRAGMA integrity_check` on the file, then the rows of each table."""
    with _sqlite_errors(f"SQLite integrity check failed on {path}"):
        conn = _open_existing(path)
        try:
            result = [row[0] for row in conn.execute("PRAGMA integrity_check")]
            if result != ["ok"]:
                raise VerificationFailed(f"SQLite integrity check failed on {path}: {'; '.join(result[:5])}")
            return table_row_counts(conn)
        finally:
            conn.close()


def table_row_counts(conn: sqlite3.Connection) -> dict[str, int]:
    names = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name")]
    return {name: conn.execute(f'SELECT count(*) FROM "{name}"').fetchone()[0] for name in names}


def row_counts(path: Path) -> dict[str, int]:
    conn = _open_existing(path)
    try:
        return table_row_counts(conn)
    finally:
        conn.close()


def revision_of(path: Path) -> list[str]:
    conn = _open_existing(path)
    try:
        if not conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'alembic_version'").fetchone():
            return []
        return sorted(r[0] for r in conn.execute("SELECT version_num FROM alembic_version"))
    finally:
        conn.close()


def holds_tables(path: Path) -> bool:
    if not path.exists():
        return False
    with _sqlite_errors(f"{path} is there but cannot be read as a SQLite database; move it away"):
        conn = _open_existing(path)
        try:
            return conn.execute("SELECT count(*) FROM sqlite_master WHERE type = 'table'").fetchone()[0] > 0
        finally:
            conn.close()


def install_database(copy: Path, target: Path, *, replace: bool, progress: Progress = no_progress) -> None:
    """Put the verified `copy` at `target` (see the module docstring for how)."""
    if holds_tables(target) and not replace:
        raise TargetInUse(f"{target} already holds a database; restore to a new path or pass --replace (stop the hub first)")
    if not target.exists():
        for suffix in SIDECARS:
            # A WAL left without its database would be replayed onto the restored one.
            Path(f"{target}{suffix}").unlink(missing_ok=True)
        target.parent.mkdir(parents=True, exist_ok=True)
        progress("installing database", 0, 1)
        os.replace(copy, target)
        fsync_dir(target.parent)
        progress("installing database", 1, 1)
        return
    with _sqlite_errors(f"cannot write the restored database into {target}"):
        _overwrite(copy, target, progress)


def _overwrite(copy: Path, target: Path, progress: Progress) -> None:
    src = _open_existing(copy)
    dst = _open_existing(target)
    try:
        # One step: the target's write lock is held from the first page to the last.
        src.backup(dst, pages=-1, progress=lambda _s, remaining, total: progress("installing database", total - remaining, total))
    finally:
        dst.close()
        src.close()


