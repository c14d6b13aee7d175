"""`vaxhub restore`: check the whole archive, then put the database and keys back.

Nothing is written until every member has matched its checksum, the schema
revision is one this code knows, and the keys decrypt with this hub's
passphrase. Afterwards the restored database must show the manifest's revision
and exactly its row counts, table by table.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

from vaxhub.hub.backup.archive import POSTGRES_MEMBER, SQLITE_MEMBER, Manifest, read_archive
from vaxhub.hub.backup.errors import ForeignArchive, TargetInUse, UnknownRevision, VerificationFailed
from vaxhub.hub.backup.hub_setup import backend_of, code_heads, key_locations, known_revisions, passphrase, sqlite_path
from vaxhub.hub.backup.key_files import check_keys_free, install_keys, planned_key_files
from vaxhub.hub.backup.postgres_database import restore_dump, row_counts_and_revision, tables_in
from vaxhub.hub.backup.progress import Progress, no_progress
from vaxhub.hub.backup import sqlite_database
from vaxhub.settings import Settings


@dataclass
class RestoreReport:
    manifest: Manifest
    key_files: list[Path]
    needs_upgrade: bool  # the backup's schema is older than this code's: run `vaxhub db upgrade`


def acceptable(backend: str):
    """The manifest check run before any member is unpacked."""

    def accept(manifest: Manifest) -> None:
        if manifest.backend != backend:
            raise ForeignArchive(f"this is a backup of a {manifest.backend} database; VAXHUB_DATABASE_URL names a {backend} one")
        if not manifest.revision:
            raise ForeignArchive("the backup names no schema revision")
        unknown = set(manifest.revision) - known_revisions()
        if unknown:
            raise UnknownRevision(
                f"the backup is at schema revision {','.join(manifest.revision)}, newer than this vaxhub knows "
                f"(its newest is {','.join(sorted(code_heads()))}); restore it with vaxhub {manifest.vaxhub_version} or later"
            )

    return accept


def restore_hub(settings: Settings, src: Path, *, replace: bool = False, progress: Progress = no_progress) -> RestoreReport:
    backend = backend_of(settings)
    unsealing_passphrase = passphrase(settings)
    # Checked before reading the archive (again when writing): a refusal should not take an hour.
    if backend == "sqlite":
        target = sqlite_path(settings)
        if not replace and sqlite_database.holds_tables(target):
            raise TargetInUse(f"{target} already holds a database; restore to a new path or pass --replace (stop the hub first)")
        target.parent.mkdir(parents=True, exist_ok=True)
        staging_parent = target.parent  # the verified copy is renamed into place: same file system
    else:
        if not replace and tables_in(settings.database_url):
            raise TargetInUse("the target database is not empty; restore into an empty database or pass --replace (stop the hub first)")
        staging_parent = None  # the system's temporary folder (TMPDIR): the archive's may be read-only
    with tempfile.TemporaryDirectory(dir=staging_parent, prefix=".vaxhub-restore-") as tmp:
        staging = Path(tmp)
        manifest = read_archive(Path(src), staging, accept=acceptable(backend), progress=progress)
        keys = planned_key_files(staging, list(manifest.members), key_locations(settings), unsealing_passphrase)
        check_keys_free(keys, replace=replace)
        if backend == "sqlite":
            copy = staging / SQLITE_MEMBER
            _same_counts(sqlite_database.check_database(copy), manifest.row_counts, "the archived database")
            sqlite_database.install_database(copy, target, replace=replace, progress=progress)
            counts, revision = sqlite_database.row_counts(target), sqlite_database.revision_of(target)
        else:
            restore_dump(staging / POSTGRES_MEMBER, settings.database_url, expected_tables=set(manifest.row_counts),
                         replace=replace, bin_dir=settings.pg_bin_dir, progress=progress)
            counts, revision = row_counts_and_revision(settings.database_url)
        if revision != manifest.revision:
            raise VerificationFailed(f"the restored database is at revision {','.join(revision) or 'none'}, the backup at {','.join(manifest.revision)}")
        _same_counts(counts, manifest.row_counts, "the restored database")
        install_keys(keys)
    return RestoreReport(manifest, sorted(keys), needs_upgrade=set(manifest.revision) != code_heads())


def _same_counts(found: dict[str, int], expected: dict[str, int], what: str) -> None:
    if found != expected:
        differing = sorted(t for t in set(found) | set(expected) if found.get(t) != expected.get(t))
        detail = ", ".join(f"{t}: {found.get(t, 'missing')} (expected {expected.get(t, 'none')})" for t in differing[:5])
        raise VerificationFailed(f"{what} does not hold the rows the manifest lists: {detail}")
