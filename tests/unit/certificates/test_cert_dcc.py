"""EU DCC issuing, decoding and verification (HCERT 1.0.5, schema 1.3.0)."""

from __future__ import annotations

import datetime as dt
import zlib

import base45
import cbor2
import pytest

from vaxhub.certificates.dcc import (
    DccPerson,
    Refusal,
    build_hcert,
    decode_hc1,
    encode_hc1,
    encode_hc1_from_cose,
    is_valid_uvci,
    issue_dcc,
    new_uvci,
    render_hc1_png,
    render_hc1_svg,
    sign_cose,
    transliterate_icao,
    uvci_check_character,
    verify_hc1,
)
from vaxhub.certificates.keys import Signer, create_document_signer
from vaxhub.certificates.revocation import RevocationList, signature_hash, to_b64
from vaxhub.certificates.trust_list import TrustedSigner, TrustList
from vaxhub.errors import InputError, MalformedInput


def _issue(signer, holder, dose, now, **kw):
    return encode_hc1(
        build_hcert(holder, dose),
        signer,
        issuer_country="VN",
        issued_at=now - dt.timedelta(hours=1),
        expires_at=now + dt.timedelta(days=365),
        **kw,
    )


# -- names, dates, UVCI ------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("Đặng Thị Ngọc Hà", "DANG<THI<NGOC<HA"),
        ("Nguyễn Văn Đức", "NGUYEN<VAN<DUC"),
        ("Trương Thị Ánh Nguyệt", "TRUONG<THI<ANH<NGUYET"),
        ("Phạm  Hoà", "PHAM<HOA"),
        ("Phạm Hòa", "PHAM<HOA"),
        ("d'Arsøns - van Halen", "DARSOENS<VAN<HALEN"),
        ("Müller-Lüdenscheidt", "MUELLER<LUEDENSCHEIDT"),
        ("Straße", "STRASSE"),
        ("  Lê  ", "LE"),
    ],
)
def test_icao_transliteration(name, expected):
    assert transliterate_icao(name) == expected


def test_transliteration_is_capped_at_80_characters():
    assert len(transliterate_icao("Nguyễn " * 30)) <= 80


def test_hcert_names_carry_diacritics_and_icao_forms(holder, second_dose):
    hcert = build_hcert(holder, second_dose)
    assert hcert["ver"] == "1.3.0"
    assert hcert["nam"] == {"fn": "Đặng", "fnt": "DANG", "gn": "Thị Ngọc Hà", "gnt": "THI<NGOC<HA"}
    v = hcert["v"][0]
    assert v["tg"] == "840539006" and v["co"] == "VN" and v["dn"] == 2 and v["sd"] == 2
    assert v["dt"] == "2021-11-03"


@pytest.mark.parametrize("dob", ["1990", "1990-05", "1990-05-24", ""])
def test_partial_birth_dates_are_kept_as_given(dob, second_dose, es256_signer, trust, now):
    person = DccPerson("Nguyễn", "Văn An", dob)
    text = _issue(es256_signer, person, second_dose, now)
    assert decode_hc1(text).hcert["dob"] == dob


@pytest.mark.parametrize("dob", ["90", "1990-5", "1990-13", "1990-02-30", "24/05/1990", "1890"])
def test_bad_birth_dates_are_refused(dob, second_dose):
    with pytest.raises(InputError):
        build_hcert(DccPerson("Nguyễn", "An", dob), second_dose)


def test_uvci_format_and_optional_luhn_mod_n_checksum():
    plain = new_uvci("VN")
    assert plain.startswith("URN:UVCI:01:VN:") and len(plain) == len("URN:UVCI:01:VN:") + 32
    assert is_valid_uvci(plain)
    checked = new_uvci("VN", issuing_entity="BYT", checksum=True)
    assert is_valid_uvci(checked)
    body, check = checked.split("#")
    wrong = "A" if check != "A" else "B"
    assert not is_valid_uvci(f"{body}#{wrong}")


def test_uvci_check_character_of_the_schema_faq_example():
    # eu-dcc-schema Luhn-Mod-N sample input; the check character makes the sum 0.
    body = "URN:UVCI:01:NL:187/37512422923"
    assert is_valid_uvci(body + "#" + uvci_check_character(body))
    assert not is_valid_uvci("urn:uvci:01:vn:abc")


# -- round trips ---------------------------------------------------------------


def test_issued_certificate_verifies(holder, second_dose, es256_signer, trust, now):
    text = issue_dcc(holder, second_dose, es256_signer, issued_at=now - dt.timedelta(hours=1))
    assert text.startswith("HC1:")
    result = verify_hc1(text, trust, now)
    assert result.valid, result.reasons
    assert result.signer.kid == es256_signer.kid
    assert result.decoded.hcert == build_hcert(holder, second_dose)
    assert result.decoded.issuer_country == "VN"
    assert result.decoded.tags == (18,)
    assert result.decoded.protected[4] == es256_signer.kid


