"""One verification report for any health certificate a QR code carries.

`verify_text` takes what a scanner read: an EU DCC (`HC1:`, HCERT 1.0.5), a
SMART Health Card (`shc:/` numeric QR, also the deprecated chunked form; a
bare compact JWS; or a `.smart-health-card` file), and answers a
:class:`VerificationReport` whose `valid` is true only when every check holds:
signature by a trusted key, not expired, not yet valid, signer valid then,
not revoked. Input is hostile by assumption: whatever it is, the answer is a
report with its reasons, never an exception.

Trust is given as a :class:`Trust`: DCC document signers (a `TrustList`,
tried by `kid`, HCERT §3.3.1), SMART Health Card issuer keys (JWKS per `iss`,
SHC "Determining keys associated with an issuer"), and revocations (EU DCC
revocation hashes and withdrawn signers; SHC revocation ids `vc.rid` and
withdrawn keys). :meth:`Trust.add_document` reads each exchange form: PEM or
DER X.509 signer certificates, EU-style trust lists (gateway DSC list, the
simple `[{kid, country, certificate}]` form, or the hub's own trust list with
its SHC JWKS), JWKS, and the hub's revocation list.

Pure library: no web framework, no database.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import json
import math
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

import cbor2
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec

from vaxhub.certificates import shc
from vaxhub.certificates.dcc import HC1_PREFIX, Refusal, verify_hc1
from vaxhub.certificates.keys import shc_kid
from vaxhub.certificates.revocation import RevocationHashType, RevocationList
from vaxhub.certificates.trust_list import TrustList
from vaxhub.errors import MalformedInput

#: Longest text accepted: a version 40 QR holds at most 7,089 digits.
MAX_TEXT_LENGTH = 16_384
_JWS = re.compile(r"^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*\.[A-Za-z0-9_-]*$")
_PAYLOAD_DEPTH = 32


class Signature(str, Enum):
    VALID = "valid"
    INVALID = "invalid"
    UNKNOWN_KEY = "unknown-key"


@dataclass(frozen=True)
class Problem:
    """One reason a certificate is refused: a stable `code` and a sentence."""

    code: str
    message: str


# -- trust ---------------------------------------------------------------------


@dataclass
class IssuerKeys:
    """SMART Health Card issuer keys: the JWKS of `issuer` (an `iss` URL), or
    keys given by hand for any issuer when `issuer` is None."""

    issuer: str | None
    keys: list[dict[str, Any]]


@dataclass
class Trust:
    """Everything a verifier trusts and every revocation it knows."""

    signers: TrustList = field(default_factory=TrustList)
    shc_issuers: list[IssuerKeys] = field(default_factory=list)
    revocation: RevocationList = field(default_factory=RevocationList)
    revoked_card_ids: set[str] = field(default_factory=set)
    revoked_card_kids: set[str] = field(default_factory=set)

    def card_keys(self, issuer: str | None, kid: str | None) -> list[dict[str, Any]]:
        """Trusted JWKs with this `kid`, from `issuer`'s JWKS or from keys trusted for any issuer."""
        return [
            key
            for entry in self.shc_issuers
            if entry.issuer is None or entry.issuer == issuer
            for key in entry.keys
            if isinstance(key, dict) and key.get("kid") == kid
        ]

    def add_jwks(self, jwks: dict[str, Any], issuer: str | None = None) -> int:
        keys = jwks.get("keys") if isinstance(jwks, dict) else None
        if not isinstance(keys, list) or not all(isinstance(k, dict) for k in keys):
            raise MalformedInput("a JWKS is a JSON object with a list of keys")
        self.shc_issuers.append(IssuerKeys(issuer.rstrip("/") if issuer else None, keys))
        return len(keys)

    def add_revocations(self, document: dict[str, Any]) -> int:
        """Read a revocation list in the hub's export form (:func:`revocation_document`)."""
        count = 0
        try:
            for batch in document.get("batches") or []:
                hash_type = RevocationHashType(batch["hashType"])
                for entry in batch.get("entries") or []:
                    self.revocation.add_hash(hash_type, entry["hash"])
                    count += 1
            for signer in document.get("revokedSigners") or []:
                self.revocation.revoked_signers.add(str(signer["thumbprint"]).lower())
                if signer.get("jwkKid"):
                    self.revoked_card_kids.add(signer["jwkKid"])
                count += 1
            for rid in (document.get("shc") or {}).get("rids") or []:
                self.revoked_card_ids.add(str(rid))
                count += 1
        except (KeyError, TypeError, ValueError, AttributeError, binascii.Error) as exc:
            raise MalformedInput(f"revocation list entry unreadable: {exc}") from exc
        return count

    def add_document(self, data: bytes) -> str:
        """Trust what `data` holds; returns a line saying what was added.

        PEM (one or more certificates) or DER X.509 signer certificates; an
        EU-style trust list; a JWKS (its optional `issuer` member binds the keys
        to that `iss`); the hub's trust list or revocation list. Raises
        MalformedInput for anything else, adding nothing."""
        stripped = data.strip()
        if stripped.startswith(b"-----BEGIN"):
            try:
                certificates = x509.load_pem_x509_certificates(stripped)
            except ValueError as exc:
                raise MalformedInput(f"unreadable PEM certificate: {exc}") from exc
            for certificate in certificates:
                self.signers.add(certificate)
            return f"{len(certificates)} signer certificate(s) from PEM"
        if stripped[:1] in (b"{", b"["):
            try:
                document = json.loads(stripped)
            except ValueError as exc:
                raise MalformedInput(f"unreadable JSON: {exc}") from exc
            return self._add_json(document)
        try:
            # The raw bytes: a DER certificate may well end in a byte that
            # `strip()` takes for whitespace (its signature is random).
            certificate = x509.load_der_x509_certificate(data)
        except ValueError:
            raise MalformedInput("not an X.509 certificate, a trust list, a JWKS or a revocation list") from None
        self.signers.add(certificate)
        return "1 signer certificate from DER"

    def _add_json(self, document: Any) -> str:
        if isinstance(document, list):
            return f"{self.signers.import_json(document)} signer certificate(s) from a trust list"
        if not isinstance(document, dict):
            raise MalformedInput("a trust document is a JSON object or list")
        if "keys" in document:
            issuer = document.get("issuer") or document.get("iss")
            count = self.add_jwks(document, issuer if isinstance(issuer, str) else None)
            return f"{count} SMART Health Card key(s)" + (f" of {issuer}" if issuer else " (any issuer)")
        if "batches" in document or "revokedSigners" in document:
            return f"{self.add_revocations(document)} revocation(s)"
        if "certificates" in document:
            # Validate both parts before keeping either.
            staged = TrustList()
            signers = staged.import_json(document)
            card_part = document.get("shc")
            keys = 0
            if isinstance(card_part, dict) and isinstance(card_part.get("jwks"), dict):
                issuer = card_part.get("iss")
                keys = self.add_jwks(card_part["jwks"], issuer if isinstance(issuer, str) else None)
            for signer in staged:
                self.signers.add_signer(signer)
            return f"{signers} signer certificate(s) and {keys} SMART Health Card key(s) from a trust list"
        raise MalformedInput("JSON is not a trust list, a JWKS or a revocation list")


