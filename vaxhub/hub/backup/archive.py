"""The backup archive: a gzip-compressed tar whose first member is the manifest.

    manifest.json                   format and version, creation time, vaxhub version,
                                    backend, Alembic revision(s), rows per table, and
                                    the SHA-256 and size of every other member
    database.sqlite3                the SQLite copy (online backup API), or
    database.pgdump                 pg_dump's custom format (uncompressed: gzip does it once)
    keys/auth-signing-key.enc.pem   the access-token key, PKCS#8-encrypted with the
                                    certificate passphrase (on disk it is plain, mode 0600)
    keys/cert-keys/…                the certificate key store as on disk (its private
                                    keys are already encrypted with that passphrase)

gzip's CRC-32 covers every byte of the file and the manifest's SHA-256 each member,
so a flipped byte anywhere is found while reading, before anything is restored.
The archive is written beside its destination and renamed into place only when
complete, so DEST never holds half an archive.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import re
import tarfile
import time
import uuid
import zlib
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import orjson

from vaxhub.hub.backup.durable import fsync_dir
from vaxhub.hub.backup.errors import BadDestination, CorruptArchive, ForeignArchive
from vaxhub.hub.backup.progress import CountingReader, Progress, no_progress

FORMAT = "vaxhub-backup"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
SQLITE_MEMBER = "database.sqlite3"
POSTGRES_MEMBER = "database.pgdump"
AUTH_KEY_MEMBER = "keys/auth-signing-key.enc.pem"
CERT_KEYS_PREFIX = "keys/cert-keys/"
_MEMBER_NAME = re.compile(r"^(database\.(sqlite3|pgdump)|keys/[A-Za-z0-9._-]+(/[A-Za-z0-9._-]+)*)$")
_MANIFEST_LIMIT = 16 * 1024 * 1024
_CHUNK = 1024 * 1024


@dataclass
class Manifest:
    backend: str  # "sqlite" or "postgresql"
    revision: list[str]  # the database's Alembic heads, sorted
    row_counts: dict[str, int]
    created: str
    vaxhub_version: str
    members: dict[str, dict[str, int | str]] = field(default_factory=dict)  # name -> {"sha256", "size"}
    format: str = FORMAT
    format_version: int = FORMAT_VERSION

    def to_json(self) -> bytes:
        return orjson.dumps(asdict(self), option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS)

    @classmethod
    def from_json(cls, data: bytes) -> "Manifest":
        try:
            raw = orjson.loads(data)
        except orjson.JSONDecodeError:
            raise CorruptArchive("the archive's manifest is not valid JSON") from None
        if not isinstance(raw, dict) or raw.get("format") != FORMAT:
            raise ForeignArchive("not a vaxhub backup (its manifest names another format)")
        if not isinstance(raw.get("format_version"), int) or raw["format_version"] > FORMAT_VERSION:
            raise ForeignArchive(f"backup format version {raw.get('format_version')!r} is newer than this vaxhub reads ({FORMAT_VERSION})")
        try:
            manifest = cls(**{k: raw[k] for k in cls.__dataclass_fields__})
        except (KeyError, TypeError):
            raise CorruptArchive("the archive's manifest lacks required fields") from None
        if manifest.backend not in ("sqlite", "postgresql") or not isinstance(manifest.members, dict):
            raise CorruptArchive("the archive's manifest is malformed")
        for name, entry in manifest.members.items():
            if not _safe_name(name) or not isinstance(entry, dict) or not isinstance(entry.get("sha256"), str):
                raise CorruptArchive(f"the manifest lists a member that cannot be restored: {name!r}")
        return manifest


def _safe_name(name: str) -> bool:
    return bool(_MEMBER_NAME.match(name)) and ".." not in name.split("/")


def sha256_file(path: Path) -> tuple[str, int]:
    digest, size = hashlib.sha256(), 0
    with open(path, "rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
            size += len(chunk)
    return digest.hexdigest(), size


def now_iso() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def write_archive(dest: Path, manifest: Manifest, files: dict[str, Path], progress: Progress = no_progress) -> Manifest:
    """Write `files` (member name -> staged file) and their manifest to `dest`, atomically."""
    parent = dest.parent
    if not parent.is_dir():
        raise BadDestination(f"cannot write the backup to {dest}: folder {parent} does not exist")
    if dest.exists():
        raise BadDestination(f"{dest} already exists; choose a new name (a backup is never overwritten)")
    manifest.members = {}
    for name, path in files.items():
        digest, size = sha256_file(path)
        manifest.members[name] = {"sha256": digest, "size": size}
    total = sum(int(m["size"]) for m in manifest.members.values())
    partial = parent / f".{dest.name}.{uuid.uuid4().hex[:8]}.partial"
    try:
        fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)  # health data: owner only
    except OSError as exc:
        raise BadDestination(f"cannot write the backup to {dest}: {exc.strerror}") from None
    try:
        with os.fdopen(fd, "wb") as raw:
            with tarfile.open(fileobj=raw, mode="w:gz", compresslevel=6) as tar:
                _add(tar, MANIFEST, manifest.to_json())
                written = 0
                for name, path in files.items():
                    with open(path, "rb") as handle:
                        base = written
                        reader = CountingReader(handle, lambda n: progress("writing archive", base + n, total))
                        tar.addfile(_info(name, int(manifest.members[name]["size"])), reader)
                    written += int(manifest.members[name]["size"])
            raw.flush()
            os.fsync(raw.fileno())
        os.replace(partial, dest)
        fsync_dir(parent)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    return manifest


def _info(name: str, size: int) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size, info.mode, info.mtime = size, 0o600, int(time.time())
    return info


def _add(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    tar.addfile(_info(name, len(data)), io.BytesIO(data))


def read_archive(
    src: Path, staging: Path, *, accept: Callable[[Manifest], None] = lambda m: None, progress: Progress = no_progress
) -> Manifest:
    """Unpack `src` into `staging`, checking every byte; `accept` may refuse the manifest
    (another backend, an unknown revision) before the members are read."""
    if not src.is_file():
        raise BadDestination(f"no backup archive at {src}")
    total = src.stat().st_size
    seen: set[str] = set()
    try:
        with open(src, "rb") as raw:
            counting = CountingReader(raw, lambda n: progress("reading archive", n, total))
            unzipped = gzip.GzipFile(fileobj=counting, mode="rb")
            with tarfile.open(fileobj=unzipped, mode="r|") as tar:
                first = tar.next()
                if first is None or first.name != MANIFEST or not first.isfile():
                    raise ForeignArchive(f"{src} is not a vaxhub backup (no manifest first)")
                if first.size > _MANIFEST_LIMIT:
                    raise CorruptArchive("the archive's manifest is implausibly large")
                manifest = Manifest.from_json(tar.extractfile(first).read())
                accept(manifest)
                while (member := tar.next()) is not None:  # iterating the TarFile would start over at the manifest
                    name = member.name
                    if name not in manifest.members or name in seen or not member.isfile():
                        raise CorruptArchive(f"the archive holds a member its manifest does not list: {name!r}")
                    _unpack(tar.extractfile(member), staging / name, manifest.members[name], name)
                    seen.add(name)
            while unzipped.read(_CHUNK):  # read to the end: gzip checks its CRC-32 and length there
                pass
    except (tarfile.TarError, EOFError, zlib.error, gzip.BadGzipFile) as exc:
        raise CorruptArchive(f"{src} is damaged or not a vaxhub backup ({exc or type(exc).__name__})") from None
    missing = sorted(set(manifest.members) - seen)
    if missing:
        raise CorruptArchive(f"the archive is missing members its manifest lists: {', '.join(missing)}")
    return manifest


def _unpack(source, target: Path, expected: dict, name: str) -> None:  # noqa: ANN001
    target.parent.mkdir(parents=True, exist_ok=True)
    digest, size = hashlib.sha256(), 0
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as out:
        while chunk := source.read(_CHUNK):
            digest.update(chunk)
            size += len(chunk)
            out.write(chunk)
    if digest.hexdigest() != expected["sha256"] or size != expected.get("size", size):
        raise CorruptArchive(f"member {name} does not match its checksum in the manifest: the archive is damaged")
