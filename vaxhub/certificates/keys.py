"""Signing keys and X.509 certificates for health certificates.

A country runs one signing CA (CSCA, self-signed) and issues document-signer
certificates (DSC) under it; each DSC signs EU DCCs (HCERT) and its key also
serves as the SMART Health Card issuer key.

References:
- HCERT 1.0.5 §5 (key management): CSCA → DSC, the DSC carries the extended key
  usages `1.3.6.1.4.1.1847.2021.1.{1,2,3}` (test, vaccination, recovery), or
  the alternative arc `1.3.6.1.4.1.0.1847.2021.1.*`; a DSC without any of
  them may sign every certificate type.
- HCERT §3.3.1 / eHN trust framework: `kid` = first 8 bytes of SHA-256 over the
  DER-encoded DSC.
- RFC 7638 (JWK thumbprint), used as the SMART Health Card `kid`.
"""

from __future__ import annotations

import base64
import datetime as dt
import functools
import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Union

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

from vaxhub.errors import InputError, NotFound

PrivateKey = Union[ec.EllipticCurvePrivateKey, rsa.RSAPrivateKey]
PublicKey = Union[ec.EllipticCurvePublicKey, rsa.RSAPublicKey]
Algorithm = Literal["ES256", "PS256"]
Purpose = Literal["test", "vaccination", "recovery"]

#: HCERT §5.1.1 extended key usage OIDs, by certificate type.
DCC_EKU_OIDS: dict[Purpose, tuple[str, ...]] = {
    "test": ("1.3.6.1.4.1.1847.2021.1.1", "1.3.6.1.4.1.0.1847.2021.1.1"),
    "vaccination": ("1.3.6.1.4.1.1847.2021.1.2", "1.3.6.1.4.1.0.1847.2021.1.2"),
    "recovery": ("1.3.6.1.4.1.1847.2021.1.3", "1.3.6.1.4.1.0.1847.2021.1.3"),
}


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def dcc_kid(der_cert: bytes) -> bytes:
    """The DCC key identifier: the first 8 bytes of SHA-256 of the DER DSC (HCERT §3.3.1)."""
    return hashlib.sha256(der_cert).digest()[:8]


def public_jwk(public_key: PublicKey) -> dict[str, str]:
    """The public JWK members (RFC 7517/7518) of an EC P-256 or RSA key."""
    if isinstance(public_key, ec.EllipticCurvePublicKey):
        if not isinstance(public_key.curve, ec.SECP256R1):
            raise InputError("only P-256 elliptic-curve keys are supported")
        numbers = public_key.public_numbers()
        return {
            "kty": "EC",
            "crv": "P-256",
            "x": _b64url(numbers.x.to_bytes(32, "big")),
            "y": _b64url(numbers.y.to_bytes(32, "big")),
        }
    if isinstance(public_key, rsa.RSAPublicKey):
        numbers = public_key.public_numbers()
        return {
            "kty": "RSA",
            "n": _b64url(numbers.n.to_bytes((numbers.n.bit_length() + 7) // 8, "big")),
            "e": _b64url(numbers.e.to_bytes((numbers.e.bit_length() + 7) // 8, "big")),
        }
    raise InputError(f"unsupported key type {type(public_key).__name__}")


def shc_kid(public_key: PublicKey) -> str:
    """RFC 7638 §3 JWK thumbprint (SHA-256, base64url): the required members in
    lexicographic order, serialised without whitespace."""
    jwk = public_jwk(public_key)
    required = ("crv", "kty", "x", "y") if jwk["kty"] == "EC" else ("e", "kty", "n")
    canonical = json.dumps({k: jwk[k] for k in required}, separators=(",", ":"), sort_keys=True)
    return _b64url(hashlib.sha256(canonical.encode("ascii")).digest())


def serialize_private_key(key: PrivateKey, passphrase: bytes) -> bytes:
    """PEM PKCS#8, encrypted with the best available scheme for `passphrase`."""
    if not passphrase:
        raise InputError("a passphrase is required to store a private key")
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(passphrase),
    )


def load_private_key(pem: bytes, passphrase: bytes) -> PrivateKey:
    """Load a key written by :func:`serialize_private_key`."""
    key = serialization.load_pem_private_key(pem, password=passphrase)
    if not isinstance(key, (ec.EllipticCurvePrivateKey, rsa.RSAPrivateKey)):
        raise InputError("unsupported private key type")
    return key


def _name(country: str, organisation: str, common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.COUNTRY_NAME, country),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, organisation),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def _new_key(algorithm: Algorithm) -> PrivateKey:
    if algorithm == "ES256":
        return ec.generate_private_key(ec.SECP256R1())
    if algorithm == "PS256":
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)
    raise InputError(f"unsupported signing algorithm {algorithm!r}")


def create_csca(
    country: str,
    organisation: str,
    *,
    common_name: str | None = None,
    now: dt.datetime | None = None,
    valid_days: int = 3650,
) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    """A self-signed country signing CA, ECDSA P-256 (HCERT §5.1)."""
    now = now or _utcnow()
    key = ec.generate_private_key(ec.SECP256R1())
    name = _name(country, organisation, common_name or f"{country} CSCA")
    ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=valid_days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(ski, critical=False)
        .sign(key, hashes.SHA256())
    )
    return key, cert


