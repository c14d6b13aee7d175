"""Trust list of document-signer certificates, keyed by `kid`.

A `kid` is only 8 bytes of a hash (HCERT §3.3.1), so distinct signers can share
one: the list keeps every certificate under its kid and verifiers try them all.

Exchange format: a JSON list of `{"kid", "country", "certificate"}` where
`certificate` is the base64 DER. The EU DCC Gateway's `GET /trustList/DSC`
answer (`[{"kid", "timestamp", "country", "certificateType", "thumbprint",
"signature", "rawData"}]`, `rawData` the base64 DER) and national backends'
`{"certificates": [...]}` wrapping of the same entries are accepted as well.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass, field

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.x509.oid import NameOID

from vaxhub.certificates.keys import CertificateIdentity, Purpose, PublicKey, dcc_kid, signer_purposes
from vaxhub.errors import Issue, MalformedInput


@dataclass(frozen=True)
class TrustedSigner(CertificateIdentity):
    """One trusted document-signer certificate."""

    certificate: x509.Certificate
    country: str

    @property
    def fingerprint(self) -> str:
        """SHA-256 of the DER certificate, hex (the gateway's `thumbprint`)."""
        return self.certificate.fingerprint(hashes.SHA256()).hex()

    @property
    def public_key(self) -> PublicKey:
        return self.certificate.public_key()  # type: ignore[return-value]

    @property
    def purposes(self) -> frozenset[Purpose] | None:
        return signer_purposes(self.certificate)

    def valid_at(self, when: dt.datetime) -> bool:
        c = self.certificate
        return c.not_valid_before_utc <= when <= c.not_valid_after_utc


@dataclass
class TrustList:
    """Signer certificates grouped by kid; several may share one kid."""

    _by_kid: dict[bytes, list[TrustedSigner]] = field(default_factory=dict)

    def add(self, certificate: x509.Certificate, country: str | None = None) -> TrustedSigner:
        """Trust `certificate`; the country defaults to its subject's C."""
        if country is None:
            attrs = certificate.subject.get_attributes_for_oid(NameOID.COUNTRY_NAME)
            country = str(attrs[0].value) if attrs else ""
        return self.add_signer(TrustedSigner(certificate, country))

    def add_signer(self, signer: TrustedSigner) -> TrustedSigner:
        """File `signer` under its kid, beside any others sharing that kid."""
        bucket = self._by_kid.setdefault(signer.kid, [])
        if all(s.fingerprint != signer.fingerprint for s in bucket):
            bucket.append(signer)
        return signer

    def add_der(self, der: bytes, country: str | None = None) -> TrustedSigner:
        return self.add(x509.load_der_x509_certificate(der), country)

    def signers_for(self, kid: bytes) -> list[TrustedSigner]:
        """Every trusted signer whose kid is `kid` (possibly several)."""
        return list(self._by_kid.get(kid, ()))

    def remove(self, fingerprint: str) -> None:
        """Stop trusting the certificate with this SHA-256 fingerprint (hex)."""
        for kid, bucket in list(self._by_kid.items()):
            kept = [s for s in bucket if s.fingerprint != fingerprint]
            if kept:
                self._by_kid[kid] = kept
            else:
                del self._by_kid[kid]

    def __iter__(self):
        for bucket in self._by_kid.values():
            yield from bucket

    def __len__(self) -> int:
        return sum(len(b) for b in self._by_kid.values())

    # -- exchange ----------------------------------------------------------
    @classmethod
    def from_json(cls, data: list | dict, *, check_kid: bool = True) -> "TrustList":
        """Import signers from the simple form or the EU gateway DSC list.

        Entries whose declared `kid` or `thumbprint` does not match the
        certificate are refused, all problems reported together."""
        trust = cls()
        trust.import_json(data, check_kid=check_kid)
        return trust

    def import_json(self, data: list | dict, *, check_kid: bool = True) -> int:
        """Add the entries of `data` to this list; returns how many were read."""
        entries = data.get("certificates") if isinstance(data, dict) else data
        if not isinstance(entries, list):
            raise MalformedInput("a trust list is a JSON list of signer entries")
        issues: list[Issue] = []
        parsed: list[tuple[x509.Certificate, str]] = []
        for i, entry in enumerate(entries):
            where = f"[{i}]"
            if not isinstance(entry, dict):
                issues.append(Issue("entry is not an object", where))
                continue
            raw = entry.get("certificate") or entry.get("rawData")
            certificate_type = entry.get("certificateType", "DSC")
            if certificate_type != "DSC":
                continue
            try:
                der = base64.b64decode(raw, validate=True)
                cert = x509.load_der_x509_certificate(der)
            except (TypeError, ValueError, binascii.Error):
                issues.append(Issue("certificate is not base64 DER X.509", f"{where}.certificate"))
                continue
            declared = entry.get("kid")
            if check_kid and declared is not None:
                try:
                    declared_kid = base64.b64decode(declared, validate=True)
                except (TypeError, ValueError, binascii.Error):
                    issues.append(Issue("kid is not base64", f"{where}.kid"))
                    continue
                if declared_kid != dcc_kid(der):
                    issues.append(Issue("kid does not match the certificate", f"{where}.kid"))
                    continue
            thumbprint = entry.get("thumbprint")
            if thumbprint and thumbprint.lower() != cert.fingerprint(hashes.SHA256()).hex():
                issues.append(Issue("thumbprint does not match the certificate", f"{where}.thumbprint"))
                continue
            parsed.append((cert, entry.get("country") or None))
        if issues:
            raise MalformedInput("trust list entries refused", issues)
        for cert, country in parsed:
            self.add(cert, country)
        return len(parsed)

    def to_json(self) -> list[dict[str, str]]:
        """The simple exchange form: `[{"kid", "country", "certificate"}]`."""
        return export_signers(self)

    def to_gateway_json(self) -> list[dict[str, str]]:
        """The EU gateway DSC list shape (without the gateway's own signature)."""
        return [
            {
                "kid": base64.b64encode(s.kid).decode("ascii"),
                "country": s.country,
                "certificateType": "DSC",
                "thumbprint": s.fingerprint,
                "rawData": base64.b64encode(s.der).decode("ascii"),
            }
            for s in self
        ]


def export_signers(signers: Iterable[TrustedSigner] | Iterable[object], country: str | None = None) -> list[dict[str, str]]:
    """Our signers (or any objects with `der` and `kid`) in the simple form."""
    out = []
    for s in signers:
        der: bytes = s.der  # type: ignore[attr-defined]
        c = country or getattr(s, "country", None)
        if c is None:
            cert = x509.load_der_x509_certificate(der)
            c = str(cert.subject.get_attributes_for_oid(NameOID.COUNTRY_NAME)[0].value)
        out.append(
            {
                "kid": base64.b64encode(dcc_kid(der)).decode("ascii"),
                "country": c,
                "certificate": base64.b64encode(der).decode("ascii"),
            }
        )
    return out