# -- the report ----------------------------------------------------------------


@dataclass
class VerificationReport:
    """What a verifier shows: `valid` only when `errors` is empty."""

    format: str | None  # "dcc" | "shc" | None when unrecognised
    signature: Signature
    errors: list[Problem] = field(default_factory=list)
    issuer: str | None = None
    issued_at: dt.datetime | None = None
    expires_at: dt.datetime | None = None
    expired: bool = False
    not_yet_valid: bool = False
    revoked: bool = False
    kid: str | None = None
    algorithm: str | None = None
    certificate_id: str | None = None
    payload: Any = None

    @property
    def valid(self) -> bool:
        return not self.errors and self.signature is Signature.VALID

    @property
    def codes(self) -> list[str]:
        return [p.code for p in self.errors]

    def to_json(self) -> dict[str, Any]:
        return {
            "format": self.format,
            "valid": self.valid,
            "signature": self.signature.value,
            "issuer": self.issuer,
            "issued_at": _instant(self.issued_at),
            "expires_at": _instant(self.expires_at),
            "expired": self.expired,
            "not_yet_valid": self.not_yet_valid,
            "revoked": self.revoked,
            "kid": self.kid,
            "algorithm": self.algorithm,
            "certificate_id": self.certificate_id,
            "payload": self.payload,
            "errors": [{"code": p.code, "message": p.message} for p in self.errors],
        }


