"""Citizen login with a national e-ID token, verified against the identity provider's JWKS over HTTP."""

from __future__ import annotations

import time

import jwt
import pytest
from fastapi import FastAPI

from tests.auth_helpers import ClientKey
from tests.builders import patient
from tests.conftest import running_hub
from vaxhub.adapters.simulators.background import serve_in_background
from vaxhub.hub.api.auth import TOKEN_EXCHANGE, JWT_TOKEN_TYPE
from vaxhub.hub.security.citizen_login import ExternalIdentityProvider

ISSUER = "https://eid.example.vn"


@pytest.fixture(scope="module")
def idp():
    """A stand-in national e-ID provider publishing its JWKS on loopback HTTP."""
    key = ClientKey.generate()
    app = FastAPI()
    app.get("/.well-known/jwks.json")(lambda: key.jwks())
    with serve_in_background(app) as server:
        yield key, f"{server.url}/.well-known/jwks.json"


def id_token(key: ClientKey, cccd: str | None = None, **overrides) -> str:
    now = int(time.time())
    claims = {"iss": ISSUER, "aud": "urn:vaxhub:fhir", "sub": "eid-user-1", "iat": now, "exp": now + 300, "cccd": cccd, **overrides}
    return jwt.encode({k: v for k, v in claims.items() if v is not None}, key.private, algorithm="ES256", headers={"kid": key.kid})


@pytest.fixture
def eid_hub(engine, tmp_path, sms, idp):
    key, url = idp
    provider = ExternalIdentityProvider(issuer=ISSUER, audience="urn:vaxhub:fhir", jwks_url=url)
    with running_hub(engine, tmp_path / "hub-data", sms, eid=provider) as (app, raw, login):
        admin = login("national-admin", "system/*.cruds")
        yield raw, admin, key


def exchange(raw, token: str):
    return raw.post("/auth/token", data={"grant_type": TOKEN_EXCHANGE, "subject_token": token, "subject_token_type": JWT_TOKEN_TYPE})


def test_eid_token_becomes_a_patient_token(eid_hub):
    raw, admin, key = eid_hub
    pid = raw.post("/fhir/Patient", json=patient("079090012345"), headers=admin).json()["id"]
    r = exchange(raw, id_token(key, "079090012345"))
    assert r.status_code == 200, r.text
    assert r.json()["patient"] == pid and r.json()["scope"].startswith("patient/")
    me = raw.get(f"/fhir/Patient/{pid}", headers={"authorization": f"Bearer {r.json()['access_token']}"})
    assert me.status_code == 200


@pytest.mark.parametrize(
    "overrides",
    [{"iss": "https://evil.example"}, {"aud": "urn:other"}, {"exp": int(time.time()) - 600}, {"cccd": None}],
    ids=["wrong-iss", "wrong-aud", "expired", "no-cccd"],
)
def test_bad_eid_tokens_are_refused(eid_hub, overrides):
    raw, admin, key = eid_hub
    raw.post("/fhir/Patient", json=patient("079090012345"), headers=admin)
    r = exchange(raw, id_token(key, **{"cccd": "079090012345", **overrides}))
    assert r.status_code == 400 and r.json()["error"] == "invalid_grant"


def test_eid_token_signed_by_another_key_is_refused(eid_hub):
    raw, admin, key = eid_hub
    raw.post("/fhir/Patient", json=patient("079090012345"), headers=admin)
    impostor = ClientKey(ClientKey.generate().private, key.kid)  # same kid, different key
    assert exchange(raw, id_token(impostor, "079090012345")).status_code == 400


def test_eid_for_a_person_with_no_record_is_refused(eid_hub):
    raw, _admin, key = eid_hub
    assert exchange(raw, id_token(key, "079090099999")).json()["error"] == "invalid_grant"
