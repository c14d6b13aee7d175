"""Ways to break a signed certificate, each with the refusal code it must earn.

Shared by the library tests (`vaxhub.certificates.verify`) and the CLI and
API tests, so every path is held to the same list.
"""

from __future__ import annotations

import base64
import json
import zlib
from collections.abc import Callable

import base45
import cbor2

from vaxhub.certificates import shc
from vaxhub.certificates.dcc import encode_hc1_from_cose, sign_cose
from vaxhub.certificates.keys import Signer


def _cose(text: str) -> list:
    message = cbor2.loads(zlib.decompress(base45.b45decode(text[4:])))
    while isinstance(message, cbor2.CBORTag):
        message = message.value
    return list(message)


def _hc1(parts: list) -> str:
    return encode_hc1_from_cose(cbor2.dumps(cbor2.CBORTag(18, parts)))


def truncated(text: str) -> str:
    return text[:-40]


def wrong_prefix(text: str) -> str:
    return "HC2:" + text[4:]


def bad_base45(text: str) -> str:
    return text[:20] + "a" + text[21:]  # lower case is outside the base45 alphabet


def bad_zlib(text: str) -> str:
    raw = bytearray(base45.b45decode(text[4:]))
    raw[-1] ^= 0xFF  # the Adler-32 check no longer matches
    return "HC1:" + base45.b45encode(bytes(raw)).decode("ascii")


def bad_cbor(_text: str) -> str:
    return "HC1:" + base45.b45encode(zlib.compress(b"\x84\x43\xa1\x01\x26\xff\xff")).decode("ascii")


def wrong_algorithm(text: str) -> str:
    protected, unprotected, payload, signature = _cose(text)
    header = cbor2.loads(protected)
    header[1] = -35  # ES384, not ES256 or PS256
    return _hc1([cbor2.dumps(header), unprotected, payload, signature])


def altered_payload(text: str) -> str:
    protected, unprotected, payload, signature = _cose(text)
    claims = cbor2.loads(payload)
    claims[-260][1]["dob"] = "1970-01-01"
    return _hc1([protected, unprotected, cbor2.dumps(claims), signature])


def signed_by(other: Signer) -> Callable[[str], str]:
    def resign(text: str) -> str:
        _protected, _unprotected, payload, _signature = _cose(text)
        return encode_hc1_from_cose(sign_cose(payload, other))

    return resign


#: Tamperings of an `HC1:` text, with the error code each must be refused with.
DCC_TAMPERINGS: list[tuple[str, Callable[[str], str], str]] = [
    ("truncated", truncated, "malformed"),
    ("wrong prefix", wrong_prefix, "unknown-format"),
    ("bad base45", bad_base45, "malformed"),
    ("bad zlib", bad_zlib, "malformed"),
    ("bad CBOR", bad_cbor, "malformed"),
    ("wrong algorithm", wrong_algorithm, "unsupported-algorithm"),
    ("altered payload", altered_payload, "bad-signature"),
]


# -- SMART Health Cards ----------------------------------------------------------


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def card_truncated(qr: str) -> str:
    return qr[: len(qr) // 2 // 2 * 2]  # cut inside the payload: no longer three JWS parts


def card_odd_digits(qr: str) -> str:
    return qr + "1"


def card_digit_out_of_range(qr: str) -> str:
    return "shc:/99" + qr[7:]


def card_altered_payload(qr: str) -> str:
    header, body, signature = shc.decode_numeric(qr).split(".")
    payload = json.loads(zlib.decompress(_unb64url(body), -15))
    payload["vc"]["credentialSubject"]["fhirBundle"]["entry"][0]["resource"]["birthDate"] = "1970-01-01"
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    deflated = compressor.compress(json.dumps(payload, separators=(",", ":")).encode()) + compressor.flush()
    return shc.encode_numeric(f"{header}.{_b64url(deflated)}.{signature}")


def card_bad_deflate(qr: str) -> str:
    header, _body, signature = shc.decode_numeric(qr).split(".")
    return shc.encode_numeric(f"{header}.{_b64url(b'not deflate data at all')}.{signature}")


def card_wrong_algorithm(qr: str) -> str:
    header, body, signature = shc.decode_numeric(qr).split(".")
    changed = {**json.loads(_unb64url(header)), "alg": "HS256"}
    return shc.encode_numeric(f"{_b64url(json.dumps(changed).encode())}.{body}.{signature}")


#: Tamperings of a `shc:/` text, with the error code each must be refused with.
CARD_TAMPERINGS: list[tuple[str, Callable[[str], str], str]] = [
    ("truncated", card_truncated, "malformed"),
    ("odd digit count", card_odd_digits, "malformed"),
    ("digit pair out of range", card_digit_out_of_range, "malformed"),
    ("altered payload", card_altered_payload, "bad-signature"),
    ("bad deflate", card_bad_deflate, "malformed"),
    ("wrong algorithm", card_wrong_algorithm, "unsupported-algorithm"),
]
