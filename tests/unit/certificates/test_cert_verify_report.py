"""The format-independent verification report (`vaxhub.certificates.verify`):
valid certificates, every kind of tampering, trust documents, revocation."""

from __future__ import annotations

import base64
import datetime as dt
import json

import pytest
from cryptography.hazmat.primitives import serialization

from tests.certificate_tampering import CARD_TAMPERINGS, DCC_TAMPERINGS, signed_by
from vaxhub.certificates import shc
from vaxhub.certificates.dcc import build_hcert, encode_hc1
from vaxhub.certificates.keys import Signer, create_document_signer
from vaxhub.certificates.trust_list import TrustList, export_signers
from vaxhub.certificates.verify import Signature, Trust, revocation_document, verify_text
from vaxhub.errors import MalformedInput

ISSUER = "https://vaxhub.example/shc"


def _hc1(signer, holder, dose, *, issued, expires) -> str:
    return encode_hc1(build_hcert(holder, dose), signer, issuer_country="VN", issued_at=issued, expires_at=expires)


def _card(signer, *, issued, expires=None, rid=None) -> str:
    patient = shc.ShcPatient("Đặng", ["Thị", "Ngọc", "Hà"], "1990-05-24")
    doses = [shc.ShcImmunization("208", dt.date(2021, 11, 3), "Trạm y tế phường Láng Hạ", "FK5618")]
    payload = shc.build_credential(shc.build_bundle(patient, doses), issuer=ISSUER, issued_at=issued)
    if expires:
        payload["exp"] = int(expires.timestamp())
    if rid:
        payload["vc"]["rid"] = rid
    return shc.encode_numeric(shc.sign_card(payload, signer))


def _jwks(*signers: Signer) -> dict:
    jwks = shc.issuer_jwks(signers)
    for key, signer in zip(jwks["keys"], signers):
        key["x5c"] = [base64.b64encode(signer.der).decode()]
    return jwks


@pytest.fixture
def trust(es256_signer, ps256_signer) -> Trust:
    trust = Trust()
    trust.signers.add(es256_signer.certificate)
    trust.signers.add(ps256_signer.certificate)
    trust.add_jwks(_jwks(es256_signer), ISSUER)
    return trust


@pytest.fixture
def hc1(es256_signer, holder, second_dose, now) -> str:
    return _hc1(es256_signer, holder, second_dose, issued=now - dt.timedelta(hours=1), expires=now + dt.timedelta(days=365))


@pytest.fixture
def card(es256_signer, now) -> str:
    return _card(es256_signer, issued=now - dt.timedelta(hours=1), expires=now + dt.timedelta(days=365), rid="abcDEF123")


# -- valid ---------------------------------------------------------------------------


def test_valid_dcc_report(hc1, trust, now, second_dose):
    report = verify_text(hc1, trust, now=now)
    assert report.valid, report.errors
    data = report.to_json()
    assert data["format"] == "dcc" and data["signature"] == "valid" and data["issuer"] == "VN"
    assert data["expired"] is False and data["revoked"] is False and data["errors"] == []
    assert data["certificate_id"] == second_dose.certificate_id
    assert data["payload"]["nam"]["fn"] == "Đặng" and data["payload"]["v"][0]["dn"] == 2
    assert data["issued_at"].endswith("Z") and data["expires_at"] > data["issued_at"]
    json.dumps(data)


def test_valid_ps256_dcc(ps256_signer, holder, second_dose, trust, now):
    text = _hc1(ps256_signer, holder, second_dose, issued=now, expires=now + dt.timedelta(days=1))
    report = verify_text(text, trust, now=now)
    assert report.valid and report.algorithm == "PS256"


def test_valid_card_report_in_every_form(card, trust, now):
    jws = shc.decode_numeric(card)
    for form in (card, jws, shc.card_file([jws]), f"  {card}\n"):
        report = verify_text(form, trust, now=now)
        assert report.valid, (form[:20], report.errors)
        assert report.format == "shc" and report.issuer == ISSUER and report.certificate_id == "abcDEF123"
        assert report.payload["vc"]["credentialSubject"]["fhirBundle"]["entry"][0]["resource"]["name"][0]["family"] == "Đặng"


