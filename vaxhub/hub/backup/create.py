"""`vaxhub backup`: the database (consistent while the hub keeps writing) and the
key files, in one verified archive (see `archive` for its layout)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from vaxhub import __version__
from vaxhub.hub.backup.archive import POSTGRES_MEMBER, SQLITE_MEMBER, Manifest, now_iso, write_archive
from vaxhub.hub.backup.errors import BadDestination, VerificationFailed
from vaxhub.hub.backup.hub_setup import backend_of, key_locations, passphrase, sqlite_path
from vaxhub.hub.backup.key_files import stage_keys
from vaxhub.hub.backup.postgres_database import dump_database, list_dump
from vaxhub.hub.backup.progress import Progress, no_progress
from vaxhub.hub.backup import sqlite_database
from vaxhub.settings import Settings


def check_destination(dest: Path) -> None:
    """Refuse a bad destination before the long copy, not after it."""
    if dest.exists():
        raise BadDestination(f"{dest} already exists; choose a new name (a backup is never overwritten)")
    if not dest.parent.is_dir():
        raise BadDestination(f"cannot write the backup to {dest}: folder {dest.parent} does not exist")
    if not os.access(dest.parent, os.W_OK | os.X_OK):
        raise BadDestination(f"cannot write the backup to {dest}: folder {dest.parent} is not writable")


def backup_hub(settings: Settings, dest: Path, *, progress: Progress = no_progress) -> Manifest:
    """Write a backup of the hub described by `settings` to `dest`; returns its manifest."""
    dest = Path(dest)
    check_destination(dest)
    backend = backend_of(settings)
    sealing_passphrase = passphrase(settings)
    # Staged beside the destination: the same file system, so no surprise about space in /tmp.
    with tempfile.TemporaryDirectory(dir=dest.parent, prefix=".vaxhub-backup-") as tmp:
        staging = Path(tmp)
        if backend == "sqlite":
            copy = staging / SQLITE_MEMBER
            sqlite_database.copy_database(sqlite_path(settings), copy, progress)
            counts = sqlite_database.check_database(copy)
            revision = sqlite_database.revision_of(copy)
            files = {SQLITE_MEMBER: copy}
        else:
            dump = staging / POSTGRES_MEMBER
            counts, revision = dump_database(settings.database_url, dump, bin_dir=settings.pg_bin_dir, progress=progress)
            list_dump(dump, bin_dir=settings.pg_bin_dir)
            files = {POSTGRES_MEMBER: dump}
        if not revision:
            raise VerificationFailed("the database has no migration revision: it is not a vaxhub database, or was never migrated")
        files.update(stage_keys(key_locations(settings), staging, sealing_passphrase))
        manifest = Manifest(backend=backend, revision=revision, row_counts=counts, created=now_iso(), vaxhub_version=__version__)
        return write_archive(dest, manifest, files, progress)
