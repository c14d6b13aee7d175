"""EU Digital COVID Certificate (HCERT 1.0.5, DCC JSON schema 1.3.0): issue,
decode and verify vaccination certificates.

Pipeline (HCERT §2-§4): hcert JSON → CWT claims (1 `iss`, 4 `exp`, 6 `iat`,
-260 `{1: hcert}`) → CBOR → COSE_Sign1 (RFC 8152 §4.2; ES256 or PS256, `kid`
in the protected header) → zlib → base45 (RFC 9285) → `HC1:` prefix → QR.

COSE is built with cbor2 and signed with cryptography directly: verification
must accept forms the `cwt` library does not hand back as such (tag 18,
untagged, wrapped in CWT tag 61, `kid` in the unprotected header) and try every
signer that shares a `kid`.
"""

from __future__ import annotations

import datetime as dt
import functools
import io
import os
import re
import threading
import unicodedata
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

import b45
import base45
import cbor2
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature, encode_dss_signature

from vaxhub.certificates.keys import PrivateKey, Purpose, Signer, certificate_algorithm
from vaxhub.certificates.revocation import RevocationList
from vaxhub.certificates.trust_list import TrustedSigner, TrustList
from vaxhub.errors import InputError, MalformedInput

HC1_PREFIX = "HC1:"
SCHEMA_VERSION = "1.3.0"
COVID19_SNOMED = "840539006"

COSE_HEADER_ALG = 1
COSE_HEADER_KID = 4
COSE_SIGN1_TAG = 18
CWT_TAG = 61
CWT_ISS, CWT_EXP, CWT_IAT, CWT_HCERT = 1, 4, 6, -260
COSE_ALGORITHMS = {-7: "ES256", -37: "PS256"}
COSE_ALGORITHM_IDS = {v: k for k, v in COSE_ALGORITHMS.items()}

_DOB_PATTERN = re.compile(r"^((19|20)\d\d(-\d\d){0,2})?$")


# --------------------------------------------------------------------------
# ICAO 9303 transliteration (DCC schema `fnt` / `gnt`)
# --------------------------------------------------------------------------

#: ICAO Doc 9303 Part 3 §6 Table A: Latin letters that do not reduce to one
#: base letter by dropping diacritics. `Đ` has no Unicode decomposition.
_ICAO_SPECIAL = {
    "Ä": "AE", "Å": "AA", "Æ": "AE", "Ĳ": "IJ", "Ö": "OE", "Ø": "OE", "Œ": "OE",
    "ß": "SS", "ẞ": "SS", "Ü": "UE", "Þ": "TH", "Ð": "D", "Đ": "D", "Ħ": "H",
    "Ł": "L", "Ŀ": "L", "Ŋ": "N", "ı": "I", "Ŧ": "T", "ĸ": "K",
}
_ICAO_FILLERS = {" ", "-", ",", "\u2010", "\u2011", "\u00a0"}
NAME_MAX_LENGTH = 80


@functools.lru_cache(maxsize=16384)  # names repeat: a cache hit is most of a certificate's hcert
def transliterate_icao(name: str) -> str:
    """Machine-readable form of a name for `fnt`/`gnt` (DCC schema 1.3.0 §nam,
    pattern `^[A-Z<]*$`, at most 80 characters), by ICAO Doc 9303 Part 3 §6:
    upper case; letters with diacritics reduced to the base letter (Vietnamese
    `Ặ`, `Ơ`, `Ư`… → `A`, `O`, `U`; `Đ` → `D`); the Table A digraphs (`Ä` →
    `AE`, `Ø` → `OE`, `ß` → `SS`…); spaces, hyphens and commas become the
    filler `<`, runs of them one filler, none at either end; apostrophes and
    other marks are dropped."""
    text = unicodedata.normalize("NFC", name).strip()
    out: list[str] = []
    for ch in text:
        upper = ch if ch in ("ß", "ı", "ĸ") else ch.upper()
        if upper in _ICAO_SPECIAL:
            out.append(_ICAO_SPECIAL[upper])
            continue
        if ch in _ICAO_FILLERS or ch.isspace():
            out.append("<")
            continue
        base = "".join(c for c in unicodedata.normalize("NFD", upper) if not unicodedata.combining(c))
        out.append("".join(c for c in base if "A" <= c <= "Z"))
    result = re.sub("<+", "<", "".join(out)).strip("<")
    return result[:NAME_MAX_LENGTH].rstrip("<")


