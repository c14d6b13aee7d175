"""Revocation of DCCs and of document signers.

EU DCC revocation lists (eHN "Guidelines on DCC revocation", gateway
`RevocationHashType`) carry hashes, never identifiers in clear. Each hash is
SHA-256 truncated to its first 128 bits (16 bytes), exchanged in base64:

- `UCI`: over the UTF-8 bytes of the certificate identifier (`ci`);
- `COUNTRYCODEUCI`: over the UTF-8 bytes of the issuing country code (CWT
  claim 1, `iss`) followed by the UCI;
- `SIGNATURE`: over the COSE_Sign1 signature bytes — for ES256 only the first
  half (the `r` value), for PS256 the whole signature.

Withdrawing a document signer (a compromised key) refuses every certificate it
signed; signers are identified by certificate fingerprint, since kids collide.
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass, field
from enum import Enum

from cryptography import x509
from cryptography.hazmat.primitives import hashes


class RevocationHashType(str, Enum):
    UCI = "UCI"
    COUNTRYCODEUCI = "COUNTRYCODEUCI"
    SIGNATURE = "SIGNATURE"


def _truncated_sha256(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()[:16]


def uci_hash(uci: str) -> bytes:
    """`UCI` revocation hash (16 bytes)."""
    return _truncated_sha256(uci.encode("utf-8"))


def country_uci_hash(country: str, uci: str) -> bytes:
    """`COUNTRYCODEUCI` revocation hash (16 bytes): country code then UCI."""
    return _truncated_sha256((country + uci).encode("utf-8"))


def signature_hash(signature: bytes, algorithm: str) -> bytes:
    """`SIGNATURE` revocation hash (16 bytes); ES256 hashes only `r`."""
    if algorithm == "ES256":
        signature = signature[: len(signature) // 2]
    return _truncated_sha256(signature)


def to_b64(hash_bytes: bytes) -> str:
    """The base64 text form used in revocation lists."""
    return base64.b64encode(hash_bytes).decode("ascii")


@dataclass
class RevocationList:
    """Revoked certificate hashes (by type) and withdrawn signers."""

    hashes: dict[RevocationHashType, set[bytes]] = field(
        default_factory=lambda: {t: set() for t in RevocationHashType}
    )
    revoked_signers: set[str] = field(default_factory=set)

    def revoke_uvci(self, uvci: str, country: str | None = None) -> None:
        """Revoke one certificate by its identifier (stored only as hashes)."""
        self.hashes[RevocationHashType.UCI].add(uci_hash(uvci))
        if country:
            self.hashes[RevocationHashType.COUNTRYCODEUCI].add(country_uci_hash(country, uvci))

    def add_hash(self, hash_type: RevocationHashType | str, value_b64: str) -> None:
        """Add an entry received from a revocation list (base64, 16 bytes)."""
        value = base64.b64decode(value_b64, validate=True)
        if len(value) != 16:
            raise ValueError("a revocation hash is 16 bytes (SHA-256, first 128 bits)")
        self.hashes[RevocationHashType(hash_type)].add(value)

    def revoke_signer(self, certificate: x509.Certificate) -> None:
        """Withdraw a document signer: everything it signed is refused."""
        self.revoked_signers.add(certificate.fingerprint(hashes.SHA256()).hex())

    def is_signer_revoked(self, certificate: x509.Certificate) -> bool:
        return certificate.fingerprint(hashes.SHA256()).hex() in self.revoked_signers

    def is_certificate_revoked(
        self, *, uci: str | None, country: str | None, signature: bytes | None, algorithm: str | None
    ) -> RevocationHashType | None:
        """The hash type under which a certificate is revoked, or None."""
        if uci:
            if uci_hash(uci) in self.hashes[RevocationHashType.UCI]:
                return RevocationHashType.UCI
            if country and country_uci_hash(country, uci) in self.hashes[RevocationHashType.COUNTRYCODEUCI]:
                return RevocationHashType.COUNTRYCODEUCI
        if signature and algorithm:
            if signature_hash(signature, algorithm) in self.hashes[RevocationHashType.SIGNATURE]:
                return RevocationHashType.SIGNATURE
        return None
