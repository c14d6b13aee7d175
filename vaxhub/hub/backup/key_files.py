"""The hub's key files in a backup: the access-token key and the certificate key store.

Without the certificate key store a restored hub could neither verify the
certificates it issued nor publish their signers; without the token key every
token and citizen one-time-code challenge in flight would fail. Private keys
never sit unencrypted in an archive: the certificate store's are encrypted on
disk already and go in as they are; the token key (plain PEM, mode 0600 on disk)
is PKCS#8-encrypted with the certificate passphrase for the archive and
decrypted again on restore, so a restore needs the same VAXHUB_CERT_PASSPHRASE.
"""

from __future__ import annotations

import os
import uuid
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import serialization

from vaxhub.hub.backup.archive import AUTH_KEY_MEMBER, CERT_KEYS_PREFIX
from vaxhub.hub.backup.errors import TargetInUse, VerificationFailed

_SKIPPED = (".keys.lock",)


@dataclass(frozen=True)
class KeyLocations:
    auth_signing_key: Path
    cert_keys_dir: Path


def stage_keys(where: KeyLocations, staging: Path, passphrase: bytes) -> dict[str, Path]:
    """Copy the key files into `staging`; returns archive member name -> staged file."""
    members: dict[str, Path] = {}
    if where.auth_signing_key.is_file():
        key = serialization.load_pem_private_key(where.auth_signing_key.read_bytes(), password=None)
        sealed = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.BestAvailableEncryption(passphrase))
        members[AUTH_KEY_MEMBER] = _write_private(staging / AUTH_KEY_MEMBER, sealed)
    if where.cert_keys_dir.is_dir():
        for path in sorted(where.cert_keys_dir.rglob("*")):
            if path.is_file() and path.name not in _SKIPPED and not path.name.endswith(".tmp"):
                name = CERT_KEYS_PREFIX + path.relative_to(where.cert_keys_dir).as_posix()
                members[name] = _write_private(staging / name, path.read_bytes())
    return members


def unseal_auth_key(staged: Path, passphrase: bytes) -> bytes:
    """The token key as plain PEM again; refuses another passphrase than the backup's."""
    try:
        key = serialization.load_pem_private_key(staged.read_bytes(), password=passphrase)
    except (ValueError, TypeError):
        raise VerificationFailed(
            "the archive's keys were encrypted with another passphrase: set VAXHUB_CERT_PASSPHRASE as when the backup was made"
        ) from None
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())


def planned_key_files(staging: Path, members: list[str], where: KeyLocations, passphrase: bytes) -> dict[Path, bytes]:
    """Each key file a restore writes, with its content (decrypting the token key)."""
    planned: dict[Path, bytes] = {}
    for name in members:
        if name == AUTH_KEY_MEMBER:
            planned[where.auth_signing_key] = unseal_auth_key(staging / name, passphrase)
        elif name.startswith(CERT_KEYS_PREFIX):
            planned[where.cert_keys_dir / name[len(CERT_KEYS_PREFIX):]] = (staging / name).read_bytes()
    return planned


def check_keys_free(planned: dict[Path, bytes], *, replace: bool) -> None:
    """Refuse to overwrite different keys unless told to: they may sign what the backup's do not verify."""
    if replace:
        return
    clashing = [str(path) for path, content in planned.items() if path.exists() and path.read_bytes() != content]
    if clashing:
        raise TargetInUse(f"other keys are already in place ({', '.join(clashing[:3])}); pass --replace to overwrite them")


def install_keys(planned: dict[Path, bytes]) -> None:
    """Write each file whole (temporary file, then rename), owner-only."""
    for path, content in planned.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        _write_private(path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp"), content).replace(path)


def _write_private(path: Path, content: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(content)
        out.flush()
        os.fsync(out.fileno())
    return path

