"""Who may issue, download and verify: citizens only their own, verifiers
only verification and trust lists, everything else needs its token."""

from __future__ import annotations

import pytest

from tests.integration.certificates.conftest import HUONG

DOSES = [("208", "2021-08-02T09:00:00+07:00"), ("208", "2021-08-23T10:30:00+07:00")]


@pytest.fixture
def two_people(certs, an):
    other = certs.person(HUONG, DOSES, phone="0987654321")
    certs.verify_identities()
    return an, other


def test_citizen_issues_and_downloads_their_own(certs, two_people, sms):
    mine, _ = two_people
    me = certs.citizen(sms, "001090012345", "0912345678")
    body = certs.issue(mine, me)
    assert body["patient"] == mine
    assert certs.download(body["uvci"], "dcc.txt", me).text.startswith("HC1:")
    assert certs.raw.get(f"/certificates/patients/{mine}/latest/certificate.pdf", headers=me).status_code == 200
    assert certs.raw.get(f"/certificates/patients/{mine}", headers=me).status_code == 200


def test_citizen_cannot_reach_someone_elses_certificate(certs, two_people, sms):
    mine, theirs = two_people
    me = certs.citizen(sms, "001090012345", "0912345678")
    their_uvci = certs.issue(theirs)["uvci"]
    for method, path in [
        ("POST", f"/certificates/patients/{theirs}"),
        ("GET", f"/certificates/patients/{theirs}"),
        ("GET", f"/certificates/patients/{theirs}/latest/dcc.txt"),
        ("GET", f"/certificates/{their_uvci}"),
        ("GET", f"/certificates/{their_uvci}/dcc.txt"),
        ("GET", f"/certificates/{their_uvci}/certificate.pdf"),
    ]:
        r = certs.raw.request(method, path, headers=me)
        assert r.status_code == 404, (method, path, r.status_code)
    # the same answer as for a certificate that does not exist
    missing = certs.raw.get("/certificates/URN:UVCI:01:VN:00000000000000000000000000000000/dcc.txt", headers=me)
    assert missing.status_code == 404
    assert certs.raw.get(f"/certificates/patients/{theirs}", headers=certs.site).json()["certificates"][0]["uvci"] == their_uvci


def test_verifier_verifies_and_reads_trust_lists_only(certs, two_people):
    mine, _ = two_people
    uvci = certs.issue(mine)["uvci"]
    hc1 = certs.download(uvci, "dcc.txt").text
    verifier = certs.verifier()
    for path in (f"/fhir/Patient/{mine}", "/fhir/Immunization", f"/fhir/Patient/{mine}/$everything"):
        assert certs.raw.get(path, headers=verifier).status_code == 403, path
    assert certs.raw.post(f"/certificates/patients/{mine}", headers=verifier).status_code == 403
    for path in (f"/certificates/patients/{mine}", f"/certificates/{uvci}", f"/certificates/{uvci}/dcc.txt",
                 f"/certificates/patients/{mine}/latest/dcc.png", "/certificates/trust-lists"):
        assert certs.raw.get(path, headers=verifier).status_code == 403, path
    assert certs.raw.post("/certificates/revocations", json={"uvci": uvci, "reason": "x"}, headers=verifier).status_code == 403
    r = certs.raw.post("/certificates/verify", json={"qr": hc1}, headers=verifier)
    assert r.status_code == 200 and r.json()["valid"]
    assert certs.raw.get("/certificates/trust-list", headers=verifier).status_code == 200


def test_scopes_and_roles_are_needed(certs, two_people):
    mine, _ = two_people
    patients_only = certs.login("registry-reader", "system/Patient.rs")
    assert certs.raw.post(f"/certificates/patients/{mine}", headers=patients_only).status_code == 403
    auditor = certs.login("moh-auditor", "system/*.rs", kind="operator", roles="auditor")
    assert certs.raw.post(f"/certificates/patients/{mine}", headers=auditor).status_code == 403
    site_reader = certs.login("site-reader", "system/Patient.rs system/Immunization.rs", site="79002")
    assert certs.raw.post(f"/certificates/patients/{mine}", headers=site_reader).status_code == 201
    assert certs.raw.post("/certificates/revocations", json={"uvci": "URN:UVCI:01:VN:ABCDEF", "reason": "x"}, headers=site_reader).status_code == 403


def test_no_token_no_access_except_public_trust_material(certs, two_people):
    mine, _ = two_people
    assert certs.raw.post(f"/certificates/patients/{mine}").status_code == 401
    assert certs.raw.post("/certificates/verify", json={"qr": "HC1:ABC"}).status_code == 401
    assert certs.raw.get(f"/certificates/patients/{mine}").status_code == 401
    for path in ("/certificates/trust-list", "/certificates/revocation-list", "/shc/.well-known/jwks.json"):
        assert certs.raw.get(path).status_code == 200, path
    # the SHC issuer keys do not replace the SMART authorisation server's keys
    auth_keys = certs.raw.get("/.well-known/jwks.json").json()["keys"]
    card_keys = certs.raw.get("/shc/.well-known/jwks.json").json()["keys"]
    assert {k["kid"] for k in auth_keys}.isdisjoint({k["kid"] for k in card_keys})
    assert all("x5c" in k and "d" not in k for k in card_keys)