# --------------------------------------------------------------------------
# UVCI (eHN guidelines on verifiable vaccination certificates, Annex 2)
# --------------------------------------------------------------------------

#: Luhn mod N code points for the UVCI checksum (eu-dcc-schema FAQ): A-Z,
#: 0-9, '/' and ':'; '#' only separates the check character.
UVCI_CODE_POINTS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789/:"
_UVCI_PATTERN = re.compile(r"^URN:UVCI:01:[A-Z]{2}:[A-Z0-9/:]+(#[A-Z0-9/:])?$")


def _luhn_mod_n_sum(text: str, factor_of_rightmost: int) -> int:
    n = len(UVCI_CODE_POINTS)
    total, factor = 0, factor_of_rightmost
    for ch in reversed(text):
        addend = factor * UVCI_CODE_POINTS.index(ch)
        total += addend // n + addend % n
        factor = 1 if factor == 2 else 2
    return total % n


def uvci_check_character(uvci: str) -> str:
    """Luhn mod N check character over the whole UVCI, `URN:UVCI:` included."""
    n = len(UVCI_CODE_POINTS)
    return UVCI_CODE_POINTS[(n - _luhn_mod_n_sum(uvci, 2)) % n]


def new_uvci(
    country: str = "VN",
    *,
    issuing_entity: str | None = None,
    opaque: str | None = None,
    checksum: bool = False,
) -> str:
    """A new UVCI `URN:UVCI:01:<CC>:[<entity>/]<opaque>[#<check>]` (Annex 2,
    option 3 when an issuing entity is given). The opaque part defaults to 32
    upper-case hex digits of 128 random bits; the check character is optional."""
    opaque = opaque or os.urandom(16).hex().upper()  # 128 random bits
    body = f"URN:UVCI:01:{country.upper()}:" + (f"{issuing_entity.upper()}/" if issuing_entity else "") + opaque.upper()
    if not _UVCI_PATTERN.match(body):
        raise InputError(f"UVCI {body!r} uses characters outside A-Z 0-9 / :")
    return f"{body}#{uvci_check_character(body)}" if checksum else body


def is_valid_uvci(uvci: str) -> bool:
    """True when `uvci` is well formed and, if it carries `#<check>`, the check
    character matches."""
    if not _UVCI_PATTERN.match(uvci):
        return False
    if "#" in uvci:
        body, check = uvci.split("#")
        return _luhn_mod_n_sum(body + check, 1) == 0
    return True


# --------------------------------------------------------------------------
# hcert payload (DCC schema 1.3.0)
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class DccPerson:
    """The holder. `birth_date` is `YYYY-MM-DD`, `YYYY-MM`, `YYYY` or `""`
    (unknown), as schema 1.3.0 `dob` allows."""

    family_name: str
    given_name: str | None
    birth_date: str


@dataclass(frozen=True)
class DccVaccination:
    """One vaccination event (schema 1.3.0 `v[0]`)."""

    vaccine: str  # vp, e.g. "J07BX03" or "1119349007"
    product: str  # mp, e.g. "EU/1/20/1528"
    manufacturer: str  # ma, e.g. "ORG-100030215"
    dose_number: int  # dn
    total_doses: int  # sd
    date: dt.date | str  # dt
    issuer: str  # is
    certificate_id: str  # ci (UVCI)
    country: str = "VN"  # co
    target: str = COVID19_SNOMED  # tg


@functools.lru_cache(maxsize=65536)  # a few tens of thousands of birth days cover a population
def _check_birth_date(birth_date: str) -> None:
    """Refuse a `dob` that is not YYYY, YYYY-MM or YYYY-MM-DD (DCC schema 1.3.0) or no calendar date."""
    if not _DOB_PATTERN.match(birth_date):
        raise InputError(f"birth date {birth_date!r} is not YYYY, YYYY-MM or YYYY-MM-DD")
    if birth_date:
        parts = [int(p) for p in birth_date.split("-")]
        try:
            dt.date(parts[0], parts[1] if len(parts) > 1 else 1, parts[2] if len(parts) > 2 else 1)
        except ValueError as exc:
            raise InputError(f"birth date {birth_date!r} is not a calendar date") from exc