def test_deprecated_chunked_card_is_read(card, trust, now):
    digits = card[5:]
    half = len(digits) // 2 // 2 * 2
    chunks = f"shc:/2/2/{digits[half:]}\nshc:/1/2/{digits[:half]}"
    assert verify_text(chunks, trust, now=now).valid


# -- tampered EU DCCs --------------------------------------------------------------------


@pytest.mark.parametrize(("how", "tamper", "code"), DCC_TAMPERINGS, ids=[t[0] for t in DCC_TAMPERINGS])
def test_tampered_dcc_is_refused(how, tamper, code, hc1, trust, now):
    report = verify_text(tamper(hc1), trust, now=now)
    assert not report.valid
    assert code in report.codes, report.errors
    assert report.to_json()["valid"] is False


def test_dcc_signed_by_an_unknown_key_is_refused(hc1, trust, csca, now):
    key, cert = create_document_signer(*csca, now=now - dt.timedelta(days=1))
    report = verify_text(signed_by(Signer(cert, key))(hc1), trust, now=now)
    assert report.signature is Signature.UNKNOWN_KEY and report.codes == ["unknown-kid"]


def test_expired_and_not_yet_valid_dcc(es256_signer, holder, second_dose, trust, now):
    expired = _hc1(es256_signer, holder, second_dose, issued=now - dt.timedelta(hours=12), expires=now - dt.timedelta(hours=1))
    report = verify_text(expired, trust, now=now)
    assert report.expired and report.codes == ["expired"] and report.signature is Signature.VALID
    future = _hc1(es256_signer, holder, second_dose, issued=now + dt.timedelta(days=1), expires=now + dt.timedelta(days=30))
    report = verify_text(future, trust, now=now)
    assert report.not_yet_valid and "not-yet-valid" in report.codes and not report.valid


def test_revoked_dcc_and_withdrawn_signer(hc1, trust, now, second_dose, es256_signer):
    trust.revocation.revoke_uvci(second_dose.certificate_id, "VN")
    report = verify_text(hc1, trust, now=now)
    assert report.revoked and report.codes == ["revoked"]
    fresh = Trust(signers=trust.signers)
    fresh.revocation.revoke_signer(es256_signer.certificate)
    assert verify_text(hc1, fresh, now=now).codes == ["signer-revoked"]


# -- tampered SMART Health Cards -----------------------------------------------------------


@pytest.mark.parametrize(("how", "tamper", "code"), CARD_TAMPERINGS, ids=[t[0] for t in CARD_TAMPERINGS])
def test_tampered_card_is_refused(how, tamper, code, card, trust, now):
    report = verify_text(tamper(card), trust, now=now)
    assert not report.valid
    assert code in report.codes, report.errors


def test_card_from_an_unknown_key_is_refused(trust, csca, now):
    key, cert = create_document_signer(*csca, now=now - dt.timedelta(days=1))
    report = verify_text(_card(Signer(cert, key), issued=now), trust, now=now)
    assert report.signature is Signature.UNKNOWN_KEY and report.codes == ["unknown-kid"]


def test_card_of_another_issuer_is_not_verified_with_our_keys(es256_signer, now):
    trust = Trust()
    trust.add_jwks(_jwks(es256_signer), "https://other.example/shc")
    report = verify_text(_card(es256_signer, issued=now), trust, now=now)
    assert report.signature is Signature.UNKNOWN_KEY


def test_expired_and_not_yet_valid_card(es256_signer, trust, now):
    expired = _card(es256_signer, issued=now - dt.timedelta(days=10), expires=now - dt.timedelta(days=1))
    assert verify_text(expired, trust, now=now).expired
    future = verify_text(_card(es256_signer, issued=now + dt.timedelta(days=2)), trust, now=now)
    assert future.not_yet_valid and "not-yet-valid" in future.codes


