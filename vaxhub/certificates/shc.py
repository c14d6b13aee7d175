"""SMART Health Cards (HL7 SMART Health Cards and Links IG 1.0.0, FHIR 4.0.1).

A card is a JWS (compact, ES256) whose header carries `zip: "DEF"` and
`kid` = the RFC 7638 thumbprint of the issuer key; its payload, raw-DEFLATEd,
is `{"iss", "nbf", "vc": {"type", "credentialSubject": {"fhirVersion",
"fhirBundle"}}}`. The issuer publishes `iss + "/.well-known/jwks.json"`.

In a QR code the JWS becomes `shc:/` followed by two decimal digits per
character (code point − 45), encoded as one byte-mode segment and one numeric
segment. Chunked `shc:/i/n/…` codes are deprecated (SHC 1.3.0) and only read.
"""

from __future__ import annotations

import datetime as dt
import io
import json
import re
import zlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import ec
from jwt.algorithms import ECAlgorithm

from vaxhub.certificates.keys import Signer, public_jwk, shc_kid
from vaxhub.errors import InputError, MalformedInput

SHC_TYPES = [
    "https://smarthealth.cards#health-card",
    "https://smarthealth.cards#immunization",
    "https://smarthealth.cards#covid19",
]
CVX_SYSTEM = "http://hl7.org/fhir/sid/cvx"
FHIR_VERSION = "4.0.1"
QR_PREFIX = "shc:/"
FILE_MEDIA_TYPE = "application/smart-health-card"
_CHUNK = re.compile(r"^shc:/(\d+)/(\d+)/(\d+)$")
_SINGLE = re.compile(r"^shc:/(\d+)$")


@dataclass(frozen=True)
class ShcPatient:
    family: str
    given: Sequence[str]
    birth_date: str  # FHIR date: YYYY, YYYY-MM or YYYY-MM-DD


@dataclass(frozen=True)
class ShcImmunization:
    cvx: str  # e.g. "207" Moderna, "208" Pfizer, "210" AstraZeneca, "212" Janssen
    date: dt.date | str
    performer: str  # actor display, e.g. the vaccination site
    lot_number: str | None = None
    status: str = "completed"


def build_bundle(patient: ShcPatient, immunizations: Iterable[ShcImmunization]) -> dict[str, Any]:
    """Minimal FHIR Bundle for a card (SHC "FHIR Bundle" rules): type
    `collection`, `resource:N` fullUrls, no ids, text, meta or coding displays."""
    entries: list[dict[str, Any]] = [
        {
            "fullUrl": "resource:0",
            "resource": {
                "resourceType": "Patient",
                "name": [{"family": patient.family, "given": list(patient.given)}],
                "birthDate": patient.birth_date,
            },
        }
    ]
    for i, imm in enumerate(immunizations, start=1):
        resource: dict[str, Any] = {
            "resourceType": "Immunization",
            "status": imm.status,
            "vaccineCode": {"coding": [{"system": CVX_SYSTEM, "code": imm.cvx}]},
            "patient": {"reference": "resource:0"},
            "occurrenceDateTime": imm.date.isoformat() if isinstance(imm.date, dt.date) else imm.date,
            "performer": [{"actor": {"display": imm.performer}}],
        }
        if imm.lot_number:
            resource["lotNumber"] = imm.lot_number
        entries.append({"fullUrl": f"resource:{i}", "resource": resource})
    return {"resourceType": "Bundle", "type": "collection", "entry": entries}


def build_credential(bundle: dict[str, Any], *, issuer: str, issued_at: dt.datetime) -> dict[str, Any]:
    """The JWS payload: `iss` (no trailing slash), `nbf` (seconds), `vc`."""
    if issuer.endswith("/"):
        raise InputError("the SHC issuer URL must not end with '/'")
    return {
        "iss": issuer,
        "nbf": int(issued_at.timestamp()),
        "vc": {
            "type": list(SHC_TYPES),
            "credentialSubject": {"fhirVersion": FHIR_VERSION, "fhirBundle": bundle},
        },
    }


