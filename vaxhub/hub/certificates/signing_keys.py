"""The hub's certificate signing keys: the `KeyStore` directory of Settings.

`vaxhub keys init` creates the CSCA and a first document signer; `vaxhub keys
rotate` adds a new active signer and keeps the old ones, which go on
verifying (and stay in the published trust list and JWKS) until their
certificates expire. In development a missing key store is created on first
use, as the token-signing key is; elsewhere issuing without one is refused.

Decrypting the private keys costs a key derivation each, so the signers are
loaded once and reloaded only when the store's index changes (a rotation by
another process shows up at the next use).
"""

from __future__ import annotations

import base64
import datetime as dt
import fcntl
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes

from vaxhub.certificates import shc
from vaxhub.certificates.keys import KeyStore, Signer
from vaxhub.errors import ExternalServiceError, InputError, NotFound
from vaxhub.settings import Settings


_SHA256 = hashes.SHA256()


class SigningKeysUnavailable(ExternalServiceError):
    """No key store to sign with (and none may be created here)."""


@dataclass(frozen=True)
class KeySnapshot:
    csca: x509.Certificate
    signers: tuple[Signer, ...]  # oldest first
    active: Signer


def card_issuer_jwks(signers: tuple[Signer, ...] | list[Signer]) -> dict[str, Any]:
    """The SMART Health Card issuer JWKS, each key with its signer certificate
    in `x5c` (RFC 7517 §4.7), so verifiers can see until when it may be used."""
    document = shc.issuer_jwks(signers)
    by_kid = {s.jwk_kid: s for s in signers}
    for key in document["keys"]:
        key["x5c"] = [base64.b64encode(by_kid[key["kid"]].der).decode("ascii")]
    return document


class HubSigningKeys:
    def __init__(self, directory: Path, passphrase: bytes, *, country: str, organisation: str, create_missing: bool):
        self.directory = Path(directory)
        self.country = country
        self.organisation = organisation
        self.create_missing = create_missing
        self._store = KeyStore(self.directory, passphrase)
        self._lock = threading.Lock()
        self._cached: tuple[tuple[int, int], KeySnapshot] | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> "HubSigningKeys":
        """Refuses (ValueError) a missing or placeholder passphrase outside development."""
        return cls(
            settings.cert_keys_path(),
            settings.cert_passphrase_bytes(),
            country=settings.cert_country,
            organisation=settings.cert_issuer,
            create_missing=settings.environment == "development",
        )

    @property
    def index_path(self) -> Path:
        return self.directory / KeyStore.INDEX

    def exists(self) -> bool:
        return self.index_path.exists()

    def init(self, *, signer_days: int = 730, csca_days: int = 3650, now: dt.datetime | None = None) -> Signer:
        """Create the CSCA and the first signer; refuses an existing store (InputError)."""
        self.directory.mkdir(parents=True, exist_ok=True)
        with self._init_lock():
            return self._store.init(self.country, self.organisation, now=now, signer_days=signer_days, csca_days=csca_days)

    def rotate(self, *, signer_days: int | None = None, now: dt.datetime | None = None) -> Signer:
        if not self.exists():
            raise NotFound(f"no key store in {self.directory}: run `vaxhub keys init` first")
        with self._init_lock():
            return self._store.rotate(now=now, signer_days=signer_days)

    @contextmanager
    def _init_lock(self) -> Iterator[None]:
        """An exclusive file lock, so two processes never create or rotate at once."""
        with open(self.directory / ".keys.lock", "a+") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def snapshot(self) -> KeySnapshot:
        """The CSCA, every signer and the active one, reloaded when the index changed."""
        if not self.exists():
            if not self.create_missing:
                raise SigningKeysUnavailable(f"no certificate signing keys in {self.directory}: run `vaxhub keys init`")
            try:
                self.init()
            except InputError:
                pass  # another process created it meanwhile
        stat = self.index_path.stat()
        marker = (stat.st_mtime_ns, stat.st_size)
        with self._lock:
            if self._cached is None or self._cached[0] != marker:
                signers = tuple(self._store.all_signers())
                active_fingerprint = self._store.active_signer().certificate.fingerprint(_SHA256)
                active = next(s for s in signers if s.certificate.fingerprint(_SHA256) == active_fingerprint)
                self._cached = (marker, KeySnapshot(self._store.csca_certificate(), signers, active))
            return self._cached[1]

    def active_signer(self) -> Signer:
        return self.snapshot().active

    def signers(self) -> tuple[Signer, ...]:
        return self.snapshot().signers
