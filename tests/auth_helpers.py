"""Keys, client assertions and tokens for tests, made the way a real client makes them."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import ec

from vaxhub.hub.security.clients import ASSERTION_TYPE


@dataclass
class ClientKey:
    private: ec.EllipticCurvePrivateKey
    kid: str

    @classmethod
    def generate(cls) -> "ClientKey":
        return cls(ec.generate_private_key(ec.SECP256R1()), uuid.uuid4().hex[:12])

    def jwks(self) -> dict[str, Any]:
        jwk = jwt.algorithms.ECAlgorithm.to_jwk(self.private.public_key(), as_dict=True)
        return {"keys": [{**jwk, "kid": self.kid, "alg": "ES256", "use": "sig"}]}


def assertion(client_id: str, key: ClientKey, token_url: str, *, headers: dict | None = None, **claims: Any) -> str:
    now = int(time.time())
    body = {"iss": client_id, "sub": client_id, "aud": token_url, "exp": now + 120, "iat": now, "jti": uuid.uuid4().hex, **claims}
    return jwt.encode(body, key.private, algorithm="ES256", headers={"kid": key.kid, **(headers or {})})


def token_form(client_assertion: str, scope: str | None = None) -> dict[str, str]:
    form = {"grant_type": "client_credentials", "client_assertion_type": ASSERTION_TYPE, "client_assertion": client_assertion}
    if scope:
        form["scope"] = scope
    return form
