"""What a backup needs to know about the hub it copies: where its database and
keys are, and which schema revisions this code knows."""

from __future__ import annotations

from pathlib import Path

from alembic.script import ScriptDirectory
from sqlalchemy.engine import make_url

from vaxhub.hub.backup.errors import BackupError, BadDestination
from vaxhub.hub.backup.key_files import KeyLocations
from vaxhub.hub.storage.engine import alembic_config, head_revision
from vaxhub.settings import Settings


def backend_of(settings: Settings) -> str:
    name = make_url(settings.database_url).get_backend_name()
    if name not in ("sqlite", "postgresql"):
        raise BadDestination(f"backups support SQLite and PostgreSQL, not {name}")
    return name


def sqlite_path(settings: Settings) -> Path:
    database = make_url(settings.database_url).database
    if not database or database == ":memory:":
        raise BadDestination("an in-memory SQLite database has nothing on disk to back up or restore into")
    return Path(database)


def key_locations(settings: Settings) -> KeyLocations:
    return KeyLocations(settings.signing_key_path(), settings.cert_keys_path())


def passphrase(settings: Settings) -> bytes:
    try:
        return settings.cert_passphrase_bytes()
    except ValueError as exc:
        raise BackupError(str(exc)) from None


def known_revisions() -> set[str]:
    return {script.revision for script in ScriptDirectory.from_config(alembic_config("sqlite://")).walk_revisions()}


def code_heads() -> set[str]:
    return set((head_revision() or "").split(",")) - {""}
