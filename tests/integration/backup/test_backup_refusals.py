"""What `vaxhub backup` and `vaxhub restore` refuse, with a clear message, a
non-zero exit, and nothing written: damaged, foreign and future archives, bad
destinations, a database or keys already in place, another passphrase."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import orjson
import pytest
from sqlalchemy.engine import make_url
from typer.testing import CliRunner

from vaxhub.hub.backup import backup_hub
from vaxhub.hub.backup.postgres_database import PgTarget
from vaxhub.hub.certificates.signing_keys import HubSigningKeys
from vaxhub.hub.cli import app as cli
from vaxhub.hub.security.tokens import load_or_create_signing_key

runner = CliRunner()


def _small_hub(place) -> None:  # noqa: ANN001
    """A migrated database with its keys: enough to back up."""
    place.engine().dispose()
    settings = place.settings()
    load_or_create_signing_key(settings.signing_key_path(), create=True)
    HubSigningKeys.from_settings(settings).init()


@pytest.fixture
def archive(place, tmp_path) -> Path:
    _small_hub(place)
    path = tmp_path / "hub.tar.gz"
    backup_hub(place.settings(), path)
    return path


def said(result) -> str:  # noqa: ANN001
    """The command's output as one line (the console wraps long messages)."""
    return " ".join(result.output.split())


def _restore(place, archive: Path, *extra: str, env: dict | None = None):  # noqa: ANN001
    return runner.invoke(cli, ["restore", str(archive), *extra], env={**place.env(), **(env or {})})


def _nothing_restored(place) -> None:  # noqa: ANN001
    assert not any(place.data_dir.iterdir()), "keys were written by a refused restore"
    if place.backend == "sqlite":
        assert not Path(make_url(place.url).database).exists(), "a database was written by a refused restore"
    else:
        from vaxhub.hub.backup.postgres_database import tables_in

        assert tables_in(place.url) == []


def _rewrite(archive: Path, target: Path, change_manifest) -> None:  # noqa: ANN001
    """The archive as another program (or a newer vaxhub) would have written it."""
    with tarfile.open(archive, "r:gz") as src, tarfile.open(target, "w:gz") as out:
        for member in src.getmembers():
            data = src.extractfile(member).read()
            if member.name == "manifest.json":
                data = orjson.dumps(change_manifest(orjson.loads(data)))
                member.size = len(data)
            out.addfile(member, io.BytesIO(data))


@pytest.mark.parametrize("where", [0, 0.3, 0.6, -5])
def test_a_flipped_byte_anywhere_is_refused_before_anything_is_restored(place, archive, tmp_path, where):
    data = bytearray(archive.read_bytes())
    at = where if isinstance(where, int) else int(len(data) * where)
    data[at] ^= 0x20
    damaged = tmp_path / "damaged.tar.gz"
    damaged.write_bytes(bytes(data))
    place.destroy()
    result = _restore(place, damaged)
    assert result.exit_code == 1
    assert "restore failed" in said(result) and ("damaged" in said(result) or "checksum" in said(result))
    _nothing_restored(place)
    assert _restore(place, archive).exit_code == 0  # the intact archive still restores


def test_an_archive_of_something_else_is_refused(sqlite_place, tmp_path):
    stranger = tmp_path / "photos.tar.gz"
    with tarfile.open(stranger, "w:gz") as tar:
        tar.addfile(tarfile.TarInfo("photo.jpg"), io.BytesIO(b""))
    result = _restore(sqlite_place, stranger)
    assert result.exit_code == 1 and "not a vaxhub backup" in said(result)
    text = tmp_path / "notes.txt"
    text.write_text("not an archive at all")
    result = _restore(sqlite_place, text)
    assert result.exit_code == 1 and "damaged or not a vaxhub backup" in said(result)
    result = _restore(sqlite_place, tmp_path / "missing.tar.gz")
    assert result.exit_code == 1 and "no backup archive at" in said(result)
    _nothing_restored(sqlite_place)


def test_another_format_in_the_manifest_is_refused(sqlite_place, tmp_path):
    _small_hub(sqlite_place)
    path = tmp_path / "hub.tar.gz"
    backup_hub(sqlite_place.settings(), path)
    foreign = tmp_path / "foreign.tar.gz"
    _rewrite(path, foreign, lambda m: {**m, "format": "someone-elses-backup"})
    future_format = tmp_path / "future-format.tar.gz"
    _rewrite(path, future_format, lambda m: {**m, "format_version": 99})
    sqlite_place.destroy()
    assert "not a vaxhub backup" in said(_restore(sqlite_place, foreign))
    result = _restore(sqlite_place, future_format)
    assert result.exit_code == 1 and "newer than this vaxhub reads" in said(result)
    _nothing_restored(sqlite_place)