def _deflate(data: bytes) -> bytes:
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    return compressor.compress(data) + compressor.flush()


def _inflate(data: bytes) -> bytes:
    return zlib.decompress(data, -15)


def sign_card(payload: dict[str, Any], signer: Signer) -> str:
    """Compact JWS, ES256, header `{"zip": "DEF", "alg": "ES256", "kid": …}`,
    payload minified JSON compressed with raw DEFLATE (wbits −15)."""
    if not isinstance(signer.private_key, ec.EllipticCurvePrivateKey):
        raise InputError("SMART Health Cards are signed with ES256 (EC P-256) keys")
    body = _deflate(json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode("utf-8"))
    return jwt.api_jws.PyJWS().encode(
        body,
        signer.private_key,
        algorithm="ES256",
        headers={"typ": None, "zip": "DEF", "kid": signer.jwk_kid},
    )


def issue_card(
    patient: ShcPatient,
    immunizations: Iterable[ShcImmunization],
    signer: Signer,
    *,
    issuer: str,
    issued_at: dt.datetime,
) -> str:
    """Build and sign a card in one call; returns the JWS."""
    return sign_card(build_credential(build_bundle(patient, immunizations), issuer=issuer, issued_at=issued_at), signer)


def issuer_jwks(signers: Iterable[Signer]) -> dict[str, Any]:
    """The `/.well-known/jwks.json` document: public EC keys with `kid`,
    `use: sig`, `alg: ES256` (SHC "Determining keys associated with an issuer")."""
    keys = []
    for s in signers:
        public = s.private_key.public_key()
        if not isinstance(public, ec.EllipticCurvePublicKey):
            continue
        keys.append({**public_jwk(public), "kid": shc_kid(public), "use": "sig", "alg": "ES256"})
    return {"keys": keys}


def card_file(jws_list: Sequence[str]) -> str:
    """A `.smart-health-card` file body: `{"verifiableCredential": [jws…]}`."""
    return json.dumps({"verifiableCredential": list(jws_list)})


def read_card_file(text: str) -> list[str]:
    data = json.loads(text)
    creds = data.get("verifiableCredential") if isinstance(data, dict) else None
    if not isinstance(creds, list) or not all(isinstance(c, str) for c in creds):
        raise MalformedInput("not a .smart-health-card file")
    return creds


# --------------------------------------------------------------------------
# numeric QR payload
# --------------------------------------------------------------------------


# Each JWS character as its two digits and back, looked up in C (`map`,
# `findall`): a card's thousand pairs took a few tenths of a millisecond in a
# Python loop, on every download of its text and every verification.
_DIGITS_OF = {chr(v + 45): f"{v:02d}" for v in range(78)}
_CHARACTER_OF = {digits: ch for ch, digits in _DIGITS_OF.items()}
_PAIR = re.compile(r"..", re.DOTALL)  # any two characters: a pair that is not two digits is refused below


def encode_numeric(jws: str) -> str:
    """`shc:/` + two digits per character (ord − 45) (SHC "Encoding QRs")."""
    try:
        return QR_PREFIX + "".join(map(_DIGITS_OF.__getitem__, jws))
    except KeyError as exc:
        raise InputError(f"character {exc.args[0]!r} cannot be carried in a SHC QR") from None


def _digits_to_text(digits: str) -> str:
    if len(digits) % 2:
        raise MalformedInput("odd number of digits in a shc:/ payload")
    try:
        return "".join(map(_CHARACTER_OF.__getitem__, _PAIR.findall(digits)))
    except KeyError as exc:
        raise MalformedInput(f"digit pair {exc.args[0]} is outside 00-77") from None


