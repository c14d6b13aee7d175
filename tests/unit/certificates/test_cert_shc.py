"""SMART Health Cards: issue, QR, file, JWKS and verification, including the
spec's own example cards (`../shared/data/shc-examples`)."""

from __future__ import annotations

import base64
import datetime as dt
import json
import os
import zlib
from pathlib import Path

import pytest

from vaxhub.certificates import shc
from vaxhub.errors import InputError, MalformedInput

SHARED_DATA = Path(os.environ.get("VAXHUB_SHARED_DATA") or Path(__file__).resolve().parents[3].parent / "shared" / "data")
EXAMPLES = SHARED_DATA / "shc-examples" / "examples"
ISSUER = "https://vaxhub.example/shc"


@pytest.fixture
def card(es256_signer, now) -> str:
    patient = shc.ShcPatient("Đặng", ["Thị", "Ngọc", "Hà"], "1990-05-24")
    doses = [
        shc.ShcImmunization("210", dt.date(2021, 8, 2), "Bệnh viện Bạch Mai", "ABV5300"),
        shc.ShcImmunization("208", dt.date(2021, 11, 3), "Trạm y tế phường Láng Hạ", "FK5618"),
    ]
    return shc.issue_card(patient, doses, es256_signer, issuer=ISSUER, issued_at=now)


def _b64url_json(part: str) -> dict:
    return json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))


def test_card_header_and_payload_follow_the_spec(card, es256_signer):
    header_part, body_part, _ = card.split(".")
    header = _b64url_json(header_part)
    assert header == {"alg": "ES256", "zip": "DEF", "kid": es256_signer.jwk_kid}
    body = zlib.decompress(base64.urlsafe_b64decode(body_part + "=" * (-len(body_part) % 4)), -15)
    payload = json.loads(body)
    assert payload["iss"] == ISSUER and isinstance(payload["nbf"], int)
    assert payload["vc"]["type"] == shc.SHC_TYPES
    subject = payload["vc"]["credentialSubject"]
    assert subject["fhirVersion"] == "4.0.1"
    entries = subject["fhirBundle"]["entry"]
    assert [e["fullUrl"] for e in entries] == ["resource:0", "resource:1", "resource:2"]
    assert entries[0]["resource"]["name"] == [{"family": "Đặng", "given": ["Thị", "Ngọc", "Hà"]}]
    imm = entries[2]["resource"]
    assert imm["patient"] == {"reference": "resource:0"}
    assert imm["vaccineCode"]["coding"] == [{"system": "http://hl7.org/fhir/sid/cvx", "code": "208"}]
    assert imm["performer"] == [{"actor": {"display": "Trạm y tế phường Láng Hạ"}}]
    assert imm["lotNumber"] == "FK5618" and imm["status"] == "completed"


def test_bundle_is_a_valid_fhir_r4_bundle(card):
    from fhir.resources.R4B.bundle import Bundle

    Bundle.model_validate(shc.decode_card(card).bundle)


def test_card_verifies_against_issuer_jwks(card, es256_signer, now):
    jwks = shc.issuer_jwks([es256_signer])
    (key,) = jwks["keys"]
    assert key["kid"] == es256_signer.jwk_kid and key["alg"] == "ES256" and key["use"] == "sig"
    assert "d" not in key
    result = shc.verify_card(card, jwks, now=now, expected_issuer=ISSUER)
    assert result.valid, result.reasons


def test_card_from_another_key_is_refused(card, csca, now):
    from vaxhub.certificates.keys import Signer, create_document_signer

    key, cert = create_document_signer(*csca, now=now)
    other = shc.issuer_jwks([Signer(cert, key)])
    assert "no issuer key" in shc.verify_card(card, other, now=now).reasons[0]
    # the same kid with another key: the thumbprint and the signature both fail
    other["keys"][0]["kid"] = shc.decode_card(card).header["kid"]
    reasons = shc.verify_card(card, other, now=now).reasons
    assert "the key's thumbprint does not match its kid" in reasons and "bad signature" in reasons


