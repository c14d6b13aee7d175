"""The hub's own signing key and the access tokens it issues and accepts.

Access tokens are JWTs signed ES256 with the hub key. Verification pins that
one algorithm and requires `exp`, `nbf`, `iat`, `iss`, `aud`, `sub` and `jti`
(PyJWT accepts a token without `exp` unless told to require it), looks the
`kid` up among the hub's keys only, and allows a bounded clock skew.

A client sends the same token with every request until it expires, so each
process keeps the tokens it verified (at most `VERIFIED_TOKENS`, the least
recently used dropped first) and checks only their time limits again: a
signature check costs more than the rest of a small request's
authentication. The key is the whole token, signature included, so an
altered token is never found there.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import time
import threading
import uuid
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from vaxhub.errors import AuthenticationFailed
from vaxhub.hub.security.principal import Principal
from vaxhub.hub.security.scopes import format_scopes, parse_scopes

ALGORITHM = "ES256"
VERIFIED_TOKENS = 4096


def load_or_create_signing_key(path: Path, *, create: bool) -> ec.EllipticCurvePrivateKey:
    """The hub key from a PEM file; created (mode 0600) when allowed and missing."""
    if path.exists():
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
        if not isinstance(key, ec.EllipticCurvePrivateKey) or key.curve.name != "secp256r1":
            raise ValueError(f"{path} must hold a P-256 EC private key")
        return key
    if not create:
        raise FileNotFoundError(f"the hub signing key {path} does not exist (set VAXHUB_AUTH_SIGNING_KEY_FILE)")
    path.parent.mkdir(parents=True, exist_ok=True)
    key = ec.generate_private_key(ec.SECP256R1())
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    # O_EXCL: when several processes start at once, one writes and the others read its key.
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        time.sleep(0.2)
        return load_or_create_signing_key(path, create=False)
    with os.fdopen(fd, "wb") as out:
        out.write(pem)
    return key


def public_jwk(key: ec.EllipticCurvePrivateKey, kid: str) -> dict[str, Any]:
    jwk = jwt.algorithms.ECAlgorithm.to_jwk(key.public_key(), as_dict=True)
    return {**jwk, "kid": kid, "alg": ALGORITHM, "use": "sig"}


def thumbprint_kid(key: ec.EllipticCurvePrivateKey) -> str:
    """RFC 7638 thumbprint of the public key, so the kid changes with the key."""
    jwk = jwt.algorithms.ECAlgorithm.to_jwk(key.public_key(), as_dict=True)
    canonical = json.dumps({k: jwk[k] for k in ("crv", "kty", "x", "y")}, separators=(",", ":"), sort_keys=True)
    return base64.urlsafe_b64encode(hashlib.sha256(canonical.encode()).digest()).rstrip(b"=").decode()


@dataclass
class TokenService:
    key: ec.EllipticCurvePrivateKey
    issuer: str
    audience: str
    leeway: int = 60
    clock: Callable[[], float] = time.time

    def __post_init__(self) -> None:
        self.kid = thumbprint_kid(self.key)
        self._public = self.key.public_key()
        # token -> (principal, nbf, exp, iat) of tokens that passed every check
        self._verified: OrderedDict[str, tuple[Principal, float, float, float]] = OrderedDict()
        self._verified_lock = threading.Lock()

    def jwks(self) -> dict[str, Any]:
        return {"keys": [public_jwk(self.key, self.kid)]}

    def issue(self, principal: Principal, lifetime: int) -> tuple[str, int]:
        now = int(self.clock())
        claims: dict[str, Any] = {
            "iss": self.issuer,
            "aud": self.audience,
            "sub": principal.subject,
            "iat": now,
            "nbf": now,
            "exp": now + lifetime,
            "jti": uuid.uuid4().hex,
            "kind": principal.kind,
            "scope": format_scopes(list(principal.scopes)),
        }
        for claim, value in (("client_id", principal.client_id), ("site", principal.site_code), ("patient", principal.patient_id)):
            if value:
                claims[claim] = value
        if principal.roles:
            claims["roles"] = sorted(principal.roles)
        token = jwt.encode(claims, self.key, algorithm=ALGORITHM, headers={"kid": self.kid, "typ": "JWT"})
        return token, lifetime

    def verify(self, token: str) -> Principal:
        with self._verified_lock:
            known = self._verified.get(token)
            if known is not None:
                self._verified.move_to_end(token)
        if known is not None:
            principal, nbf, exp, iat = known
            now = time.time()  # the clock PyJWT checks exp and nbf against
            if nbf - self.leeway <= now < exp + self.leeway and iat <= self.clock() + self.leeway:
                return principal
        principal, claims = self._verify_signed(token)
        with self._verified_lock:
            self._verified[token] = (principal, claims["nbf"], claims["exp"], claims["iat"])
            if len(self._verified) > VERIFIED_TOKENS:
                self._verified.popitem(last=False)
        return principal

    def _verify_signed(self, token: str) -> tuple[Principal, dict[str, Any]]:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise AuthenticationFailed("The access token is not a JWT") from None
        if header.get("alg") != ALGORITHM:
            raise AuthenticationFailed(f"Access tokens are signed {ALGORITHM}; {header.get('alg')!r} is refused")
        if header.get("kid") != self.kid:
            raise AuthenticationFailed("The access token's key id is not one of the hub's keys")
        try:
            claims = jwt.decode(
                token,
                self._public,
                algorithms=[ALGORITHM],
                audience=self.audience,
                issuer=self.issuer,
                leeway=self.leeway,
                options={"require": ["exp", "nbf", "iat", "iss", "aud", "sub", "jti"]},
            )
        except jwt.ExpiredSignatureError:
            raise AuthenticationFailed("The access token has expired") from None
        except jwt.ImmatureSignatureError:
            raise AuthenticationFailed("The access token is not valid yet") from None
        except jwt.InvalidAudienceError:
            raise AuthenticationFailed("The access token is for another audience") from None
        except jwt.InvalidIssuerError:
            raise AuthenticationFailed("The access token comes from another issuer") from None
        except jwt.PyJWTError as exc:
            raise AuthenticationFailed(f"The access token is not valid: {exc}") from None
        if claims["iat"] > self.clock() + self.leeway:
            raise AuthenticationFailed("The access token was issued in the future")
        principal = Principal(
            kind=claims.get("kind", ""),
            subject=claims["sub"],
            client_id=claims.get("client_id"),
            site_code=claims.get("site"),
            patient_id=claims.get("patient"),
            scopes=tuple(parse_scopes(claims.get("scope", ""))),
            roles=frozenset(claims.get("roles", [])),
            token_id=claims["jti"],
        )
        return principal, claims