def _instant(moment: dt.datetime | None) -> str | None:
    return moment.astimezone(dt.timezone.utc).isoformat().replace("+00:00", "Z") if moment else None


def _refused(fmt: str | None, code: str, message: str) -> VerificationReport:
    return VerificationReport(fmt, Signature.INVALID, [Problem(code, message)])


def verify_text(text: str, trust: Trust, *, now: dt.datetime | None = None) -> VerificationReport:
    """Verify what a QR code (or a `.smart-health-card` file) holds, at `now`."""
    now = now or dt.datetime.now(dt.timezone.utc)
    if not isinstance(text, str):
        return _refused(None, "malformed", "the certificate is not text")
    if len(text) > MAX_TEXT_LENGTH:
        return _refused(None, "malformed", f"{len(text)} characters: longer than any QR code holds")
    fmt = _format_of(text)
    try:
        if fmt == "dcc":
            return _verify_dcc(text.strip(), trust, now)
        if fmt == "shc":
            return _verify_card(_card_jws(text.strip()), trust, now)
    except MalformedInput as exc:
        return _refused(fmt, "malformed", exc.message)
    except Exception as exc:  # noqa: BLE001 - hostile input may break a decoder anywhere: it is unreadable, not a crash
        spec = "EU DCC (HCERT)" if fmt == "dcc" else "SMART Health Card"
        return _refused(fmt, "malformed", f"unreadable {spec}: its content does not have the expected structure ({type(exc).__name__})")
    head = text.strip()[:8]
    return _refused(None, "unknown-format", f"not an EU DCC (HC1:) or a SMART Health Card (shc:/): starts with {head!r}")


def _format_of(text: str) -> str | None:
    stripped = text.strip()
    if stripped.startswith(HC1_PREFIX):
        return "dcc"
    if stripped.startswith(shc.QR_PREFIX) or _JWS.match(stripped) or (stripped.startswith("{") and "verifiableCredential" in stripped):
        return "shc"
    return None


def _card_jws(text: str) -> str:
    if text.startswith(shc.QR_PREFIX):
        parts = text.split()
        return shc.decode_numeric(parts[0] if len(parts) == 1 else parts)
    if text.startswith("{"):
        try:
            credentials = shc.read_card_file(text)
        except ValueError as exc:
            raise MalformedInput(f"not a .smart-health-card file: {exc}") from exc
        if len(credentials) != 1:
            raise MalformedInput(f"the file holds {len(credentials)} cards; verify them one at a time")
        return credentials[0]
    return text


# -- EU DCC ----------------------------------------------------------------------

_DCC_UNKNOWN_KEY = {Refusal.UNKNOWN_KID, Refusal.MISSING_KID}