@functools.lru_cache(maxsize=16384)
def _clean_name(name: str) -> str:
    return unicodedata.normalize("NFC", name).strip()


def build_hcert(person: DccPerson, vaccination: DccVaccination) -> dict[str, Any]:
    """The hcert JSON for one vaccination (DCC schema 1.3.0, `ver`, `nam`,
    `dob`, `v`). Names are NFC-normalised and trimmed (schema guidance: no
    surrounding whitespace); `fnt`/`gnt` are their ICAO transliterations."""
    _check_birth_date(person.birth_date)
    family = _clean_name(person.family_name)
    given = _clean_name(person.given_name) if person.given_name else ""
    if not family and not given:
        raise InputError("a DCC needs a family or a given name")
    nam: dict[str, str] = {}
    if family:
        nam["fn"] = family[:NAME_MAX_LENGTH]
    nam["fnt"] = transliterate_icao(family)
    if given:
        nam["gn"] = given[:NAME_MAX_LENGTH]
        nam["gnt"] = transliterate_icao(given)
    v = vaccination
    if v.dose_number < 1 or v.total_doses < 1:
        raise InputError("dose number and total doses are at least 1")
    when = v.date.isoformat() if isinstance(v.date, dt.date) else v.date
    entry = {
        "tg": v.target,
        "vp": v.vaccine,
        "mp": v.product,
        "ma": v.manufacturer,
        "dn": int(v.dose_number),
        "sd": int(v.total_doses),
        "dt": when,
        "co": v.country,
        "is": v.issuer.strip()[:80],
        "ci": v.certificate_id,
    }
    return {"ver": SCHEMA_VERSION, "nam": nam, "dob": person.birth_date, "v": [entry]}


def build_cwt_claims(
    hcert: dict[str, Any], *, issuer_country: str, issued_at: dt.datetime, expires_at: dt.datetime
) -> dict[int, Any]:
    """CWT claims (HCERT §3.3.1, RFC 8392): `iss`, `iat`, `exp` and the hcert
    under claim -260, key 1 (EU DCC v1)."""
    if expires_at <= issued_at:
        raise InputError("a certificate must expire after it is issued")
    return {
        CWT_ISS: issuer_country,
        CWT_IAT: int(issued_at.timestamp()),
        CWT_EXP: int(expires_at.timestamp()),
        CWT_HCERT: {1: hcert},
    }


# --------------------------------------------------------------------------
# COSE_Sign1
# --------------------------------------------------------------------------


_encoders = threading.local()


def _cbor(value: Any) -> bytes:
    """`cbor2.dumps(value)`, with one encoder kept per thread: building a new
    encoder costs more than encoding a certificate's claims."""
    encoder = getattr(_encoders, "encoder", None)
    if encoder is None:
        encoder = _encoders.encoder = cbor2.CBOREncoder(io.BytesIO())
    buffer = encoder.fp
    buffer.seek(0)
    buffer.truncate()
    encoder.encode(value)
    return buffer.getvalue()


def _sig_structure(protected: bytes, payload: bytes) -> bytes:
    """RFC 8152 §4.4 Sig_structure for COSE_Sign1, empty external AAD."""
    return _cbor(["Signature1", protected, b"", payload])


_ECDSA_SHA256 = ec.ECDSA(hashes.SHA256())


def _sign(key: PrivateKey, algorithm: str, data: bytes) -> bytes:
    if algorithm == "ES256":
        if not isinstance(key, ec.EllipticCurvePrivateKey):
            raise InputError("ES256 needs an EC P-256 key")
        r, s = decode_dss_signature(key.sign(data, _ECDSA_SHA256))
        return r.to_bytes(32, "big") + s.to_bytes(32, "big")
    if algorithm == "PS256":
        if not isinstance(key, rsa.RSAPrivateKey):
            raise InputError("PS256 needs an RSA key")
        return key.sign(
            data,
            padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=padding.PSS.DIGEST_LENGTH),
            hashes.SHA256(),
        )
    raise InputError(f"unsupported algorithm {algorithm}")