def test_ps256_certificate_verifies(holder, second_dose, ps256_signer, trust, now):
    text = _issue(ps256_signer, holder, second_dose, now)
    result = verify_hc1(text, trust, now)
    assert result.valid, result.reasons
    assert result.decoded.algorithm == "PS256"


@pytest.mark.parametrize(("tagging", "tags"), [("18", (18,)), ("none", ()), ("61", (61, 18))])
def test_tag_18_untagged_and_cwt_tag_61_all_decode_and_verify(tagging, tags, holder, second_dose, es256_signer, trust, now):
    text = _issue(es256_signer, holder, second_dose, now, tagging=tagging)
    decoded = decode_hc1(text)
    assert decoded.tags == tags
    assert verify_hc1(text, trust, now).valid


def test_kid_in_unprotected_header_is_read(holder, second_dose, es256_signer, trust, now):
    text = _issue(es256_signer, holder, second_dose, now, kid_in="unprotected")
    decoded = decode_hc1(text)
    assert 4 not in decoded.protected and decoded.kid == es256_signer.kid
    assert verify_hc1(text, trust, now).valid


def test_uncompressed_payload_is_read(holder, second_dose, es256_signer, trust, now):
    claims = {1: "VN", 6: int(now.timestamp()) - 60, 4: int(now.timestamp()) + 3600, -260: {1: build_hcert(holder, second_dose)}}
    cose = sign_cose(cbor2.dumps(claims), es256_signer)
    text = "HC1:" + base45.b45encode(cose).decode()
    assert verify_hc1(text, trust, now).valid


def test_cwt_library_reads_our_cose(holder, second_dose, es256_signer, now):
    import cwt
    from cryptography.hazmat.primitives import serialization

    text = _issue(es256_signer, holder, second_dose, now)
    cose = zlib.decompress(base45.b45decode(text[4:]))
    pem = es256_signer.private_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    key = cwt.COSEKey.from_pem(pem, alg="ES256", kid=es256_signer.kid)
    payload = cwt.COSE.new().decode(cose, key)
    assert cbor2.loads(payload)[-260][1]["nam"]["gnt"] == "THI<NGOC<HA"


def test_we_read_cose_signed_by_the_cwt_library(holder, second_dose, es256_signer, trust, now):
    import cwt
    from cryptography.hazmat.primitives import serialization

    pem = es256_signer.private_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    key = cwt.COSEKey.from_pem(pem, alg="ES256", kid=es256_signer.kid)
    claims = {1: "VN", 6: int(now.timestamp()) - 60, 4: int(now.timestamp()) + 3600, -260: {1: build_hcert(holder, second_dose)}}
    cose = cwt.COSE.new().encode_and_sign(
        cbor2.dumps(claims), key, protected={1: -7, 4: es256_signer.kid}
    )
    assert verify_hc1(encode_hc1_from_cose(cose), trust, now).valid


# -- refusals ------------------------------------------------------------------


def _tamper_payload(text: str) -> str:
    message = cbor2.loads(zlib.decompress(base45.b45decode(text[4:])))
    protected, unprotected, payload, signature = message.value
    i = payload.index("Đặng".encode())
    changed = bytearray(payload)
    changed[i + 3] ^= 0x01  # one byte of the family name, still valid CBOR
    forged = cbor2.dumps(cbor2.CBORTag(18, [protected, unprotected, bytes(changed), signature]))
    return encode_hc1_from_cose(forged)


def test_one_changed_payload_byte_is_refused(holder, second_dose, es256_signer, trust, now):
    text = _tamper_payload(_issue(es256_signer, holder, second_dose, now))
    result = verify_hc1(text, trust, now)
    assert Refusal.BAD_SIGNATURE in result.codes
    assert not result.valid


def test_other_key_using_our_kid_is_refused(csca, holder, second_dose, es256_signer, trust, now):
    key, cert = create_document_signer(*csca, now=now - dt.timedelta(days=1))

    class Impostor(Signer):
        @property
        def kid(self):
            return es256_signer.kid

    text = _issue(Impostor(cert, key), holder, second_dose, now)
    result = verify_hc1(text, trust, now)
    assert result.codes == [Refusal.BAD_SIGNATURE]


def test_every_signer_sharing_a_kid_is_tried(csca, holder, second_dose, es256_signer, now):
    key, other_cert = create_document_signer(*csca, now=now - dt.timedelta(days=1))

    class Colliding(TrustedSigner):
        @property
        def kid(self):
            return es256_signer.kid

    trust = TrustList()
    trust.add_signer(Colliding(other_cert, "VN"))
    trust.add(es256_signer.certificate)
    assert len(trust.signers_for(es256_signer.kid)) == 2
    result = verify_hc1(_issue(es256_signer, holder, second_dose, now), trust, now)
    assert result.valid, result.reasons
    assert result.signer.certificate == es256_signer.certificate


