"""Backups and restores of a whole hub: its database and the key files it needs.

`backup_hub(settings, dest)` writes one verified archive (layout in `archive`);
`restore_hub(settings, src)` checks every byte of it before putting anything
back. SQLite goes through its online backup API, PostgreSQL through pg_dump and
pg_restore; point-in-time recovery of PostgreSQL is documented in
docs/operations/backup.md.
"""

from vaxhub.hub.backup.archive import Manifest
from vaxhub.hub.backup.create import backup_hub
from vaxhub.hub.backup.errors import (
    BackupError,
    BackupToolFailed,
    BadDestination,
    CorruptArchive,
    ForeignArchive,
    TargetInUse,
    UnknownRevision,
    VerificationFailed,
)
from vaxhub.hub.backup.restore import RestoreReport, restore_hub

__all__ = [
    "BackupError", "BackupToolFailed", "BadDestination", "CorruptArchive", "ForeignArchive", "Manifest",
    "RestoreReport", "TargetInUse", "UnknownRevision", "VerificationFailed", "backup_hub", "restore_hub",
]