def _verify_dcc(text: str, trust: Trust, now: dt.datetime) -> VerificationReport:
    result = verify_hc1(text, trust.signers, now, trust.revocation)
    codes = set(result.codes)
    if result.signer is not None:
        signature = Signature.VALID
    elif codes & _DCC_UNKNOWN_KEY:
        signature = Signature.UNKNOWN_KEY
    else:
        signature = Signature.INVALID
    report = VerificationReport(
        "dcc",
        signature,
        [Problem(r.code.value, r.detail) for r in result.reasons],
        expired=Refusal.EXPIRED in codes,
        not_yet_valid=Refusal.NOT_YET_VALID in codes,
        revoked=bool(codes & {Refusal.REVOKED, Refusal.SIGNER_REVOKED}),
    )
    decoded = result.decoded
    if decoded is not None:
        report.issuer = decoded.issuer_country
        report.issued_at = decoded.issued_at
        report.expires_at = decoded.expires_at
        report.kid = base64.b64encode(decoded.kid).decode("ascii") if decoded.kid else None
        report.algorithm = decoded.algorithm
        report.certificate_id = decoded.uvci
        report.payload = _jsonable(decoded.hcert)
    return report


# -- SMART Health Cards ------------------------------------------------------------

#: verify_card's reasons, by their opening words, as report codes.
_CARD_REASONS = (
    ("algorithm ", "unsupported-algorithm"),
    ("header zip", "malformed"),
    ("no issuer key", "unknown-kid"),
    ("issuer key is not", "bad-signature"),
    ("the key's thumbprint", "bad-signature"),
    ("bad signature", "bad-signature"),
    ("signature not verified", "bad-signature"),
    ("no nbf", "malformed"),
    ("card is not valid yet", "not-yet-valid"),
    ("card has expired", "expired"),
    ("issuer ", "wrong-issuer"),
    ("payload is not", "not-a-health-card"),
    ("credential has no", "not-a-health-card"),
)
_SIGNATURE_CODES = {"bad-signature", "unsupported-algorithm"}


def _card_code(reason: str) -> str:
    return next((code for prefix, code in _CARD_REASONS if reason.startswith(prefix)), "invalid")


def _verify_card(jws: str, trust: Trust, now: dt.datetime) -> VerificationReport:
    card = shc.decode_card(jws)
    header, payload = card.header, card.payload
    if not isinstance(payload, dict):
        raise MalformedInput("the card payload is not a JSON object")
    vc = payload.get("vc")
    shape = _credential_shape_problem(vc)
    if shape:
        raise MalformedInput(shape)
    issuer = payload.get("iss") if isinstance(payload.get("iss"), str) else None
    kid = header.get("kid") if isinstance(header.get("kid"), str) else None
    report = VerificationReport(
        "shc",
        Signature.UNKNOWN_KEY,
        issuer=issuer,
        issued_at=_epoch(payload.get("nbf")),
        expires_at=_epoch(payload.get("exp")),
        kid=kid,
        algorithm=header.get("alg") if isinstance(header.get("alg"), str) else None,
        certificate_id=vc.get("rid") if isinstance(vc, dict) and isinstance(vc.get("rid"), str) else None,
        payload=_jsonable(payload),
    )
    candidates = trust.card_keys(issuer, kid)
    reasons: list[str] = []
    chosen: dict[str, Any] | None = None
    for key in candidates:
        reasons = shc.verify_card(jws, {"keys": [key]}, now=now, decoded=card).reasons
        if not any(_card_code(r) in _SIGNATURE_CODES for r in reasons):
            chosen = key
            break
    if not candidates:
        reasons = shc.verify_card(jws, {"keys": []}, now=now).reasons
        report.errors.append(Problem("unknown-kid", f"no trusted key with kid {kid!r}" + (f" for issuer {issuer}" if issuer else "")))
    else:
        report.signature = Signature.VALID if chosen is not None else Signature.INVALID
    for reason in reasons:
        code = _card_code(reason)
        if code != "unknown-kid":
            report.errors.append(Problem(code, reason))
    codes = set(report.codes)
    report.expired = "expired" in codes
    report.not_yet_valid = "not-yet-valid" in codes
    if chosen is not None:
        report.errors.extend(_card_signer_problems(chosen, report.issued_at, now))
    if kid is not None and kid in trust.revoked_card_kids:
        report.errors.append(Problem("signer-revoked", "the issuer key has been withdrawn"))
    if report.certificate_id is not None and report.certificate_id in trust.revoked_card_ids:
        report.errors.append(Problem("revoked", f"card revoked (rid {report.certificate_id})"))
    report.revoked = bool({"revoked", "signer-revoked"} & set(report.codes))
    return report