def decode_numeric(qr_texts: str | Sequence[str]) -> str:
    """Back to the JWS from one `shc:/…` text, or from every chunk
    `shc:/i/n/…` of a deprecated multi-QR card, in any order."""
    texts = [qr_texts] if isinstance(qr_texts, str) else list(qr_texts)
    texts = [t.strip() for t in texts]
    if len(texts) == 1 and (m := _SINGLE.match(texts[0])):
        return _digits_to_text(m.group(1))
    chunks: dict[int, str] = {}
    total = None
    for t in texts:
        m = _CHUNK.match(t)
        if not m:
            raise MalformedInput("not a shc:/ QR payload")
        index, count = int(m.group(1)), int(m.group(2))
        if total is not None and count != total:
            raise MalformedInput("chunks disagree on their number")
        total = count
        chunks[index] = m.group(3)
    if total is None or sorted(chunks) != list(range(1, total + 1)):
        raise MalformedInput(f"missing chunks: have {sorted(chunks)}, need 1..{total}")
    return _digits_to_text("".join(chunks[i] for i in range(1, total + 1)))


def _shc_qr(qr_text: str):
    import qrcode
    from qrcode.util import MODE_8BIT_BYTE, MODE_NUMBER, QRData

    if not _SINGLE.match(qr_text):
        raise InputError("render one card as one shc:/ QR (chunking is deprecated)")
    qr = qrcode.QRCode(error_correction=qrcode.constants.ERROR_CORRECT_L, border=4, box_size=4)
    qr.add_data(QRData(QR_PREFIX.encode("ascii"), mode=MODE_8BIT_BYTE, check_data=False))
    qr.add_data(QRData(qr_text[len(QR_PREFIX):], mode=MODE_NUMBER))
    qr.make(fit=True)
    if qr.version > 22:
        raise InputError(f"card too large for one QR (version {qr.version} > 22)")
    return qr


def qr_version(qr_text: str) -> int:
    """The QR version the two-segment encoding needs."""
    return _shc_qr(qr_text).version


def render_card_png(qr_text: str) -> bytes:
    """PNG QR, rendered with qrcode: one byte segment `shc:/` and one numeric
    segment, the layout the SHC spec prescribes; segno would pick a larger
    symbol for the same text. ECC level L; at most version 22."""
    buf = io.BytesIO()
    _shc_qr(qr_text).make_image().save(buf, format="PNG")
    return buf.getvalue()


def render_card_svg(qr_text: str) -> str:
    """SVG of the same two-segment QR (see :func:`render_card_png`)."""
    from qrcode.image.svg import SvgPathImage

    buf = io.BytesIO()
    _shc_qr(qr_text).make_image(image_factory=SvgPathImage).save(buf)
    return buf.getvalue().decode("utf-8")


# --------------------------------------------------------------------------
# decoding and verification
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class DecodedCard:
    header: dict[str, Any]
    payload: dict[str, Any]
    # What the signature covers and the signature itself, as the JWS carries them.
    signing_input: bytes = field(default=b"", repr=False)
    signature: bytes = field(default=b"", repr=False)

    @property
    def bundle(self) -> dict[str, Any]:
        return self.payload["vc"]["credentialSubject"]["fhirBundle"]


@dataclass(frozen=True)
class CardVerification:
    card: DecodedCard | None
    reasons: list[str] = field(default_factory=list)

    @property
    def valid(self) -> bool:
        return not self.reasons


def _payload_from_bytes(header: dict[str, Any], body: bytes) -> dict[str, Any]:
    try:
        if header.get("zip") == "DEF":
            body = _inflate(body)
        return json.loads(body)
    except (zlib.error, ValueError) as exc:
        raise MalformedInput(f"card payload unreadable: {exc}") from exc


@lru_cache(maxsize=1024)
def _public_key(members: tuple[tuple[str, Any], ...]) -> tuple[Any, str | None]:
    """An issuer's JWK as a key, and its thumbprint if it is a public EC key:
    kept, as the same few keys verify every card."""
    public = ECAlgorithm.from_jwk(json.dumps(dict(members)))
    return public, shc_kid(public) if isinstance(public, ec.EllipticCurvePublicKey) else None


