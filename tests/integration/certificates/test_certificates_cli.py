"""`vaxhub verify` offline against published trust material, and `vaxhub keys`
init/rotate: a rotated-out signer verifies until its certificate expires."""

from __future__ import annotations

import base64
import datetime as dt
import json

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from typer.testing import CliRunner

from tests.certificate_tampering import CARD_TAMPERINGS, DCC_TAMPERINGS
from vaxhub.hub.certificates.issuance import card_revocation_id
from vaxhub.hub.cli import app as cli


def _run(*args: str, env: dict[str, str] | None = None):
    result = CliRunner().invoke(cli, list(args), env=env)
    return result.exit_code, (json.loads(result.stdout) if result.stdout.strip().startswith("{") else result.stdout), result


@pytest.fixture
def published(certs, an, tmp_path) -> dict:
    """An issued certificate and the hub's public trust material, saved as files."""
    uvci = certs.issue(an)["uvci"]
    files = {}
    for name, path in (("trust", "/certificates/trust-list"), ("jwks", "/shc/.well-known/jwks.json")):
        files[name] = tmp_path / f"{name}.json"
        files[name].write_text(certs.raw.get(path).text)
    entry = next(c for c in json.loads(files["trust"].read_text())["certificates"] if c["certificateType"] == "DSC")
    certificate = x509.load_der_x509_certificate(base64.b64decode(entry["rawData"]))
    files["pem"] = tmp_path / "signer.pem"
    files["pem"].write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    files["der"] = tmp_path / "signer.der"
    files["der"].write_bytes(certificate.public_bytes(serialization.Encoding.DER))
    files["png"] = tmp_path / "dcc.png"
    files["png"].write_bytes(certs.download(uvci, "dcc.png").content)
    files["card"] = tmp_path / "card.smart-health-card"
    files["card"].write_bytes(certs.download(uvci, "card.smart-health-card").content)
    return {"uvci": uvci, "hc1": certs.download(uvci, "dcc.txt").text, "shc": certs.download(uvci, "shc.txt").text, **files}


def test_valid_with_each_kind_of_trust(published):
    p = published
    for trust, text in ((p["trust"], p["hc1"]), (p["pem"], p["hc1"]), (p["der"], p["hc1"]), (p["trust"], p["shc"]), (p["jwks"], p["shc"])):
        code, report, result = _run("verify", "--trust", str(trust), text)
        assert code == 0, result.stdout
        assert report["valid"] and report["signature"] == "valid" and report["certificate_id"] in (p["uvci"], card_revocation_id(p["uvci"]))
        assert set(report) >= {"format", "valid", "signature", "issuer", "issued_at", "expires_at", "expired", "revoked", "payload", "errors"}


def test_image_and_card_file_arguments(published):
    code, report, _ = _run("verify", "--trust", str(published["trust"]), str(published["png"]))
    assert code == 0 and report["format"] == "dcc" and report["certificate_id"] == published["uvci"]
    code, report, _ = _run("verify", "--trust", str(published["trust"]), str(published["card"]))
    assert code == 0 and report["format"] == "shc"


def test_without_trust_the_key_is_unknown(published):
    code, report, _ = _run("verify", published["hc1"])
    assert code == 1 and report["signature"] == "unknown-key" and report["valid"] is False


@pytest.mark.parametrize(("how", "tamper", "code"), DCC_TAMPERINGS, ids=[t[0] for t in DCC_TAMPERINGS])
def test_tampered_dcc_exits_1(published, how, tamper, code):
    exit_code, report, _ = _run("verify", "--trust", str(published["trust"]), tamper(published["hc1"]))
    assert exit_code == 1 and code in [e["code"] for e in report["errors"]]


@pytest.mark.parametrize(("how", "tamper", "code"), CARD_TAMPERINGS, ids=[t[0] for t in CARD_TAMPERINGS])
def test_tampered_card_exits_1(published, how, tamper, code):
    exit_code, report, _ = _run("verify", "--trust", str(published["trust"]), tamper(published["shc"]))
    assert exit_code == 1 and code in [e["code"] for e in report["errors"]]


