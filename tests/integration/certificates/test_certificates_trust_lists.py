"""Foreign certificates verify once an operator imports their trust list."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from cryptography.hazmat.primitives import serialization

from vaxhub.certificates import shc
from vaxhub.certificates.dcc import DccPerson, DccVaccination, issue_dcc, new_uvci
from vaxhub.certificates.keys import Signer, create_csca, create_document_signer
from vaxhub.certificates.trust_list import TrustList

NOW = dt.datetime.now(dt.timezone.utc)


@pytest.fixture(scope="module")
def german_signer() -> Signer:
    key, cert = create_document_signer(*create_csca("DE", "Robert Koch-Institut", now=NOW - dt.timedelta(days=10)), now=NOW - dt.timedelta(days=1))
    return Signer(cert, key)


@pytest.fixture(scope="module")
def german_dcc(german_signer) -> str:
    person = DccPerson("Müller", "Jürgen", "1975-02-14")
    dose = DccVaccination("1119349007", "EU/1/20/1507", "ORG-100031184", 2, 2, dt.date(2021, 6, 1), "Robert Koch-Institut", new_uvci("DE"), country="DE")
    return issue_dcc(person, dose, german_signer, issued_at=NOW - dt.timedelta(hours=1), issuer_country="DE")


def _gateway_list(*signers: Signer) -> bytes:
    trust = TrustList()
    for signer in signers:
        trust.add(signer.certificate)
    entries = trust.to_gateway_json()
    for entry in entries:
        entry["timestamp"] = "2026-11-01T00:00:00Z"
    return json.dumps(entries).encode()


def _verify(certs, text: str, headers=None) -> dict:
    r = certs.raw.post("/certificates/verify", json={"qr": text}, headers=headers or certs.verifier())
    assert r.status_code == 200, r.text
    return r.json()


def test_foreign_dcc_verifies_after_import_and_not_after_removal(certs, german_signer, german_dcc):
    verifier = certs.verifier()
    before = _verify(certs, german_dcc, verifier)
    assert before["signature"] == "unknown-key" and not before["valid"]
    operator = certs.operator()
    r = certs.raw.put("/certificates/trust-lists/eu-gateway", content=_gateway_list(german_signer), headers=operator)
    assert r.status_code == 200 and r.json() == {"name": "eu-gateway", "signers": 1, "card_keys": 0}
    after = _verify(certs, german_dcc, verifier)
    assert after["valid"] and after["issuer"] == "DE" and after["payload"]["nam"]["fn"] == "Müller"
    listed = certs.raw.get("/certificates/trust-lists", headers=operator).json()["lists"]
    assert [(x["name"], x["signers"]) for x in listed] == [("eu-gateway", 1)]
    assert certs.raw.delete("/certificates/trust-lists/eu-gateway", headers=operator).status_code == 204
    assert _verify(certs, german_dcc, verifier)["signature"] == "unknown-key"
    assert certs.raw.delete("/certificates/trust-lists/eu-gateway", headers=operator).status_code == 404


def test_pem_certificate_import(certs, german_signer, german_dcc):
    pem = german_signer.certificate.public_bytes(serialization.Encoding.PEM)
    r = certs.raw.put("/certificates/trust-lists/de-manual", content=pem, headers={**certs.operator(), "content-type": "application/x-pem-file"})
    assert r.status_code == 200 and r.json()["signers"] == 1
    assert _verify(certs, german_dcc)["valid"]


def test_a_bad_entry_refuses_the_whole_list_and_keeps_the_old_one(certs, german_signer, german_dcc):
    operator = certs.operator()
    certs.raw.put("/certificates/trust-lists/eu-gateway", content=_gateway_list(german_signer), headers=operator)
    entries = json.loads(_gateway_list(german_signer))
    bad = [{**entries[0], "kid": "AAAAAAAAAAA="}]
    r = certs.raw.put("/certificates/trust-lists/eu-gateway", content=json.dumps(bad).encode(), headers=operator)
    assert r.status_code == 400 and r.json()["issue"][0]["expression"] == ["[0].kid"]
    assert _verify(certs, german_dcc)["valid"]
    for garbage in (b"", b"not json", b'{"x": 1}'):
        assert certs.raw.put("/certificates/trust-lists/other", content=garbage, headers=operator).status_code in (400, 422)
    assert certs.raw.put("/certificates/trust-lists/bad name!", content=_gateway_list(german_signer), headers=operator).status_code == 422


def test_foreign_smart_health_card_issuer(certs, german_signer):
    issuer = "https://impfnachweis.example.de/shc"
    card = shc.encode_numeric(shc.issue_card(
        shc.ShcPatient("Müller", ["Jürgen"], "1975-02-14"),
        [shc.ShcImmunization("207", dt.date(2021, 6, 1), "Impfzentrum Berlin")],
        german_signer, issuer=issuer, issued_at=NOW - dt.timedelta(hours=1),
    ))
    assert _verify(certs, card)["signature"] == "unknown-key"
    jwks = json.dumps(shc.issuer_jwks([german_signer])).encode()
    operator = certs.operator()
    r = certs.raw.put("/certificates/trust-lists/de-shc", content=jwks, headers=operator)
    assert r.status_code == 422  # keys must name their issuer
    r = certs.raw.put("/certificates/trust-lists/de-shc", params={"issuer": issuer}, content=jwks, headers=operator)
    assert r.status_code == 200 and r.json()["card_keys"] == 1
    report = _verify(certs, card)
    assert report["valid"] and report["issuer"] == issuer


def test_only_certificate_operators_import(certs, german_signer):
    for headers in (certs.verifier(), certs.site, certs.login("moh-auditor", "system/*.rs", kind="operator", roles="auditor")):
        assert certs.raw.put("/certificates/trust-lists/x", content=_gateway_list(german_signer), headers=headers).status_code == 403
