"""Registered clients and SMART Backend Services client assertions.

hl7.org/fhir/smart-app-launch/backend-services.html: a client proves who it
is with a JWT signed by one of its registered keys (`private_key_jwt`). The
assertion must have `iss` = `sub` = the client id, `aud` = the token URL, an
`exp` no more than five minutes ahead, and a `jti` never seen before. The
algorithm is pinned per registered key: the key's `alg`, or the one its type
implies (EC P-256 → ES256, P-384 → ES384, RSA → RS384), so `none` and HS/RS
confusion can never be chosen by the caller.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Callable

import jwt
from sqlalchemy import Engine, delete, insert, select, update
from sqlalchemy.exc import IntegrityError

from vaxhub.errors import AuthenticationFailed, InvalidResource
from vaxhub.hub.security.principal import OPERATOR, SYSTEM, VERIFIER
from vaxhub.hub.security.scopes import Scope, parse_scopes
from vaxhub.hub.storage.engine import write_transaction
from vaxhub.hub.security.tables import ClientRow, UsedAssertionRow

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
MAX_ASSERTION_LIFETIME = 300
CLIENT_KINDS = (SYSTEM, VERIFIER, OPERATOR)
_IMPLIED_ALG = {("EC", "P-256"): "ES256", ("EC", "P-384"): "ES384", ("RSA", None): "RS384"}
ACCEPTED_ALGS = {"ES256", "ES384", "RS384", "RS256", "PS256", "PS384"}


def key_algorithm(jwk: dict[str, Any]) -> str:
    """The one algorithm a registered key may sign with."""
    alg = jwk.get("alg") or _IMPLIED_ALG.get((jwk.get("kty"), jwk.get("crv") if jwk.get("kty") == "EC" else None))
    if alg not in ACCEPTED_ALGS:
        raise InvalidResource(f"key {jwk.get('kid')!r}: algorithm {alg!r} is not accepted (use ES256, ES384 or RS384)")
    return alg


def decode_with_keys(token: str, keys: list[dict[str, Any]], *, what: str, audience: str, issuer: str, leeway: int, require: list[str]) -> dict[str, Any]:
    """Verify a JWT against a set of registered public keys, the algorithm pinned by the key its `kid` names."""
    try:
        header = jwt.get_unverified_header(token)
    except jwt.PyJWTError:
        raise AuthenticationFailed(f"The {what} is not a JWT") from None
    jwk = next((k for k in keys if k.get("kid") == header.get("kid")), None)
    if jwk is None:
        raise AuthenticationFailed(f"The {what}'s kid is not registered")
    alg = key_algorithm(jwk)
    if header.get("alg") != alg:
        raise AuthenticationFailed(f"This key signs {alg}; a {what} signed {header.get('alg')!r} is refused")
    try:
        return jwt.decode(
            token,
            jwt.PyJWK(jwk, algorithm=alg).key,
            algorithms=[alg],
            audience=audience,
            issuer=issuer,
            leeway=leeway,
            options={"require": require},
        )
    except jwt.ExpiredSignatureError:
        raise AuthenticationFailed(f"The {what} has expired") from None
    except jwt.InvalidAudienceError:
        raise AuthenticationFailed(f"The {what}'s aud must be {audience}") from None
    except jwt.PyJWTError as exc:
        raise AuthenticationFailed(f"The {what} is not valid: {exc}") from None


@dataclass(frozen=True)
class Client:
    client_id: str
    name: str
    kind: str
    site_code: str | None
    scopes: tuple[Scope, ...]
    roles: frozenset[str]
    jwks: dict[str, Any]


def _utc(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, timezone.utc).replace(tzinfo=None)


class ClientRegistry:
    def __init__(self, engine: Engine, *, leeway: int = 60, clock: Callable[[], float] = time.time):
        self.engine = engine
        self.leeway = leeway
        self.clock = clock

    def register(
        self,
        client_id: str,
        *,
        name: str,
        kind: str,
        jwks: dict[str, Any],
        scopes: str,
        site_code: str | None = None,
        roles: str = "",
    ) -> Client:
        """Add or replace a client. Every key needs a `kid` and an accepted algorithm."""
        if kind not in CLIENT_KINDS:
            raise InvalidResource(f"kind must be one of {', '.join(CLIENT_KINDS)}")
        keys = jwks.get("keys") if isinstance(jwks, dict) else None
        if not keys:
            raise InvalidResource("a client needs a JWKS with at least one key")
        for jwk in keys:
            if not jwk.get("kid"):
                raise InvalidResource("every registered key needs a kid")
            if "d" in jwk or "p" in jwk:
                raise InvalidResource(f"key {jwk['kid']!r} is a private key; register the public key only")
            key_algorithm(jwk)
            jwt.PyJWK(jwk, algorithm=key_algorithm(jwk))  # refuses malformed keys now, not at first login
        parse_scopes(scopes)
        row = {
            "client_id": client_id,
            "name": name,
            "kind": kind,
            "site_code": site_code,
            "scopes": scopes,
            "roles": roles,
            "jwks": {"keys": keys},
            "created": _utc(self.clock()),
            "disabled": False,
        }
        with write_transaction(self.engine) as conn:
            conn.execute(delete(ClientRow).where(ClientRow.client_id == client_id))
            conn.execute(insert(ClientRow).values(**row))
        return self.get(client_id)

    def get(self, client_id: str) -> Client:
        with self.engine.connect() as conn:
            row = conn.execute(select(ClientRow).where(ClientRow.client_id == client_id)).first()
        if row is None or row.disabled:
            raise AuthenticationFailed("Unknown or disabled client")
        return Client(row.client_id, row.name, row.kind, row.site_code, tuple(parse_scopes(row.scopes)), frozenset(row.roles.split()), row.jwks)

    def disable(self, client_id: str) -> None:
        with write_transaction(self.engine) as conn:
            conn.execute(update(ClientRow).where(ClientRow.client_id == client_id).values(disabled=True))

    def authenticate(self, assertion: str, token_url: str) -> Client:
        """The client whose valid, fresh, never-used assertion this is."""
        try:
            unverified = jwt.decode(assertion, options={"verify_signature": False})
        except jwt.PyJWTError:
            raise AuthenticationFailed("client_assertion is not a JWT") from None
        # The unverified iss only selects whose keys to try; the signature then proves it.
        client = self.get(str(unverified.get("iss", "")))
        claims = decode_with_keys(
            assertion, client.jwks["keys"], what="client assertion", audience=token_url, issuer=client.client_id,
            leeway=self.leeway, require=["exp", "iss", "sub", "aud", "jti"],
        )
        if claims["sub"] != client.client_id:
            raise AuthenticationFailed("The client assertion's sub must equal its iss")
        now = self.clock()
        if claims["exp"] > now + MAX_ASSERTION_LIFETIME + self.leeway:
            raise AuthenticationFailed("The client assertion may be valid for five minutes at most")
        self._spend_jti(client.client_id, str(claims["jti"]), claims["exp"])
        return client

    def _spend_jti(self, client_id: str, jti: str, exp: float) -> None:
        now = self.clock()
        try:
            with write_transaction(self.engine) as conn:
                conn.execute(delete(UsedAssertionRow).where(UsedAssertionRow.expires < _utc(now)))
                conn.execute(insert(UsedAssertionRow).values(client_id=client_id, jti=jti, expires=_utc(exp + self.leeway)))
        except IntegrityError:
            raise AuthenticationFailed("This client assertion was used before (jti replay)") from None


