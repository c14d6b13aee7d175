"""Every way of presenting a bad token or assertion is refused."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
import uuid

import jwt
import pytest
from cryptography.hazmat.primitives import serialization

from tests.auth_helpers import ClientKey, assertion, token_form
from tests.conftest import TOKEN_URL


def _hub_token(app, **overrides) -> str:
    """A token signed with the hub's own key, with chosen claims: only the claims are wrong."""
    tokens = app.state.tokens
    now = int(time.time())
    claims = {"iss": tokens.issuer, "aud": tokens.audience, "sub": "national-admin", "iat": now, "nbf": now, "exp": now + 300,
              "jti": uuid.uuid4().hex, "kind": "system", "client_id": "national-admin", "scope": "system/*.cruds"}
    claims.update(overrides)
    claims = {k: v for k, v in claims.items() if v is not None}
    return jwt.encode(claims, tokens.key, algorithm="ES256", headers={"kid": tokens.kid})


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _hs256(header: dict, claims: dict, secret: bytes) -> str:
    head, body = _b64(json.dumps(header).encode()), _b64(json.dumps(claims).encode())
    return f"{head}.{body}.{_b64(hmac.new(secret, f'{head}.{body}'.encode(), hashlib.sha256).digest())}"


def _get(raw, token: str | None):
    headers = {"authorization": f"Bearer {token}"} if token else {}
    return raw.get("/fhir/Patient", headers=headers)


def test_a_correct_hub_token_is_accepted(hub):
    app, raw, _login = hub
    assert _get(raw, _hub_token(app)).status_code == 200


def test_no_token_is_401_with_www_authenticate(hub):
    _app, raw, _login = hub
    r = _get(raw, None)
    assert r.status_code == 401
    assert r.headers["www-authenticate"].startswith("Bearer")
    assert r.json()["resourceType"] == "OperationOutcome"


@pytest.mark.parametrize(
    "claims",
    [
        {"exp": int(time.time()) - 3600},  # expired
        {"nbf": int(time.time()) + 3600, "iat": int(time.time())},  # not yet valid
        {"aud": "urn:someone-else"},  # wrong audience
        {"iss": "urn:another-hub"},  # wrong issuer
        {"exp": None},  # no expiry at all
        {"jti": None},
    ],
    ids=["expired", "not-yet-valid", "wrong-aud", "wrong-iss", "no-exp", "no-jti"],
)
def test_tokens_with_bad_claims_are_refused(hub, claims):
    app, raw, _login = hub
    assert _get(raw, _hub_token(app, **claims)).status_code == 401


def test_alg_none_is_refused(hub):
    app, raw, _login = hub
    tokens = app.state.tokens
    now = int(time.time())
    unsigned = jwt.encode({"iss": tokens.issuer, "aud": tokens.audience, "sub": "x", "iat": now, "nbf": now, "exp": now + 60, "jti": "1",
                           "scope": "system/*.cruds"}, None, algorithm="none", headers={"kid": tokens.kid})
    assert _get(raw, unsigned).status_code == 401


def test_hs256_signed_with_the_public_key_is_refused(hub):
    app, raw, _login = hub
    tokens = app.state.tokens
    public_pem = tokens.key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    now = int(time.time())
    claims = {"iss": tokens.issuer, "aud": tokens.audience, "sub": "x", "iat": now, "nbf": now, "exp": now + 60, "jti": "1", "scope": "system/*.cruds"}
    # PyJWT itself refuses to HMAC with a PEM key, so the forgery is built by hand as an attacker would.
    assert _get(raw, _hs256({"alg": "HS256", "typ": "JWT", "kid": tokens.kid}, claims, public_pem)).status_code == 401


def test_token_signed_by_an_unregistered_key_is_refused(hub):
    app, raw, _login = hub
    stranger = ClientKey.generate()
    tokens = app.state.tokens
    now = int(time.time())
    forged = jwt.encode({"iss": tokens.issuer, "aud": tokens.audience, "sub": "x", "iat": now, "nbf": now, "exp": now + 60, "jti": "1",
                         "scope": "system/*.cruds"}, stranger.private, algorithm="ES256", headers={"kid": stranger.kid})
    assert _get(raw, forged).status_code == 401
    # Even claiming the hub's kid does not help: the signature is checked with the hub key.
    forged_kid = jwt.encode({"iss": tokens.issuer, "aud": tokens.audience, "sub": "x", "iat": now, "nbf": now, "exp": now + 60, "jti": "1"},
                            stranger.private, algorithm="ES256", headers={"kid": tokens.kid})
    assert _get(raw, forged_kid).status_code == 401


# ----------------------------------------------------------------- client assertions