def _verify_signature(public_key: Any, algorithm: str, signature: bytes, data: bytes) -> bool:
    try:
        if algorithm == "ES256" and isinstance(public_key, ec.EllipticCurvePublicKey):
            if len(signature) != 64:
                return False
            der = encode_dss_signature(int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:], "big"))
            public_key.verify(der, data, ec.ECDSA(hashes.SHA256()))
            return True
        if algorithm == "PS256" and isinstance(public_key, rsa.RSAPublicKey):
            public_key.verify(
                signature,
                data,
                padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=padding.PSS.AUTO),
                hashes.SHA256(),
            )
            return True
    except InvalidSignature:
        return False
    return False


@functools.lru_cache(maxsize=64)
def _protected_header(alg_id: int, kid: bytes | None) -> bytes:
    """The serialised protected header (HCERT §3.3.2: `alg`, and `kid` when it goes there); one per signer."""
    header: dict[int, Any] = {COSE_HEADER_ALG: alg_id}
    if kid is not None:
        header[COSE_HEADER_KID] = kid
    return cbor2.dumps(header)


def sign_cose(
    payload: bytes,
    signer: Signer,
    *,
    kid_in: str = "protected",
    tagging: str = "18",
) -> bytes:
    """COSE_Sign1 over `payload` (RFC 8152 §4.2, HCERT §3.3.2). The `kid`
    belongs in the protected header (`kid_in="protected"`); `"unprotected"`
    exists to produce the legacy form verifiers must still read. `tagging` is
    `"18"` (COSE_Sign1 tag, the HCERT form), `"none"` or `"61"` (tag 18
    wrapped in the CWT tag)."""
    algorithm = signer.algorithm
    kid = signer.kid
    unprotected: dict[int, Any] = {}
    if kid_in == "unprotected":
        unprotected[COSE_HEADER_KID] = kid
    elif kid_in != "protected":
        raise InputError("kid_in is 'protected' or 'unprotected'")
    protected = _protected_header(COSE_ALGORITHM_IDS[algorithm], kid if kid_in == "protected" else None)
    signature = _sign(signer.private_key, algorithm, _sig_structure(protected, payload))
    message: Any = [protected, unprotected, payload, signature]
    if tagging == "18":
        message = cbor2.CBORTag(COSE_SIGN1_TAG, message)
    elif tagging == "61":
        message = cbor2.CBORTag(CWT_TAG, cbor2.CBORTag(COSE_SIGN1_TAG, message))
    elif tagging != "none":
        raise InputError("tagging is '18', 'none' or '61'")
    return _cbor(message)


def _zlib(data: bytes) -> bytes:
    """The zlib stream (RFC 1950, header 0x78 as verifiers expect) of a
    COSE_Sign1, in stored deflate blocks (RFC 1951 §3.2.4, level 0).

    HCERT §3.4 asks for a zlib stream, not for a compression level. A
    vaccination certificate's COSE_Sign1 (a 64-byte signature, a random
    UVCI, names and codes each written once) does not shrink: at level 9 it
    comes out about 1% *larger* than it went in (the dynamic Huffman table
    costs more than it saves; `bench/certificates.py` prints both sizes),
    a few bytes shorter than stored blocks, for ten times the time."""
    compressor = zlib.compressobj(0, zlib.DEFLATED, 15, 1)  # 32 KiB window header (0x78); memLevel 1: nothing to match
    return compressor.compress(data) + compressor.flush()


def encode_hc1_from_cose(cose: bytes) -> str:
    """zlib (HCERT §3.4), base45 (§3.5), `HC1:` prefix (§3.6).

    Encoding uses `b45`, whose numpy encoder converts every byte pair at once
    (about 9 µs for a certificate against 70 µs pair by pair with `base45`,
    more than the ECDSA signature itself). Decoding stays with `base45`
    (`decode_hc1`), which refuses triplets above 65535 and characters outside
    the alphabet, where `b45` would return wrapped bytes."""
    return HC1_PREFIX + b45.encode(_zlib(cose))


def encode_hc1(
    hcert: dict[str, Any],
    signer: Signer,
    *,
    issuer_country: str,
    issued_at: dt.datetime,
    expires_at: dt.datetime,
    kid_in: str = "protected",
    tagging: str = "18",
) -> str:
    """Sign `hcert` into the `HC1:` text that goes into the QR code."""
    claims = build_cwt_claims(hcert, issuer_country=issuer_country, issued_at=issued_at, expires_at=expires_at)
    return encode_hc1_from_cose(sign_cose(_cbor(claims), signer, kid_in=kid_in, tagging=tagging))