def test_tampered_card_is_refused(card, es256_signer, now):
    header, body, signature = card.split(".")
    flipped = body[:10] + ("A" if body[10] != "A" else "B") + body[11:]
    result = shc.verify_card(f"{header}.{flipped}.{signature}", shc.issuer_jwks([es256_signer]), now=now)
    assert not result.valid


def test_a_card_whose_signature_or_algorithm_was_changed_is_refused(card, es256_signer, now):
    jwks = shc.issuer_jwks([es256_signer])
    header, body, signature = card.split(".")
    raw = base64.urlsafe_b64decode(signature + "=" * (-len(signature) % 4))
    other_r = base64.urlsafe_b64encode(bytes([raw[0] ^ 1]) + raw[1:]).rstrip(b"=").decode()
    short = base64.urlsafe_b64encode(raw[:40]).rstrip(b"=").decode()
    for changed in (other_r, short):
        assert shc.verify_card(f"{header}.{body}.{changed}", jwks, now=now).reasons == ["bad signature"]
    # The header re-signed by no one: HS256 claimed, the ES256 signature kept.
    claimed = {**_b64url_json(header), "alg": "HS256"}
    forged = base64.urlsafe_b64encode(json.dumps(claimed).encode()).rstrip(b"=").decode()
    reasons = shc.verify_card(f"{forged}.{body}.{signature}", jwks, now=now).reasons
    assert "algorithm 'HS256' is not ES256" in reasons and "signature not verified: only ES256 is accepted" in reasons


def test_a_trusted_key_that_is_no_key_refuses_the_card_with_a_reason(card, es256_signer, now):
    (key,) = shc.issuer_jwks([es256_signer])["keys"]
    for broken in ({**key, "x": "AAAA"}, {**key, "x": "a"}, {**key, "x": ["not", "text"]}, {**key, "kty": "RSA"}):
        reasons = shc.verify_card(card, {"keys": [broken]}, now=now).reasons
        assert any(r.startswith(("issuer key unreadable", "issuer key is not")) for r in reasons), (broken, reasons)


def test_card_not_yet_valid_or_wrong_issuer_is_refused(card, es256_signer, now):
    jwks = shc.issuer_jwks([es256_signer])
    assert not shc.verify_card(card, jwks, now=now - dt.timedelta(days=1)).valid
    assert not shc.verify_card(card, jwks, now=now, expected_issuer="https://other.example").valid


def test_numeric_qr_round_trip_and_single_qr(card):
    qr_text = shc.encode_numeric(card)
    assert qr_text.startswith("shc:/") and qr_text[5:].isdigit()
    assert shc.decode_numeric(qr_text) == card
    assert shc.qr_version(qr_text) <= 22
    assert shc.render_card_png(qr_text).startswith(b"\x89PNG")
    assert "<svg" in shc.render_card_svg(qr_text)


def test_numeric_qr_digits_are_exactly_the_specs():
    # Every character the numeric mode carries, "-" (45) to "z" (122), is its ord − 45 in two digits.
    every = "".join(chr(c) for c in range(45, 123))
    assert shc.encode_numeric(every) == "shc:/" + "".join(f"{c - 45:02d}" for c in range(45, 123))
    assert shc.decode_numeric(shc.encode_numeric(every)) == every
    with pytest.raises(InputError, match="cannot be carried"):
        shc.encode_numeric("abc,")  # "," is 44
    with pytest.raises(MalformedInput, match="outside 00-77"):
        shc.decode_numeric("shc:/565678")
    with pytest.raises(MalformedInput, match="odd number"):
        shc.decode_numeric("shc:/565")
    with pytest.raises(MalformedInput):
        shc.decode_numeric("shc:/56٣٤")  # Arabic-Indic digits match the pattern's \d but are not the spec's


