"""Fuzzing the verifier: whatever a QR code holds, the answer is a report.

Each strategy aims deeper into the decoders: arbitrary text; `HC1:` with
base45-alphabet noise; base45 of arbitrary bytes; zlib of arbitrary bytes;
arbitrary CBOR, also inside a COSE_Sign1 shape; `shc:/` digits; JWS-shaped text.
"""

from __future__ import annotations

import base64
import json
import zlib

import base45
import cbor2
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vaxhub.certificates import shc
from vaxhub.certificates.verify import Trust, VerificationReport, verify_text

B45 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ $%*+-./:"
TRUST = Trust()
FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

cbor_values = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-(2**70), max_value=2**70) | st.floats() | st.text(max_size=20) | st.binary(max_size=40),
    lambda children: st.lists(children, max_size=5)
    | st.dictionaries(st.integers(-300, 300) | st.text(max_size=5), children, max_size=5)
    | st.builds(cbor2.CBORTag, st.sampled_from([18, 61, 1, 0, 24, 55799]), children),
    max_leaves=25,
)


def _check(text: str) -> None:
    report = verify_text(text, TRUST)
    assert isinstance(report, VerificationReport)
    assert not report.valid and report.errors
    json.dumps(report.to_json())


def _hc1(raw: bytes) -> str:
    return "HC1:" + base45.b45encode(raw).decode("ascii")


@FUZZ
@given(st.text(max_size=400))
def test_any_text(text):
    _check(text)


@FUZZ
@given(st.text(alphabet=B45, max_size=600))
def test_hc1_prefix_and_base45_alphabet_noise(body):
    _check("HC1:" + body)


@FUZZ
@given(st.binary(max_size=600))
def test_base45_of_any_bytes(raw):
    _check(_hc1(raw))


@FUZZ
@given(st.binary(max_size=600))
def test_zlib_of_any_bytes(raw):
    _check(_hc1(zlib.compress(raw)))


@FUZZ
@given(cbor_values)
def test_any_cbor(value):
    _check(_hc1(zlib.compress(cbor2.dumps(value))))


@FUZZ
@given(cbor_values, cbor_values, cbor_values, st.binary(max_size=80), st.sampled_from([True, False]))
def test_cbor_in_cose_sign1_shape(protected, unprotected, claims, signature, tagged):
    message = [cbor2.dumps(protected), unprotected if isinstance(unprotected, dict) else {}, cbor2.dumps({-260: {1: claims}, 4: claims, 6: claims}), signature]
    _check(_hc1(zlib.compress(cbor2.dumps(cbor2.CBORTag(18, message) if tagged else message))))


@FUZZ
@given(st.text(alphabet="0123456789", max_size=800))
def test_shc_digits(digits):
    _check("shc:/" + digits)


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


@FUZZ
@given(st.dictionaries(st.text(max_size=5), cbor_values.filter(lambda v: not isinstance(v, (bytes, cbor2.CBORTag))), max_size=4),
       st.binary(max_size=300), st.binary(max_size=70), st.booleans())
def test_jws_shaped(header, body, signature, deflate):
    try:
        header_json = json.dumps({"alg": "ES256", "zip": "DEF", "kid": "k", **header}).encode()
    except (TypeError, ValueError):
        return
    if deflate:
        compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
        body = compressor.compress(body) + compressor.flush()
    jws = f"{_b64url(header_json)}.{_b64url(body)}.{_b64url(signature)}"
    _check(jws)
    _check(shc.encode_numeric(jws))


@FUZZ
@given(cbor_values.filter(lambda v: not isinstance(v, (bytes, cbor2.CBORTag))))
def test_jws_with_any_json_payload(payload):
    try:
        body = json.dumps(payload, default=lambda o: None).encode()
    except (TypeError, ValueError):
        return
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    deflated = compressor.compress(body) + compressor.flush()
    header = _b64url(json.dumps({"alg": "ES256", "zip": "DEF", "kid": "k"}).encode())
    _check(f"{header}.{_b64url(deflated)}.{_b64url(b'x' * 64)}")
