"""Hub-issued certificates read by a decoder written here from the specifications,
sharing no code with the hub's decode path: what another country's verifier does.

- EU DCC, HCERT 1.0.5: strip `HC1:` (§3.6); base45 (RFC 9285 §4.2, decoded by
  hand below); zlib (§3.4); CBOR COSE_Sign1, tag 18 (RFC 8152 §4.2); ES256
  signature `r || s` over the Sig_structure `["Signature1", protected, h'', payload]`
  (RFC 8152 §4.4, §8.1), checked with the DSC found by `kid` in the trust list;
  CWT claims 1, 4, 6, -260 (§3.3.1).
- SMART Health Card: `shc:/` pairs of digits + 45 (SHC "Encoding QRs"); compact
  JWS split on dots (RFC 7515 §7.1); base64url without padding; payload raw
  DEFLATE (RFC 1951, `zip: DEF`); ES256 `r || s` (RFC 7518 §3.4) over
  `header.payload`, with the key from iss + /.well-known/jwks.json.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import zlib

import cbor2
import pytest
import zxingcpp
from cryptography.exceptions import InvalidSignature
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from cryptography.hazmat.primitives.serialization import Encoding
from PIL import Image

ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ $%*+-./:"


def base45_decode(text: str) -> bytes:
    """RFC 9285 §4.2: three characters c d e make n = c + d·45 + e·45² (two
    bytes, big-endian); a final pair c d makes one byte."""
    values = [ALPHABET.index(ch) for ch in text]
    out = bytearray()
    for i in range(0, len(values) - len(values) % 3, 3):
        c, d, e = values[i : i + 3]
        n = c + d * 45 + e * 45 * 45
        assert n <= 0xFFFF
        out += n.to_bytes(2, "big")
    if len(values) % 3 == 2:
        c, d = values[-2:]
        out.append(c + d * 45)
    else:
        assert len(values) % 3 == 0
    return bytes(out)


def es256_verify(public_key: ec.EllipticCurvePublicKey, signature: bytes, data: bytes) -> None:
    """Raises unless `signature` is a valid raw ES256 `r || s` over `data`."""
    assert len(signature) == 64
    der = encode_dss_signature(int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:], "big"))
    public_key.verify(der, data, ec.ECDSA(hashes.SHA256()))


def read_dcc(hc1: str, trust_list: dict) -> dict:
    assert hc1.startswith("HC1:")
    cose = zlib.decompress(base45_decode(hc1[4:]))
    message = cbor2.loads(cose)
    assert isinstance(message, cbor2.CBORTag) and message.tag == 18
    protected, unprotected, payload, signature = message.value
    header = cbor2.loads(protected)
    assert header[1] == -7  # ES256
    kid = header.get(4, unprotected.get(4))
    candidates = [
        x509.load_der_x509_certificate(base64.b64decode(entry["rawData"]))
        for entry in trust_list["certificates"]
        if entry["certificateType"] == "DSC" and base64.b64decode(entry["kid"]) == kid
    ]
    assert len(candidates) == 1
    certificate = candidates[0]
    assert hashlib.sha256(certificate.public_bytes(Encoding.DER)).digest()[:8] == kid
    es256_verify(certificate.public_key(), signature, cbor2.dumps(["Signature1", protected, b"", payload]))
    return cbor2.loads(payload)


def _unb64url(part: str) -> bytes:
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


def read_card(qr: str, jwks: dict) -> tuple[dict, dict]:
    assert qr.startswith("shc:/")
    digits = qr[5:]
    jws = "".join(chr(int(digits[i : i + 2]) + 45) for i in range(0, len(digits), 2))
    header_part, payload_part, signature_part = jws.split(".")
    header = json.loads(_unb64url(header_part))
    assert header["alg"] == "ES256" and header["zip"] == "DEF"
    payload = json.loads(zlib.decompress(_unb64url(payload_part), -15))
    (jwk,) = [k for k in jwks["keys"] if k["kid"] == header["kid"]]
    public = ec.EllipticCurvePublicNumbers(
        int.from_bytes(_unb64url(jwk["x"]), "big"), int.from_bytes(_unb64url(jwk["y"]), "big"), ec.SECP256R1()
    ).public_key()
    es256_verify(public, _unb64url(signature_part), f"{header_part}.{payload_part}".encode("ascii"))
    return header, payload


def test_hub_dcc_read_by_an_independent_decoder(certs, an):
    uvci = certs.issue(an)["uvci"]
    hc1 = certs.download(uvci, "dcc.txt").text
    trust_list = certs.raw.get("/certificates/trust-list").json()
    claims = read_dcc(hc1, trust_list)
    assert claims[1] == "VN" and claims[4] > claims[6]
    hcert = claims[-260][1]
    assert hcert["nam"]["fn"] == "Nguyễn" and hcert["nam"]["gnt"] == "VAN<AN" and hcert["dob"] == "1990-03-04"
    assert hcert["v"][0]["ci"] == uvci and hcert["v"][0]["tg"] == "840539006"
    # the QR image holds exactly the same text
    png = certs.download(uvci, "dcc.png").content
    assert [r.text for r in zxingcpp.read_barcodes(Image.open(io.BytesIO(png)))] == [hc1]


def test_hub_card_read_by_an_independent_decoder(certs, an):
    uvci = certs.issue(an)["uvci"]
    qr = certs.download(uvci, "shc.txt").text
    header, payload = read_card(qr, certs.raw.get("/shc/.well-known/jwks.json").json())
    assert header["kid"] and payload["iss"] == "http://testserver/shc" and payload["nbf"] < payload["exp"]
    assert payload["vc"]["type"][0] == "https://smarthealth.cards#health-card"
    bundle = payload["vc"]["credentialSubject"]["fhirBundle"]
    assert bundle["entry"][0]["resource"]["birthDate"] == "1990-03-04"
    assert [e["resource"]["occurrenceDateTime"] for e in bundle["entry"][1:]] == ["2021-08-02", "2021-08-23"]
    png = certs.download(uvci, "shc.png").content
    assert [r.text for r in zxingcpp.read_barcodes(Image.open(io.BytesIO(png)))] == [qr]


def test_an_altered_byte_fails_the_independent_check(certs, an):
    uvci = certs.issue(an)["uvci"]
    hc1 = certs.download(uvci, "dcc.txt").text
    trust_list = certs.raw.get("/certificates/trust-list").json()
    message = cbor2.loads(zlib.decompress(base45_decode(hc1[4:])))
    protected, unprotected, payload, signature = message.value
    forged = payload.replace("Nguyễn".encode(), "Nguyễm".encode())
    cose = cbor2.dumps(cbor2.CBORTag(18, [protected, unprotected, forged, signature]))
    text = "HC1:" + "".join(
        ALPHABET[n % 45] + ALPHABET[n // 45 % 45] + (ALPHABET[n // 2025] if width == 2 else "")
        for width, n in _pairs(zlib.compress(cose))
    )
    with pytest.raises(InvalidSignature):
        read_dcc(text, trust_list)


def _pairs(data: bytes):
    for i in range(0, len(data) - 1, 2):
        yield 2, int.from_bytes(data[i : i + 2], "big")
    if len(data) % 2:
        yield 1, data[-1]