def test_expired_and_not_yet_valid_with_at(published):
    later = (dt.datetime.now(dt.timezone.utc) + dt.timedelta(days=400)).isoformat()
    for text in (published["hc1"], published["shc"]):
        code, report, _ = _run("verify", "--trust", str(published["trust"]), "--at", later, text)
        assert code == 1 and report["expired"] is True
    code, report, _ = _run("verify", "--trust", str(published["trust"]), "--at", "2021-01-01T00:00:00Z", published["hc1"])
    assert code == 1 and report["not_yet_valid"] is True


def test_bad_options_are_usage_errors(published, tmp_path):
    junk = tmp_path / "junk.json"
    junk.write_text('{"hello": 1}')
    assert _run("verify", "--trust", str(junk), published["hc1"])[0] == 2
    assert _run("verify", "--at", "yesterday", published["hc1"])[0] == 2


def test_rotated_out_signer_verifies_until_its_certificate_expires(certs, tmp_path):
    from tests.integration.certificates.conftest import HUONG

    env = {"VAXHUB_DATA_DIR": str(certs.app.state.settings.data_dir), "VAXHUB_ENVIRONMENT": "development"}
    code, first_signer, result = _run("keys", "init", "--signer-days", "30", env=env)
    assert code == 0, result.output
    assert _run("keys", "init", env=env)[0] == 1  # never overwrites a key store
    pid = certs.person(HUONG, [("208", "2021-08-02T09:00:00+07:00")])
    certs.verify_identities()
    old = certs.issue(pid)
    assert old["signer_kid"] == first_signer["kid"]
    code, second_signer, result = _run("keys", "rotate", "--signer-days", "90", env=env)
    assert code == 0, result.output
    new = certs.issue(pid)
    assert new["signer_kid"] == second_signer["kid"] != old["signer_kid"]
    code, listed, _ = _run("keys", "list", env=env)
    assert [s["active"] for s in json.loads(listed) if isinstance(listed, str)] == [False, True]

    trust = tmp_path / "trust.json"
    trust.write_text(certs.raw.get("/certificates/trust-list").text)
    assert len([c for c in json.loads(trust.read_text())["certificates"] if c["certificateType"] == "DSC"]) == 2
    old_hc1 = certs.download(old["uvci"], "dcc.txt").text
    new_hc1 = certs.download(new["uvci"], "dcc.txt").text
    in_20_days = (dt.datetime.now(dt.timezone.utc) + dt.timedelta(days=20)).isoformat()
    in_40_days = (dt.datetime.now(dt.timezone.utc) + dt.timedelta(days=40)).isoformat()
    assert _run("verify", "--trust", str(trust), "--at", in_20_days, old_hc1)[0] == 0
    code, report, _ = _run("verify", "--trust", str(trust), "--at", in_40_days, old_hc1)
    assert code == 1 and "signer-expired" in [e["code"] for e in report["errors"]]
    assert _run("verify", "--trust", str(trust), "--at", in_40_days, new_hc1)[0] == 0
    # the certificate never outlives its signer
    assert old["expires_at"] <= (dt.datetime.now(dt.timezone.utc) + dt.timedelta(days=31)).isoformat()
    # the hub itself keeps verifying the old one while its signer is valid
    r = certs.raw.post("/certificates/verify", json={"qr": old_hc1}, headers=certs.site)
    assert r.json()["valid"]


def test_production_refuses_a_placeholder_passphrase(tmp_path):
    env = {"VAXHUB_DATA_DIR": str(tmp_path), "VAXHUB_ENVIRONMENT": "production", "VAXHUB_CERT_PASSPHRASE": "changeme"}
    code, _, result = _run("keys", "init", env=env)
    assert code == 2 and not (tmp_path / "cert-keys").exists()
    env["VAXHUB_CERT_PASSPHRASE"] = "a long and real passphrase"
    assert _run("keys", "init", env=env)[0] == 0
    assert b"ENCRYPTED PRIVATE KEY" in next((tmp_path / "cert-keys").glob("dsc-*.key.pem")).read_bytes()