def test_unknown_kid_is_refused(holder, second_dose, es256_signer, now):
    result = verify_hc1(_issue(es256_signer, holder, second_dose, now), TrustList(), now)
    assert result.codes == [Refusal.UNKNOWN_KID]


def test_expired_certificate_is_refused(holder, second_dose, es256_signer, trust, now):
    text = encode_hc1(
        build_hcert(holder, second_dose), es256_signer, issuer_country="VN",
        issued_at=now - dt.timedelta(hours=20), expires_at=now - dt.timedelta(hours=1),
    )
    assert verify_hc1(text, trust, now).codes == [Refusal.EXPIRED]


def test_expired_signer_is_refused(csca, holder, second_dose, now):
    key, cert = create_document_signer(*csca, now=now - dt.timedelta(days=20), valid_days=10)
    signer = Signer(cert, key)
    trust = TrustList()
    trust.add(cert)
    text = _issue(signer, holder, second_dose, now)
    assert Refusal.SIGNER_EXPIRED in verify_hc1(text, trust, now).codes


def test_signer_for_tests_only_may_not_sign_vaccinations(csca, holder, second_dose, now):
    key, cert = create_document_signer(*csca, purposes=("test",), now=now - dt.timedelta(days=1))
    trust = TrustList()
    trust.add(cert)
    result = verify_hc1(_issue(Signer(cert, key), holder, second_dose, now), trust, now)
    assert result.codes == [Refusal.SIGNER_NOT_VALID_FOR_TYPE]


def test_revoked_uvci_is_refused(holder, second_dose, es256_signer, trust, now):
    text = _issue(es256_signer, holder, second_dose, now)
    revocation = RevocationList()
    revocation.revoke_uvci(second_dose.certificate_id)
    assert verify_hc1(text, trust, now, revocation).codes == [Refusal.REVOKED]


def test_revoked_signature_hash_is_refused(holder, second_dose, es256_signer, trust, now):
    text = _issue(es256_signer, holder, second_dose, now)
    revocation = RevocationList()
    revocation.add_hash("SIGNATURE", to_b64(signature_hash(decode_hc1(text).signature, "ES256")))
    assert verify_hc1(text, trust, now, revocation).codes == [Refusal.REVOKED]


def test_withdrawn_signer_refuses_all_it_signed(holder, second_dose, es256_signer, ps256_signer, trust, now):
    revocation = RevocationList()
    revocation.revoke_signer(es256_signer.certificate)
    assert verify_hc1(_issue(es256_signer, holder, second_dose, now), trust, now, revocation).codes == [
        Refusal.SIGNER_REVOKED
    ]
    assert verify_hc1(_issue(ps256_signer, holder, second_dose, now), trust, now, revocation).valid


@pytest.mark.parametrize(
    "text",
    ["HC2:NCFOXN%TS3DH", "LT1:6BFU90V10", "NCFOXN%TS3DH3ZSUZK+.V0ETD%65NL", "", "shc:/5676290952"],
)
def test_wrong_prefix_is_refused(text):
    with pytest.raises(MalformedInput):
        decode_hc1(text)


@pytest.mark.parametrize("body", ["::::", "GGW", "abc", "A"])
def test_bad_base45_is_refused(body, trust, now):
    with pytest.raises(MalformedInput):
        decode_hc1("HC1:" + body)
    assert verify_hc1("HC1:" + body, trust, now).codes == [Refusal.MALFORMED]


def test_truncated_code_is_refused(holder, second_dose, es256_signer, trust, now):
    text = _issue(es256_signer, holder, second_dose, now)
    assert verify_hc1(text[:-30], trust, now).codes == [Refusal.MALFORMED]


# -- QR ------------------------------------------------------------------------


def test_qr_png_and_svg_round_trip(holder, second_dose, es256_signer, now):
    text = _issue(es256_signer, holder, second_dose, now)
    png = render_hc1_png(text)
    assert png.startswith(b"\x89PNG")
    assert render_hc1_svg(text).startswith("<svg")
    import io

    import segno
    import zxingcpp
    from PIL import Image

    image = Image.open(io.BytesIO(png))
    (found,) = zxingcpp.read_barcodes(image)
    assert found.text == text
    # HCERT §4's ECC level, and the smallest symbol that holds the text at that level.
    assert found.extra["ECLevel"] == "Q"
    version = int(found.extra["Version"])
    assert version == segno.make(text, error="Q", micro=False, boost_error=False).version
    # 4 pixels a module and a quiet zone of 4 modules on every side.
    modules = 17 + 4 * version
    assert image.size == ((modules + 8) * 4, (modules + 8) * 4)
    grey = image.convert("L")
    assert all(grey.getpixel((x, y)) == 255 for x in range(16) for y in range(grey.size[1]))
    assert grey.getpixel((16, 16)) == 0  # the finder pattern's corner