def create_document_signer(
    csca_key: ec.EllipticCurvePrivateKey,
    csca_cert: x509.Certificate,
    *,
    common_name: str | None = None,
    purposes: tuple[Purpose, ...] | None = ("vaccination",),
    algorithm: Algorithm = "ES256",
    now: dt.datetime | None = None,
    valid_days: int = 365,
) -> tuple[PrivateKey, x509.Certificate]:
    """A document signer under `csca_cert` (HCERT §5.1.1).

    `purposes` selects the DCC extended key usages; `None` leaves the extension
    out, which HCERT reads as "valid for every certificate type"."""
    now = now or _utcnow()
    key = _new_key(algorithm)
    subject_country = csca_cert.subject.get_attributes_for_oid(NameOID.COUNTRY_NAME)[0].value
    subject_org = csca_cert.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)[0].value
    not_after = min(now + dt.timedelta(days=valid_days), csca_cert.not_valid_after_utc)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(str(subject_country), str(subject_org), common_name or f"{subject_country} DSC"))
        .issuer_name(csca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(csca_key.public_key()), critical=False
        )
    )
    if purposes is not None:
        oids = [x509.ObjectIdentifier(DCC_EKU_OIDS[p][0]) for p in purposes]
        builder = builder.add_extension(x509.ExtendedKeyUsage(oids), critical=False)
    return key, builder.sign(csca_key, hashes.SHA256())


def signer_purposes(cert: x509.Certificate) -> frozenset[Purpose] | None:
    """The DCC types a DSC may sign (HCERT §5.1.1), or `None` for "all types"
    when it carries none of the DCC extended key usages."""
    try:
        eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except x509.ExtensionNotFound:
        return None
    dotted = {oid.dotted_string for oid in eku}
    found = frozenset(p for p, oids in DCC_EKU_OIDS.items() if dotted.intersection(oids))
    return found or None


def certificate_algorithm(cert: x509.Certificate) -> Algorithm:
    """The COSE/JWS algorithm a DSC's key signs with."""
    return "ES256" if isinstance(cert.public_key(), ec.EllipticCurvePublicKey) else "PS256"


class CertificateIdentity:
    """The DER form and DCC `kid` of a class's `certificate` (signers we hold,
    signers we trust), computed once per object: every signature needs the kid."""

    certificate: x509.Certificate

    @functools.cached_property
    def der(self) -> bytes:
        return self.certificate.public_bytes(serialization.Encoding.DER)

    @functools.cached_property
    def kid(self) -> bytes:
        return dcc_kid(self.der)


@dataclass(frozen=True)
class Signer(CertificateIdentity):
    """One document signer: its certificate, its private key and identifiers."""

    certificate: x509.Certificate
    private_key: PrivateKey

    @functools.cached_property
    def jwk_kid(self) -> str:
        return shc_kid(self.private_key.public_key())

    @functools.cached_property
    def algorithm(self) -> Algorithm:
        return certificate_algorithm(self.certificate)

    @property
    def not_valid_after(self) -> dt.datetime:
        return self.certificate.not_valid_after_utc

    def valid_at(self, when: dt.datetime) -> bool:
        c = self.certificate
        return c.not_valid_before_utc <= when <= c.not_valid_after_utc


def _fingerprint(cert: x509.Certificate) -> str:
    return cert.fingerprint(hashes.SHA256()).hex()


