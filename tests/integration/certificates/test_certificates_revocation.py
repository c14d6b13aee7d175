"""Revoking a certificate by UVCI, withdrawing a compromised signer, and the
published revocation list that offline verifiers load."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from vaxhub.certificates.revocation import country_uci_hash, to_b64, uci_hash
from vaxhub.hub.certificates.issuance import card_revocation_id
from vaxhub.hub.cli import app as cli


def _verify(certs, text: str) -> dict:
    r = certs.raw.post("/certificates/verify", json={"qr": text}, headers=certs.site)
    assert r.status_code == 200, r.text
    return r.json()


def test_revoked_uvci_is_refused_in_every_format(certs, an, tmp_path):
    uvci = certs.issue(an)["uvci"]
    hc1 = certs.download(uvci, "dcc.txt").text
    card = certs.download(uvci, "shc.txt").text
    operator = certs.operator()
    r = certs.raw.post("/certificates/revocations", json={"uvci": uvci, "reason": "issued to the wrong person"}, headers=operator)
    assert r.status_code == 200 and r.json() == {"uvci": uvci, "patient": an, "revoked": True}
    for text in (hc1, card):
        report = _verify(certs, text)
        assert not report["valid"] and report["revoked"] and "revoked" in [e["code"] for e in report["errors"]]
    summary = certs.raw.get(f"/certificates/{uvci}", headers=certs.site).json()
    assert summary["revoked"] and "wrong person" in summary["revocation_reason"]
    assert certs.raw.get(f"/certificates/patients/{an}/latest/dcc.txt", headers=certs.site).status_code == 404

    published = certs.raw.get("/certificates/revocation-list").json()
    hashes = {(b["hashType"], e["hash"]) for b in published["batches"] for e in b["entries"]}
    assert ("UCI", to_b64(uci_hash(uvci))) in hashes and ("COUNTRYCODEUCI", to_b64(country_uci_hash("VN", uvci))) in hashes
    assert {b["hashType"] for b in published["batches"]} == {"UCI", "COUNTRYCODEUCI", "SIGNATURE"}
    assert published["shc"]["rids"] == [card_revocation_id(uvci)]
    assert uvci not in json.dumps(published)  # hashes only, never the identifier

    # an offline verifier with the published trust and revocation lists refuses it too
    (tmp_path / "trust.json").write_text(certs.raw.get("/certificates/trust-list").text)
    (tmp_path / "revoked.json").write_text(json.dumps(published))
    for text in (hc1, card):
        result = CliRunner().invoke(cli, ["verify", "--trust", str(tmp_path / "trust.json"), "--revocations", str(tmp_path / "revoked.json"), text])
        assert result.exit_code == 1 and json.loads(result.stdout)["revoked"] is True
        result = CliRunner().invoke(cli, ["verify", "--trust", str(tmp_path / "trust.json"), text])
        assert result.exit_code == 0, result.stdout


def test_revoking_twice_keeps_the_first_reason_and_unknown_uvci_is_404(certs, an):
    uvci = certs.issue(an)["uvci"]
    operator = certs.operator()
    certs.raw.post("/certificates/revocations", json={"uvci": uvci, "reason": "first"}, headers=operator)
    certs.raw.post("/certificates/revocations", json={"uvci": uvci, "reason": "second"}, headers=operator)
    assert certs.raw.get(f"/certificates/{uvci}", headers=certs.site).json()["revocation_reason"].startswith("first")
    r = certs.raw.post("/certificates/revocations", json={"uvci": "URN:UVCI:01:VN:FFFFFFFF", "reason": "x"}, headers=operator)
    assert r.status_code == 404


def test_withdrawn_signer_refuses_all_it_signed_until_keys_rotate(certs, an):
    first = certs.issue(an)["uvci"]
    second = certs.issue(an)["uvci"]
    texts = [certs.download(u, f).text for u in (first, second) for f in ("dcc.txt", "shc.txt")]
    signer_kid = certs.raw.get(f"/certificates/{first}", headers=certs.site).json()["signer_kid"]
    r = certs.raw.post("/certificates/signer-revocations", json={"signer": signer_kid, "reason": "key leaked"}, headers=certs.operator())
    assert r.status_code == 200 and r.json()["certificates_refused"] == 6 and r.json()["was_active"]
    for text in texts:
        report = _verify(certs, text)
        assert not report["valid"] and "signer-revoked" in [e["code"] for e in report["errors"]], text[:10]
    # the signer leaves the published trust list and JWKS
    trust_list = certs.raw.get("/certificates/trust-list").json()
    assert signer_kid not in [c["kid"] for c in trust_list["certificates"] if c["certificateType"] == "DSC"]
    assert certs.raw.get("/shc/.well-known/jwks.json").json()["keys"] == []
    assert any(s["kid"] == signer_kid for s in certs.raw.get("/certificates/revocation-list").json()["revokedSigners"])
    # nothing more is signed with it
    refused = certs.raw.post(f"/certificates/patients/{an}", headers=certs.site)
    assert refused.status_code == 409 and "rotate" in refused.json()["issue"][0]["diagnostics"]
    certs.app.state.certificates.keys.rotate()
    fresh = certs.issue(an)
    assert fresh["signer_kid"] != signer_kid
    assert _verify(certs, certs.download(fresh["uvci"], "dcc.txt").text)["valid"]
    assert _verify(certs, certs.download(fresh["uvci"], "shc.txt").text)["valid"]


def test_unknown_signer_cannot_be_withdrawn(certs, an):
    certs.issue(an)
    r = certs.raw.post("/certificates/signer-revocations", json={"signer": "AAAAAAAAAAA=", "reason": "x"}, headers=certs.operator())
    assert r.status_code == 404