def test_qrcode_two_segment_symbol_is_smaller_than_segno(card):
    import segno

    qr_text = shc.encode_numeric(card)
    assert shc.qr_version(qr_text) < segno.make(qr_text, error="L", micro=False).version


def test_rendered_qr_reads_back(card):
    zxingcpp = pytest.importorskip("zxingcpp", reason="zxing-cpp not installed: cannot read the QR back")
    import io

    from PIL import Image

    qr_text = shc.encode_numeric(card)
    (result,) = zxingcpp.read_barcodes(Image.open(io.BytesIO(shc.render_card_png(qr_text))))
    assert result.text == qr_text


def test_chunked_codes_are_read_in_any_order(card):
    digits = shc.encode_numeric(card)[5:]
    third = len(digits) // 3 // 2 * 2
    parts = [digits[:third], digits[third : 2 * third], digits[2 * third :]]
    chunks = [f"shc:/{i}/3/{p}" for i, p in enumerate(parts, start=1)]
    assert shc.decode_numeric([chunks[2], chunks[0], chunks[1]]) == card
    with pytest.raises(MalformedInput):
        shc.decode_numeric(chunks[:2])
    with pytest.raises(InputError):
        shc.render_card_png(chunks[0])


@pytest.mark.parametrize("bad", ["shc:/123", "shc:/99", "HC1:ABC", "shc:/1/2/0000"])
def test_bad_numeric_payloads_are_refused(bad):
    with pytest.raises(MalformedInput):
        shc.decode_numeric(bad)


def test_card_file_round_trip(card):
    text = shc.card_file([card])
    assert json.loads(text) == {"verifiableCredential": [card]}
    assert shc.read_card_file(text) == [card]


# -- the specification's example cards -------------------------------------------


def _examples() -> list[Path]:
    return sorted(EXAMPLES.glob("example-*-d-jws.txt")) if EXAMPLES.is_dir() else []


requires_examples = pytest.mark.skipif(
    not (EXAMPLES / "issuer" / ".well-known" / "jwks.json").is_file(),
    reason=f"SHC examples or their jwks.json absent under {EXAMPLES}",
)


@requires_examples
@pytest.mark.parametrize("jws_file", _examples(), ids=lambda p: p.name[:10])
def test_spec_example_verifies_against_its_jwks(jws_file):
    jwks = json.loads((EXAMPLES / "issuer" / ".well-known" / "jwks.json").read_text())
    jws = jws_file.read_text().strip()
    issued = dt.datetime.fromtimestamp(shc.decode_card(jws).payload["nbf"], dt.timezone.utc)
    result = shc.verify_card(
        jws, jwks, now=issued + dt.timedelta(days=1), expected_issuer="https://spec.smarthealth.cards/examples/issuer"
    )
    assert result.valid, result.reasons
    stem = jws_file.name.replace("-d-jws.txt", "")
    expected_payload = json.loads((EXAMPLES / f"{stem}-c-jws-payload-minified.json").read_text())
    assert result.card.payload == expected_payload
    files = shc.read_card_file((EXAMPLES / f"{stem}-e-file.smart-health-card").read_text())
    assert files == [jws]
    qr_texts = [p.read_text().strip() for p in sorted(EXAMPLES.glob(f"{stem}-f-qr-code-numeric-value-*.txt"))]
    assert shc.decode_numeric(qr_texts) == jws


@requires_examples
def test_spec_example_with_exp_is_refused_after_it():
    jwks = json.loads((EXAMPLES / "issuer" / ".well-known" / "jwks.json").read_text())
    for jws_file in _examples():
        jws = jws_file.read_text().strip()
        exp = shc.decode_card(jws).payload.get("exp")
        if exp:
            later = dt.datetime.fromtimestamp(exp + 1, dt.timezone.utc)
            assert shc.verify_card(jws, jwks, now=later).reasons == ["card has expired"]