class KeyStore:
    """A directory of PEM files and an `index.json`: the CSCA, its document
    signers (private keys PKCS#8-encrypted) and which signer is active.

    Old signers stay in the store after :meth:`rotate`, so certificates they
    signed keep verifying until the signer certificate expires."""

    INDEX = "index.json"

    def __init__(self, directory: str | os.PathLike[str], passphrase: bytes):
        self.directory = Path(directory)
        self._passphrase = passphrase

    # -- persistence -------------------------------------------------------
    def _index(self) -> dict:
        path = self.directory / self.INDEX
        if not path.exists():
            raise NotFound(f"no key store initialised in {self.directory}")
        return json.loads(path.read_text(encoding="utf-8"))

    def _write_index(self, index: dict) -> None:
        tmp = self.directory / (self.INDEX + ".tmp")
        tmp.write_text(json.dumps(index, indent=2, sort_keys=True), encoding="utf-8")
        os.replace(tmp, self.directory / self.INDEX)

    def _write_private(self, name: str, key: PrivateKey) -> None:
        path = self.directory / name
        path.write_bytes(serialize_private_key(key, self._passphrase))
        os.chmod(path, 0o600)

    def _add_signer(self, index: dict, key: PrivateKey, cert: x509.Certificate) -> Signer:
        stem = f"dsc-{_fingerprint(cert)[:16]}"
        (self.directory / f"{stem}.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        self._write_private(f"{stem}.key.pem", key)
        signer = Signer(cert, key)
        index["signers"].append(
            {
                "certificate": f"{stem}.pem",
                "key": f"{stem}.key.pem",
                "kid": base64.b64encode(signer.kid).decode("ascii"),
                "fingerprint": _fingerprint(cert),
                "not_after": cert.not_valid_after_utc.isoformat(),
            }
        )
        index["active"] = _fingerprint(cert)
        return signer

    # -- operations --------------------------------------------------------
    def init(
        self,
        country: str,
        organisation: str,
        *,
        algorithm: Algorithm = "ES256",
        purposes: tuple[Purpose, ...] | None = ("vaccination",),
        now: dt.datetime | None = None,
        csca_days: int = 3650,
        signer_days: int = 365,
    ) -> Signer:
        """Create the CSCA and a first active document signer. Refuses to
        overwrite an existing store."""
        self.directory.mkdir(parents=True, exist_ok=True)
        if (self.directory / self.INDEX).exists():
            raise InputError(f"a key store already exists in {self.directory}")
        csca_key, csca_cert = create_csca(country, organisation, now=now, valid_days=csca_days)
        (self.directory / "csca.pem").write_bytes(csca_cert.public_bytes(serialization.Encoding.PEM))
        self._write_private("csca.key.pem", csca_key)
        index = {
            "country": country,
            "organisation": organisation,
            "csca": {"certificate": "csca.pem", "key": "csca.key.pem"},
            "signers": [],
            "active": None,
            "signer_days": signer_days,
        }
        key, cert = create_document_signer(
            csca_key, csca_cert, algorithm=algorithm, purposes=purposes, now=now, valid_days=signer_days
        )
        signer = self._add_signer(index, key, cert)
        self._write_index(index)
        return signer

    def rotate(
        self,
        *,
        algorithm: Algorithm = "ES256",
        purposes: tuple[Purpose, ...] | None = ("vaccination",),
        now: dt.datetime | None = None,
        signer_days: int | None = None,
    ) -> Signer:
        """Issue a new document signer and make it the active one; the older
        signers are kept for verification."""
        index = self._index()
        csca_key = load_private_key((self.directory / index["csca"]["key"]).read_bytes(), self._passphrase)
        if not isinstance(csca_key, ec.EllipticCurvePrivateKey):
            raise InputError("the CSCA key must be ECDSA P-256")
        key, cert = create_document_signer(
            csca_key,
            self.csca_certificate(),
            algorithm=algorithm,
            purposes=purposes,
            now=now,
            valid_days=signer_days or index.get("signer_days", 365),
        )
        signer = self._add_signer(index, key, cert)
        self._write_index(index)
        return signer

    def csca_certificate(self) -> x509.Certificate:
        index = self._index()
        return x509.load_pem_x509_certificate((self.directory / index["csca"]["certificate"]).read_bytes())

    @property
    def country(self) -> str:
        return str(self._index()["country"])

    def _load(self, entry: dict) -> Signer:
        cert = x509.load_pem_x509_certificate((self.directory / entry["certificate"]).read_bytes())
        key = load_private_key((self.directory / entry["key"]).read_bytes(), self._passphrase)
        return Signer(cert, key)

    def active_signer(self) -> Signer:
        """The signer new certificates are signed with."""
        index = self._index()
        for entry in index["signers"]:
            if entry["fingerprint"] == index["active"]:
                return self._load(entry)
        raise NotFound("the key store has no active signer")

    def all_signers(self, *, now: dt.datetime | None = None) -> list[Signer]:
        """Every stored signer, oldest first; with `now`, only those whose
        certificate is still valid at that time (the ones to publish)."""
        signers = [self._load(entry) for entry in self._index()["signers"]]
        if now is not None:
            signers = [s for s in signers if s.valid_at(now)]
        return signers