# ES256 as PyJWT checks it (the JWS's raw r||s signature).
_ES256 = ECAlgorithm(ECAlgorithm.SHA256)


def decode_card(jws: str) -> DecodedCard:
    """Header and payload of a card JWS, signature not checked. PyJWT reads
    the JWS once (its check of each segment's characters runs in Python, a
    large part of a verification), and the signature is then checked on
    what it read."""
    try:
        parts = jwt.api_jws.PyJWS().decode_complete(jws, options={"verify_signature": False})
    except jwt.exceptions.PyJWTError as exc:
        raise MalformedInput(f"not a compact JWS: {exc}") from exc
    header = parts["header"]
    return DecodedCard(header, _payload_from_bytes(header, parts["payload"]), jws.rsplit(".", 1)[0].encode("ascii"), parts["signature"])


def verify_card(
    jws: str,
    jwks: dict[str, Any],
    *,
    now: dt.datetime | None = None,
    expected_issuer: str | None = None,
    decoded: DecodedCard | None = None,
) -> CardVerification:
    """Verify a card against the issuer's JWKS: the key with the header's
    `kid`, whose own thumbprint must equal that kid, an ES256 signature, a
    payload that inflates to a credential, `nbf` not in the future, `exp` (if
    any) not past, and `iss` as expected. `decoded` is `decode_card(jws)`
    when the caller has it already."""
    try:
        card = decoded or decode_card(jws)
    except MalformedInput as exc:
        return CardVerification(None, [exc.message])
    reasons: list[str] = []
    header = card.header
    if header.get("alg") != "ES256":
        reasons.append(f"algorithm {header.get('alg')!r} is not ES256")
    if header.get("zip") != "DEF":
        reasons.append("header zip is not DEF")
    kid = header.get("kid")
    key_entry = next((k for k in jwks.get("keys", []) if k.get("kid") == kid), None)
    if key_entry is None:
        reasons.append(f"no issuer key with kid {kid!r}")
    else:
        try:
            public, thumbprint = _public_key(tuple((k, key_entry[k]) for k in ("kty", "crv", "x", "y") if k in key_entry))
        except (TypeError, ValueError, jwt.exceptions.PyJWTError) as exc:  # a trusted list's key that is no key at all
            public, thumbprint = None, None
            reasons.append(f"issuer key unreadable: {exc}")
        if public is not None and not isinstance(public, ec.EllipticCurvePublicKey):
            reasons.append("issuer key is not a public EC key")
        elif public is not None:
            if thumbprint != kid:
                reasons.append("the key's thumbprint does not match its kid")
            if header.get("alg") != "ES256":
                reasons.append("signature not verified: only ES256 is accepted")
            elif not _ES256.verify(card.signing_input, public, card.signature):
                reasons.append("bad signature")
    payload = card.payload
    now = now or dt.datetime.now(dt.timezone.utc)
    nbf = payload.get("nbf")
    if not isinstance(nbf, (int, float)):
        reasons.append("no nbf claim")
    elif nbf > now.timestamp() + 300:
        reasons.append("card is not valid yet (nbf in the future)")
    exp = payload.get("exp")
    if isinstance(exp, (int, float)) and exp < now.timestamp():
        reasons.append("card has expired")
    if expected_issuer is not None and payload.get("iss") != expected_issuer:
        reasons.append(f"issuer {payload.get('iss')!r} is not {expected_issuer!r}")
    vc = payload.get("vc")
    if not isinstance(vc, dict) or "https://smarthealth.cards#health-card" not in vc.get("type", []):
        reasons.append("payload is not a SMART Health Card credential")
    elif vc.get("credentialSubject", {}).get("fhirBundle", {}).get("resourceType") != "Bundle":
        reasons.append("credential has no FHIR Bundle")
    return CardVerification(card, reasons)
