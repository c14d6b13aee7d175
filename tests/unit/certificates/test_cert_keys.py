"""Keys, X.509 signers, kids and the persistent key store."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from vaxhub.certificates.keys import (
    DCC_EKU_OIDS,
    KeyStore,
    create_document_signer,
    dcc_kid,
    load_private_key,
    serialize_private_key,
    shc_kid,
    signer_purposes,
)
from vaxhub.errors import InputError


def test_csca_is_a_self_signed_p256_ca(csca):
    key, cert = csca
    assert cert.issuer == cert.subject
    assert cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    cert.verify_directly_issued_by(cert)
    assert key.curve.name == "secp256r1"


def test_document_signer_chains_to_csca_and_carries_vaccination_eku(csca, es256_signer):
    _, ca_cert = csca
    es256_signer.certificate.verify_directly_issued_by(ca_cert)
    eku = es256_signer.certificate.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert [o.dotted_string for o in eku] == [DCC_EKU_OIDS["vaccination"][0]]
    assert signer_purposes(es256_signer.certificate) == {"vaccination"}


def test_signer_without_dcc_eku_may_sign_everything(csca, now):
    _, cert = create_document_signer(*csca, purposes=None, now=now)
    assert signer_purposes(cert) is None


def test_dcc_kid_is_first_eight_bytes_of_sha256_of_der(es256_signer):
    der = es256_signer.certificate.public_bytes(serialization.Encoding.DER)
    assert dcc_kid(der) == hashlib.sha256(der).digest()[:8]
    assert len(es256_signer.kid) == 8


def test_shc_kid_matches_rfc7638_example_key():
    # RFC 7638 §3.1 example uses RSA; use the SHC example issuer's EC key, whose kid is its thumbprint.
    from jwt.algorithms import ECAlgorithm

    jwk = {
        "kty": "EC",
        "crv": "P-256",
        "x": "11XvRWy1I2S0EyJlyf_bWfw_TQ5CJJNLw78bHXNxcgw",
        "y": "eZXwxvO1hvCY0KucrPfKo7yAyMT6Ajc3N7OkAB6VYy8",
    }
    key = ECAlgorithm.from_jwk(json.dumps(jwk))
    assert shc_kid(key) == "3Kfdg-XwP-7gXyywtUfUADwBumDOPKMQx-iELL11W9s"


def test_rsa_thumbprint_matches_rfc7638_section_3_1():
    from jwt.algorithms import RSAAlgorithm

    jwk = {
        "kty": "RSA",
        "n": "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw",
        "e": "AQAB",
    }
    assert shc_kid(RSAAlgorithm.from_jwk(json.dumps(jwk))) == "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"


def test_private_key_is_stored_encrypted(es256_signer):
    pem = serialize_private_key(es256_signer.private_key, b"secret")
    assert b"ENCRYPTED PRIVATE KEY" in pem
    with pytest.raises((TypeError, ValueError)):
        load_private_key(pem, b"wrong")
    assert load_private_key(pem, b"secret").private_numbers() == es256_signer.private_key.private_numbers()
    with pytest.raises(InputError):
        serialize_private_key(es256_signer.private_key, b"")


def test_keystore_persists_and_reloads(keystore, tmp_path):
    first = keystore.active_signer()
    reopened = KeyStore(tmp_path / "keys", b"correct horse battery staple")
    assert reopened.active_signer().kid == first.kid
    assert reopened.country == "VN"
    index = json.loads((tmp_path / "keys" / "index.json").read_text())
    assert index["signers"][0]["kid"] == base64.b64encode(first.kid).decode()
    for name in (e["key"] for e in index["signers"]):
        assert b"ENCRYPTED" in (tmp_path / "keys" / name).read_bytes()


def test_keystore_refuses_second_init(keystore):
    with pytest.raises(InputError):
        keystore.init("VN", "Bo Y te")


def test_rotation_keeps_old_signers_until_they_expire(keystore, now):
    first = keystore.active_signer()
    second = keystore.rotate(now=now)
    assert keystore.active_signer().kid == second.kid != first.kid
    assert [s.kid for s in keystore.all_signers()] == [first.kid, second.kid]
    assert len(keystore.all_signers(now=now)) == 2
    after_first_expired = first.not_valid_after + dt.timedelta(days=1)
    assert [s.kid for s in keystore.all_signers(now=after_first_expired)] == [second.kid]