def _credential_shape_problem(vc: Any) -> str | None:
    """What makes `vc` unreadable as a credential (W3C VC data model as SHC uses it), if anything."""
    if vc is None:
        return None  # reported as "not a health card" by verify_card
    if not isinstance(vc, dict):
        return "the card's vc member is not an object"
    if not isinstance(vc.get("type", []), list):
        return "the credential's type is not a list"
    subject = vc.get("credentialSubject", {})
    if not isinstance(subject, dict) or not isinstance(subject.get("fhirBundle", {}), dict):
        return "the credential subject is not an object holding a FHIR Bundle"
    return None


def _card_signer_problems(jwk: dict[str, Any], issued_at: dt.datetime | None, now: dt.datetime) -> list[Problem]:
    """A key published with its certificate (`x5c`, RFC 7517 §4.7) is valid
    only while that certificate is: the key of a rotated-out signer verifies
    until its certificate expires."""
    chain = jwk.get("x5c")
    if not chain:
        return []
    try:
        certificate = x509.load_der_x509_certificate(base64.b64decode(chain[0], validate=True))
        public = certificate.public_key()
    except (ValueError, TypeError, binascii.Error, IndexError, KeyError):
        return [Problem("bad-signature", "the key's x5c certificate is unreadable")]
    if not isinstance(public, ec.EllipticCurvePublicKey) or shc_kid(public) != jwk.get("kid"):
        return [Problem("bad-signature", "the key's x5c certificate holds another key")]
    start, end = certificate.not_valid_before_utc, certificate.not_valid_after_utc
    if not start <= now <= end or (issued_at is not None and not start <= issued_at <= end):
        return [Problem("signer-expired", f"signer certificate valid only from {start} to {end}")]
    return []


# -- helpers -------------------------------------------------------------------


def _epoch(value: Any) -> dt.datetime | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    try:
        return dt.datetime.fromtimestamp(value, dt.timezone.utc)
    except (OverflowError, OSError, ValueError):
        return None


def _jsonable(value: Any, depth: int = 0) -> Any:
    """Decoded CBOR or JSON as plain JSON: bytes in base64, tags as objects,
    non-finite numbers as text, nesting cut off at a sane depth."""
    if depth > _PAYLOAD_DEPTH:
        return "…"
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, (bytes, bytearray, memoryview)):
        return base64.b64encode(bytes(value)).decode("ascii")
    if isinstance(value, dict):
        return {str(_jsonable(k, depth + 1)): _jsonable(v, depth + 1) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [_jsonable(v, depth + 1) for v in value]
    if isinstance(value, cbor2.CBORTag):
        return {"tag": value.tag, "value": _jsonable(value.value, depth + 1)}
    if isinstance(value, (dt.datetime, dt.date)):
        return value.isoformat()
    return str(value)


def revocation_document(
    *,
    country: str,
    batches: Iterable[dict[str, Any]],
    revoked_signers: Iterable[dict[str, str]] = (),
    card_ids: Iterable[str] = (),
    generated_at: dt.datetime | None = None,
) -> dict[str, Any]:
    """The revocation list exchange form :meth:`Trust.add_revocations` reads:
    EU DCC gateway-style batches (`{kid, hashType, expires, entries: [{hash}]}`),
    withdrawn signers (`{kid, thumbprint, jwkKid}`) and SHC revocation ids."""
    return {
        "country": country,
        "generatedAt": _instant(generated_at or dt.datetime.now(dt.timezone.utc)),
        "batches": list(batches),
        "revokedSigners": list(revoked_signers),
        "shc": {"rids": sorted(card_ids)},
    }