def issue_dcc(
    person: DccPerson,
    vaccination: DccVaccination,
    signer: Signer,
    *,
    issued_at: dt.datetime,
    valid_for: dt.timedelta = dt.timedelta(days=365),
    issuer_country: str = "VN",
) -> str:
    """Build, sign and encode a vaccination DCC in one call."""
    return encode_hc1(
        build_hcert(person, vaccination),
        signer,
        issuer_country=issuer_country,
        issued_at=issued_at,
        expires_at=issued_at + valid_for,
    )


# --------------------------------------------------------------------------
# decoding
# --------------------------------------------------------------------------


def _epoch(value: Any) -> dt.datetime | None:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return dt.datetime.fromtimestamp(value, dt.timezone.utc)
    return None


@dataclass(frozen=True)
class DecodedDcc:
    """An `HC1:` certificate taken apart, nothing verified yet."""

    hcert: dict[str, Any]
    claims: dict[Any, Any]
    protected: dict[Any, Any]
    unprotected: dict[Any, Any]
    kid: bytes | None
    algorithm: str | None
    signature: bytes
    signed_bytes: bytes  # the Sig_structure the signature covers
    tags: tuple[int, ...]  # CBOR tags around the COSE_Sign1, outermost first

    @property
    def issuer_country(self) -> str | None:
        iss = self.claims.get(CWT_ISS)
        return iss if isinstance(iss, str) else None

    @property
    def issued_at(self) -> dt.datetime | None:
        return _epoch(self.claims.get(CWT_IAT))

    @property
    def expires_at(self) -> dt.datetime | None:
        return _epoch(self.claims.get(CWT_EXP))

    @property
    def certificate_type(self) -> Purpose | None:
        for key, purpose in (("v", "vaccination"), ("t", "test"), ("r", "recovery")):
            if self.hcert.get(key):
                return purpose  # type: ignore[return-value]
        return None

    @property
    def uvci(self) -> str | None:
        for key in ("v", "t", "r"):
            entries = self.hcert.get(key)
            if entries:
                ci = entries[0].get("ci")
                return ci.strip() if isinstance(ci, str) else None
        return None


def decode_hc1(text: str) -> DecodedDcc:
    """Undo HCERT §3.6 → §3.2: prefix, base45, zlib, CBOR, COSE_Sign1, CWT.

    Accepts COSE_Sign1 tagged 18, untagged, or wrapped in the CWT tag 61, and
    a `kid` in the unprotected header when the protected one has none
    (HCERT §3.3.2). Raises MalformedInput on anything it cannot read."""
    text = text.strip()
    if not text.startswith(HC1_PREFIX):
        raise MalformedInput(f"not an EU DCC: the text does not start with {HC1_PREFIX!r}")
    try:
        raw = base45.b45decode(text[len(HC1_PREFIX):])
    except (ValueError, KeyError) as exc:
        raise MalformedInput(f"bad base45: {exc}") from exc
    if raw[:1] == b"\x78":
        try:
            raw = zlib.decompress(raw)
        except zlib.error as exc:
            raise MalformedInput(f"bad zlib data: {exc}") from exc
    try:
        message = cbor2.loads(raw)
    except (cbor2.CBORDecodeError, ValueError) as exc:
        raise MalformedInput(f"bad CBOR: {exc}") from exc
    tags: list[int] = []
    while isinstance(message, cbor2.CBORTag):
        if message.tag not in (COSE_SIGN1_TAG, CWT_TAG):
            raise MalformedInput(f"unexpected CBOR tag {message.tag}: not a COSE_Sign1")
        tags.append(message.tag)
        message = message.value
    if not (isinstance(message, list) and len(message) == 4):
        raise MalformedInput("not a COSE_Sign1 array of four items")
    protected_bytes, unprotected, payload, signature = message
    if not isinstance(protected_bytes, bytes) or not isinstance(payload, bytes) or not isinstance(signature, bytes):
        raise MalformedInput("COSE_Sign1 items have the wrong types")
    if not isinstance(unprotected, dict):
        raise MalformedInput("COSE unprotected header is not a map")
    try:
        protected = cbor2.loads(protected_bytes) if protected_bytes else {}
        claims = cbor2.loads(payload)
    except (cbor2.CBORDecodeError, ValueError) as exc:
        raise MalformedInput(f"bad CBOR inside COSE: {exc}") from exc
    if not isinstance(protected, dict) or not isinstance(claims, dict):
        raise MalformedInput("COSE protected header or CWT claims are not maps")
    hcert_claim = claims.get(CWT_HCERT)
    hcert = hcert_claim.get(1) if isinstance(hcert_claim, dict) else None
    if not isinstance(hcert, dict):
        raise MalformedInput("CWT claim -260 holds no EU DCC (key 1)")
    kid = protected.get(COSE_HEADER_KID) or unprotected.get(COSE_HEADER_KID)
    alg_id = protected.get(COSE_HEADER_ALG, unprotected.get(COSE_HEADER_ALG))
    return DecodedDcc(
        hcert=hcert,
        claims=claims,
        protected=protected,
        unprotected=unprotected,
        kid=kid if isinstance(kid, bytes) else None,
        algorithm=COSE_ALGORITHMS.get(alg_id) if isinstance(alg_id, int) else None,
        signature=signature,
        signed_bytes=_sig_structure(protected_bytes, payload),
        tags=tuple(tags),
    )