def test_card_key_is_valid_only_while_its_certificate_is(csca, now):
    key, cert = create_document_signer(*csca, now=now - dt.timedelta(days=20), valid_days=10)
    signer = Signer(cert, key)
    trust = Trust()
    trust.add_jwks(_jwks(signer), ISSUER)
    report = verify_text(_card(signer, issued=now), trust, now=now)
    assert report.signature is Signature.VALID and report.codes == ["signer-expired"]


def test_revoked_card_and_withdrawn_card_key(card, trust, now, es256_signer):
    trust.revoked_card_ids.add("abcDEF123")
    assert verify_text(card, trust, now=now).codes == ["revoked"]
    trust.revoked_card_ids.clear()
    trust.revoked_card_kids.add(es256_signer.jwk_kid)
    report = verify_text(card, trust, now=now)
    assert report.revoked and report.codes == ["signer-revoked"]


# -- garbage ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    ["", "hello", "HC1:", "shc:/", "shc:/1/0/", "{}", '{"verifiableCredential": 3}', "a.b.c", "x" * 20000, "HC1:" + "0" * 3],
)
def test_garbage_gives_a_report(text, trust, now):
    report = verify_text(text, trust, now=now)
    assert not report.valid and report.errors
    json.dumps(report.to_json())


# -- trust documents ---------------------------------------------------------------------------


def test_trust_from_pem_der_and_lists(es256_signer, ps256_signer, hc1, now):
    pem = es256_signer.certificate.public_bytes(serialization.Encoding.PEM)
    der = es256_signer.certificate.public_bytes(serialization.Encoding.DER)
    for document in (pem, der, json.dumps(export_signers([es256_signer], "VN")).encode()):
        trust = Trust()
        trust.add_document(document)
        assert verify_text(hc1, trust, now=now).valid
    listed = TrustList()
    listed.add(es256_signer.certificate, "VN")
    trust = Trust()
    assert "1 signer" in trust.add_document(json.dumps({"certificates": listed.to_gateway_json()}).encode())
    assert verify_text(hc1, trust, now=now).valid


def test_trust_from_jwks_with_or_without_issuer(card, es256_signer, now):
    for document in ({**_jwks(es256_signer), "issuer": ISSUER}, _jwks(es256_signer)):
        trust = Trust()
        trust.add_document(json.dumps(document).encode())
        assert verify_text(card, trust, now=now).valid


def test_revocation_document_round_trip(hc1, second_dose, es256_signer, now):
    from vaxhub.certificates.revocation import to_b64, uci_hash

    document = revocation_document(
        country="VN",
        batches=[{"kid": "x", "hashType": "UCI", "entries": [{"hash": to_b64(uci_hash(second_dose.certificate_id))}]}],
        revoked_signers=[],
        card_ids=["abcDEF123"],
    )
    trust = Trust()
    trust.signers.add(es256_signer.certificate)
    trust.add_document(json.dumps(document).encode())
    assert verify_text(hc1, trust, now=now).codes == ["revoked"]
    assert "abcDEF123" in trust.revoked_card_ids


@pytest.mark.parametrize("document", [b"", b"not a certificate", b"{\"x\": 1}", b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----", b"[{\"certificate\": \"!!\"}]"])
def test_unreadable_trust_documents_are_refused_whole(document):
    trust = Trust()
    with pytest.raises(MalformedInput):
        trust.add_document(document)
    assert len(trust.signers) == 0 and trust.shc_issuers == []


def test_a_der_certificate_ending_in_a_whitespace_byte_is_read_whole(csca):
    """DER is binary: a signer certificate whose last byte is 0x20, 0x0a or 0x0d
    must not lose it to whitespace trimming (about 1 certificate in 40)."""
    for _ in range(400):
        _key, certificate = create_document_signer(*csca)
        der = certificate.public_bytes(serialization.Encoding.DER)
        if der[-1:].isspace():
            break
    else:
        pytest.skip("no certificate ending in a whitespace byte came up")
    assert Trust().add_document(der) == "1 signer certificate from DER"