@pytest.fixture
def registered(hub):
    app, raw, _login = hub
    key = ClientKey.generate()
    app.state.clients.register("site-79001", name="Trạm Y tế Bến Nghé", kind="system", jwks=key.jwks(),
                               scopes="system/Patient.cruds system/Immunization.cruds", site_code="79001")
    return raw, key


def test_valid_assertion_gets_a_short_lived_token_with_granted_scopes(registered):
    raw, key = registered
    r = raw.post("/auth/token", data=token_form(assertion("site-79001", key, TOKEN_URL), scope="system/Immunization.cu system/Observation.r"))
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["token_type"] == "Bearer" and body["expires_in"] <= 300
    assert body["scope"] == "system/Immunization.cu"
    assert r.headers["cache-control"] == "no-store"


def test_replayed_assertion_jti_is_refused(registered):
    raw, key = registered
    signed = assertion("site-79001", key, TOKEN_URL)
    assert raw.post("/auth/token", data=token_form(signed)).status_code == 200
    again = raw.post("/auth/token", data=token_form(signed))
    assert again.status_code == 401
    assert again.json()["error"] == "invalid_client"


@pytest.mark.parametrize(
    "claims",
    [
        {"aud": "http://testserver/other"},
        {"sub": "someone-else"},
        {"exp": int(time.time()) + 3600},  # valid far longer than five minutes
        {"exp": int(time.time()) - 600},
    ],
    ids=["wrong-aud", "sub-not-iss", "exp-too-far", "expired"],
)
def test_bad_assertions_are_refused(registered, claims):
    raw, key = registered
    r = raw.post("/auth/token", data=token_form(assertion("site-79001", key, TOKEN_URL, **claims)))
    assert r.status_code == 401 and r.json()["error"] == "invalid_client"


def test_assertion_with_unregistered_kid_is_refused(registered):
    raw, key = registered
    other = ClientKey.generate()
    r = raw.post("/auth/token", data=token_form(assertion("site-79001", other, TOKEN_URL)))
    assert r.status_code == 401
    assert "kid" in r.json()["error_description"]


def test_assertion_with_another_algorithm_than_the_keys_is_refused(registered):
    raw, key = registered
    public_pem = key.private.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    now = int(time.time())
    claims = {"iss": "site-79001", "sub": "site-79001", "aud": TOKEN_URL, "exp": now + 60, "jti": uuid.uuid4().hex}
    r = raw.post("/auth/token", data=token_form(_hs256({"alg": "HS256", "kid": key.kid}, claims, public_pem)))
    assert r.status_code == 401


def test_unknown_grant_type_and_missing_assertion(registered):
    raw, _key = registered
    assert raw.post("/auth/token", data={"grant_type": "password", "username": "a"}).json()["error"] == "unsupported_grant_type"
    assert raw.post("/auth/token", data={"grant_type": "client_credentials"}).json()["error"] == "invalid_request"


def test_smart_configuration_and_jwks_are_published(hub):
    _app, raw, _login = hub
    config = raw.get("/.well-known/smart-configuration").json()
    assert config["token_endpoint"].endswith("/auth/token")
    assert "private_key_jwt" in config["token_endpoint_auth_methods_supported"]
    keys = raw.get("/.well-known/jwks.json").json()["keys"]
    assert keys[0]["alg"] == "ES256" and "d" not in keys[0]


def test_a_token_verified_before_is_still_refused_once_it_expires(hub):
    app, raw, _login = hub
    tokens = app.state.tokens
    token = _hub_token(app, exp=int(time.time()) + 2)
    tokens.leeway, leeway = 0, tokens.leeway
    try:
        assert _get(raw, token).status_code == 200  # verified, and kept as verified
        time.sleep(2.2)
        r = _get(raw, token)
        assert r.status_code == 401 and "expired" in r.text
    finally:
        tokens.leeway = leeway


def test_an_altered_copy_of_a_verified_token_is_refused(hub):
    app, raw, _login = hub
    token = _hub_token(app)
    assert _get(raw, token).status_code == 200
    head, body, signature = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    widened = _b64(json.dumps({**claims, "scope": "system/*.cruds system/*.*", "sub": "someone-else"}).encode())
    assert _get(raw, f"{head}.{widened}.{signature}").status_code == 401
    flipped = signature[:-2] + ("AA" if signature[-2:] != "AA" else "BB")
    assert _get(raw, f"{head}.{body}.{flipped}").status_code == 401


def test_verified_tokens_kept_are_bounded(hub, monkeypatch):
    from vaxhub.hub.security import tokens as token_module

    app, raw, _login = hub
    monkeypatch.setattr(token_module, "VERIFIED_TOKENS", 3)
    for _ in range(5):
        assert _get(raw, _hub_token(app)).status_code == 200
    assert len(app.state.tokens._verified) == 3