def test_a_schema_revision_newer_than_the_code_is_refused(place, archive, tmp_path):
    future = tmp_path / "future.tar.gz"
    _rewrite(archive, future, lambda m: {**m, "revision": ["9999_from_the_future"], "vaxhub_version": "9.0.0"})
    place.destroy()
    result = _restore(place, future)
    assert result.exit_code == 1
    assert "newer than this vaxhub knows" in said(result) and "9.0.0" in said(result)
    _nothing_restored(place)


def test_bad_destinations_are_refused_before_copying(sqlite_place, tmp_path):
    _small_hub(sqlite_place)
    result = runner.invoke(cli, ["backup", str(tmp_path / "no-such-folder" / "hub.tar.gz")], env=sqlite_place.env())
    assert result.exit_code == 1 and "does not exist" in said(result)
    existing = tmp_path / "taken.tar.gz"
    existing.write_bytes(b"an older backup")
    result = runner.invoke(cli, ["backup", str(existing)], env=sqlite_place.env())
    assert result.exit_code == 1 and "already exists" in said(result)
    assert existing.read_bytes() == b"an older backup"
    assert not list(tmp_path.glob(".*partial")) and not list(tmp_path.glob(".vaxhub-backup-*"))


def test_a_database_in_place_is_kept_unless_replace_is_asked(place, archive):
    result = _restore(place, archive)
    assert result.exit_code == 1 and "--replace" in said(result)
    result = _restore(place, archive, "--replace")
    assert result.exit_code == 0, result.output


def test_other_keys_in_place_are_not_overwritten(sqlite_place, tmp_path):
    _small_hub(sqlite_place)
    path = tmp_path / "hub.tar.gz"
    backup_hub(sqlite_place.settings(), path)
    sqlite_place.destroy()
    other_key = load_or_create_signing_key(sqlite_place.settings().signing_key_path(), create=True)
    result = _restore(sqlite_place, path)
    assert result.exit_code == 1 and "other keys are already in place" in said(result)
    assert not Path(make_url(sqlite_place.url).database).exists()
    assert load_or_create_signing_key(sqlite_place.settings().signing_key_path(), create=False).private_numbers() == other_key.private_numbers()


def test_another_passphrase_cannot_restore_the_keys(sqlite_place, tmp_path):
    _small_hub(sqlite_place)
    path = tmp_path / "hub.tar.gz"
    backup_hub(sqlite_place.settings(), path)
    sqlite_place.destroy()
    result = _restore(sqlite_place, path, env={"VAXHUB_CERT_PASSPHRASE": "another passphrase entirely"})
    assert result.exit_code == 1 and "VAXHUB_CERT_PASSPHRASE" in said(result)
    _nothing_restored(sqlite_place)


def test_the_token_key_is_encrypted_inside_the_archive(sqlite_place, tmp_path):
    _small_hub(sqlite_place)
    path = tmp_path / "hub.tar.gz"
    backup_hub(sqlite_place.settings(), path)
    with tarfile.open(path, "r:gz") as tar:
        sealed = tar.extractfile("keys/auth-signing-key.enc.pem").read()
        names = tar.getnames()
    assert sealed.startswith(b"-----BEGIN ENCRYPTED PRIVATE KEY-----")
    assert names[0] == "manifest.json" and "database.sqlite3" in names and "keys/cert-keys/index.json" in names


def test_libpq_target_keeps_the_password_off_the_command_line():
    target = PgTarget.from_url("postgresql+psycopg://hub:s3cr%40t@db.internal:5433/vaxhub?sslmode=verify-full")
    assert "s3cr" not in target.conninfo
    assert {"host=db.internal", "port=5433", "dbname=vaxhub", "user=hub", "sslmode=verify-full"} <= set(target.conninfo.split())
    assert target.env()["PGPASSWORD"] == "s3cr@t"


def test_a_file_that_is_not_a_sqlite_database_is_not_backed_up(sqlite_place, tmp_path):
    database = Path(make_url(sqlite_place.url).database)
    database.parent.mkdir(parents=True, exist_ok=True)
    database.write_bytes(b"these are not the pages you are looking for" * 200)
    result = runner.invoke(cli, ["backup", str(tmp_path / "hub.tar.gz")], env=sqlite_place.env())
    assert result.exit_code == 1 and "cannot copy the SQLite database" in said(result)
    assert not (tmp_path / "hub.tar.gz").exists()
