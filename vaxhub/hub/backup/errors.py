"""What can go wrong with a backup or a restore, each with a message an operator can act on.

    BackupError (VaxhubError)
    ├── BadDestination      the archive cannot be written there, or a restore target is missing
    ├── CorruptArchive      the archive's bytes are not what its manifest says (or not an archive)
    ├── ForeignArchive      a readable archive that is not a vaxhub backup we can restore
    ├── UnknownRevision     the backup's schema is newer than this code knows
    ├── TargetInUse         the restore would overwrite a database or keys (use --replace)
    ├── BackupToolFailed    pg_dump / pg_restore failed, or is missing
    └── VerificationFailed  the copy or the restored database does not check out
"""

from __future__ import annotations

from vaxhub.errors import VaxhubError


class BackupError(VaxhubError):
    pass


class BadDestination(BackupError):
    pass


class CorruptArchive(BackupError):
    pass


class ForeignArchive(BackupError):
    pass


class UnknownRevision(BackupError):
    pass


class TargetInUse(BackupError):
    pass


class BackupToolFailed(BackupError):
    pass


class VerificationFailed(BackupError):
    pass