# --------------------------------------------------------------------------
# verification
# --------------------------------------------------------------------------


class Refusal(str, Enum):
    """Why a certificate is refused."""

    MALFORMED = "malformed"
    MISSING_KID = "missing-kid"
    UNKNOWN_KID = "unknown-kid"
    UNSUPPORTED_ALGORITHM = "unsupported-algorithm"
    BAD_SIGNATURE = "bad-signature"
    EXPIRED = "expired"
    NOT_YET_VALID = "not-yet-valid"
    SIGNER_EXPIRED = "signer-expired"
    SIGNER_NOT_VALID_FOR_TYPE = "signer-not-valid-for-type"
    SIGNER_REVOKED = "signer-revoked"
    REVOKED = "revoked"


@dataclass(frozen=True)
class RefusalReason:
    code: Refusal
    detail: str


@dataclass(frozen=True)
class DccVerification:
    """Outcome of :func:`verify_hc1`: `valid` only when `reasons` is empty."""

    decoded: DecodedDcc | None
    signer: TrustedSigner | None
    reasons: list[RefusalReason] = field(default_factory=list)

    @property
    def valid(self) -> bool:
        return not self.reasons

    @property
    def codes(self) -> list[Refusal]:
        return [r.code for r in self.reasons]


def verify_hc1(
    text: str,
    trust_list: TrustList,
    now: dt.datetime,
    revocation: RevocationList | None = None,
    *,
    clock_skew: dt.timedelta = dt.timedelta(minutes=5),
) -> DccVerification:
    """Verify an `HC1:` certificate offline (HCERT §3.3, eHN trust framework).

    Every trusted signer that shares the certificate's `kid` is tried
    (8-byte kids collide). Checks, each adding a reason when it fails: the
    signature, the CWT `exp`/`iat` against `now`, the signer certificate's
    validity at `now` and at `iat`, the signer's extended key usage for this
    certificate type (HCERT §5.1.1), a withdrawn signer, and revocation of the
    certificate by UCI, COUNTRYCODEUCI or SIGNATURE hash."""
    try:
        decoded = decode_hc1(text)
    except MalformedInput as exc:
        return DccVerification(None, None, [RefusalReason(Refusal.MALFORMED, exc.message)])
    reasons: list[RefusalReason] = []
    signer: TrustedSigner | None = None
    if decoded.kid is None:
        reasons.append(RefusalReason(Refusal.MISSING_KID, "no kid in the protected or unprotected header"))
    elif decoded.algorithm is None:
        reasons.append(RefusalReason(Refusal.UNSUPPORTED_ALGORITHM, "algorithm is neither ES256 nor PS256"))
    else:
        candidates = trust_list.signers_for(decoded.kid)
        if not candidates:
            reasons.append(RefusalReason(Refusal.UNKNOWN_KID, f"no trusted signer with kid {decoded.kid.hex()}"))
        for candidate in candidates:
            if certificate_algorithm(candidate.certificate) != decoded.algorithm:
                continue
            if _verify_signature(candidate.public_key, decoded.algorithm, decoded.signature, decoded.signed_bytes):
                signer = candidate
                break
        if candidates and signer is None:
            reasons.append(
                RefusalReason(
                    Refusal.BAD_SIGNATURE,
                    f"the signature matches none of the {len(candidates)} signer(s) with kid {decoded.kid.hex()}",
                )
            )
    exp, iat = decoded.expires_at, decoded.issued_at
    if exp is None or exp < now:
        reasons.append(RefusalReason(Refusal.EXPIRED, f"certificate expired at {exp}" if exp else "no exp claim"))
    if iat is not None and iat > now + clock_skew:
        reasons.append(RefusalReason(Refusal.NOT_YET_VALID, f"issued in the future ({iat})"))
    if signer is not None:
        if not signer.valid_at(now) or (iat is not None and not signer.valid_at(iat)):
            reasons.append(
                RefusalReason(
                    Refusal.SIGNER_EXPIRED,
                    "signer certificate valid only from "
                    f"{signer.certificate.not_valid_before_utc} to {signer.certificate.not_valid_after_utc}",
                )
            )
        purposes = signer.purposes
        kind = decoded.certificate_type
        if purposes is not None and kind not in purposes:
            reasons.append(
                RefusalReason(Refusal.SIGNER_NOT_VALID_FOR_TYPE, f"signer may sign {sorted(purposes)}, not {kind}")
            )
        if revocation is not None and revocation.is_signer_revoked(signer.certificate):
            reasons.append(RefusalReason(Refusal.SIGNER_REVOKED, "the signer has been withdrawn"))
    if revocation is not None:
        hit = revocation.is_certificate_revoked(
            uci=decoded.uvci,
            country=decoded.issuer_country,
            signature=decoded.signature,
            algorithm=decoded.algorithm,
        )
        if hit is not None:
            reasons.append(RefusalReason(Refusal.REVOKED, f"certificate revoked ({hit.value} hash)"))
    return DccVerification(decoded, signer, reasons)


