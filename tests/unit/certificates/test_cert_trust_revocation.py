"""Trust list exchange and EU DCC revocation hashes."""

from __future__ import annotations

import base64
import hashlib

import pytest

from vaxhub.certificates.dcc import decode_hc1, issue_dcc
from vaxhub.certificates.revocation import (
    RevocationList,
    country_uci_hash,
    signature_hash,
    to_b64,
    uci_hash,
)
from vaxhub.certificates.trust_list import TrustList, export_signers
from vaxhub.errors import MalformedInput


def test_export_and_import_of_our_signers(keystore, now):
    keystore.rotate(now=now)
    exported = export_signers(keystore.all_signers(now=now), country="VN")
    assert [set(e) for e in exported] == [{"kid", "country", "certificate"}] * 2
    trust = TrustList.from_json(exported)
    assert len(trust) == 2
    for signer in keystore.all_signers():
        (found,) = trust.signers_for(signer.kid)
        assert found.country == "VN" and found.der == signer.der


def test_gateway_dsc_list_shape_is_accepted(es256_signer, ps256_signer):
    trust = TrustList()
    trust.add(es256_signer.certificate, "VN")
    trust.add(ps256_signer.certificate, "VN")
    gateway = trust.to_gateway_json()
    assert set(gateway[0]) == {"kid", "country", "certificateType", "thumbprint", "rawData"}
    for entry in gateway:
        entry.update({"timestamp": "2022-05-11T09:00:00Z", "signature": "MEUCIQ..."})
    assert len(TrustList.from_json(gateway)) == 2
    assert len(TrustList.from_json({"certificates": gateway})) == 2
    # CSCA entries in a mixed list are not signers
    assert len(TrustList.from_json(gateway + [{**gateway[0], "certificateType": "CSCA"}])) == 2


def test_import_refuses_mismatched_kid_and_reports_all(es256_signer):
    good = export_signers([es256_signer], "VN")[0]
    wrong_kid = {**good, "kid": base64.b64encode(b"\x00" * 8).decode()}
    not_der = {**good, "certificate": base64.b64encode(b"not a certificate").decode()}
    with pytest.raises(MalformedInput) as err:
        TrustList.from_json([good, wrong_kid, not_der])
    assert [i.expression for i in err.value.issues] == ["[1].kid", "[2].certificate"]


def test_removed_signer_is_no_longer_trusted(es256_signer):
    trust = TrustList()
    trust.add(es256_signer.certificate)
    (trusted,) = trust.signers_for(es256_signer.kid)
    trust.remove(trusted.fingerprint)
    assert trust.signers_for(es256_signer.kid) == []


def test_revocation_hashes_are_sha256_first_128_bits():
    uci = "URN:UVCI:01:VN:FFFE3D31FABD035899134A9D3BAE9BCF"
    assert uci_hash(uci) == hashlib.sha256(uci.encode()).digest()[:16]
    assert country_uci_hash("VN", uci) == hashlib.sha256(("VN" + uci).encode()).digest()[:16]
    assert len(base64.b64decode(to_b64(uci_hash(uci)))) == 16


def test_signature_hash_uses_r_for_ecdsa_and_everything_for_pss():
    sig = bytes(range(64))
    assert signature_hash(sig, "ES256") == hashlib.sha256(sig[:32]).digest()[:16]
    rsa_sig = bytes(range(256))
    assert signature_hash(rsa_sig, "PS256") == hashlib.sha256(rsa_sig).digest()[:16]


def test_revocation_by_each_hash_type(holder, second_dose, es256_signer, now):
    text = issue_dcc(holder, second_dose, es256_signer, issued_at=now)
    decoded = decode_hc1(text)
    args = dict(uci=decoded.uvci, country="VN", signature=decoded.signature, algorithm="ES256")
    for kind, value in [
        ("UCI", uci_hash(decoded.uvci)),
        ("COUNTRYCODEUCI", country_uci_hash("VN", decoded.uvci)),
        ("SIGNATURE", signature_hash(decoded.signature, "ES256")),
    ]:
        revocation = RevocationList()
        assert revocation.is_certificate_revoked(**args) is None
        revocation.add_hash(kind, to_b64(value))
        assert revocation.is_certificate_revoked(**args).value == kind


def test_revocation_hash_must_be_16_bytes():
    with pytest.raises(ValueError):
        RevocationList().add_hash("UCI", base64.b64encode(b"x" * 32).decode())