# --------------------------------------------------------------------------
# QR rendering
# --------------------------------------------------------------------------


def _hc1_qr(text: str, error: str):
    import segno

    return segno.make(text, error=error, micro=False, boost_error=False)


def render_hc1_png(text: str, *, error: str = "Q", scale: int = 4) -> bytes:
    """PNG of the `HC1:` QR code with a quiet zone of 4 modules. The whole
    string is in the QR alphanumeric set (base45 was chosen for it, HCERT
    §3.5), which zxing-cpp encodes in alphanumeric mode at the requested ECC
    level; HCERT §4 (2D barcode) recommends level Q. zxing-cpp's encoder
    (C++) picks the mask by the standard's penalty rules as segno's does, in
    about a tenth of segno's time (segno took 28 ms of CPU to encode a
    564-character text, most of it scoring the eight masks in Python): a
    citizen's first download of the QR,
    and of the PDF that embeds it, costs that once."""
    import zxingcpp
    from PIL import Image

    symbol = zxingcpp.create_barcode(text, zxingcpp.BarcodeFormat.QRCode, ec_level=error)
    pixels = symbol.to_image(scale=scale, add_quiet_zones=True)
    height, width = pixels.shape[:2]
    buf = io.BytesIO()
    Image.frombuffer("L", (width, height), bytes(pixels), "raw", "L", 0, 1).convert("1").save(buf, format="PNG")
    return buf.getvalue()


def render_hc1_svg(text: str, *, error: str = "Q", scale: int = 4, border: int = 4) -> str:
    """SVG of the `HC1:` QR code, drawn with segno: zxing-cpp's SVG has no
    quiet zone. Rarely asked for, and cached like every drawn download."""
    buf = io.BytesIO()
    _hc1_qr(text, error).save(buf, kind="svg", scale=scale, border=border, xmldecl=False)
    return buf.getvalue().decode("utf-8")


def hcert_entries(decoded: DecodedDcc) -> Sequence[dict[str, Any]]:
    """The vaccination, test or recovery entries of a decoded DCC."""
    for key in ("v", "t", "r"):
        entries = decoded.hcert.get(key)
        if entries:
            return entries
    return []
