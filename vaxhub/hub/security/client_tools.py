"""What a client needs to log in: a key pair, a signed assertion, the token request.

Used by the `vaxhub clients keygen` and `vaxhub token` commands, the demo and
the benchmarks; real clients do the same with their own OAuth library.
"""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from vaxhub.hub.security.clients import ASSERTION_TYPE
from vaxhub.hub.security.tokens import thumbprint_kid


def generate_key(directory: Path, name: str) -> tuple[Path, Path, str]:
    """Write NAME.key.pem (private, mode 0600) and NAME.jwks.json (public); return them and the kid."""
    directory.mkdir(parents=True, exist_ok=True)
    key = ec.generate_private_key(ec.SECP256R1())
    kid = thumbprint_kid(key)
    private = directory / f"{name}.key.pem"
    private.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    private.chmod(0o600)
    public = directory / f"{name}.jwks.json"
    jwk = jwt.algorithms.ECAlgorithm.to_jwk(key.public_key(), as_dict=True)
    public.write_text(json.dumps({"keys": [{**jwk, "kid": kid, "alg": "ES256", "use": "sig"}]}, indent=2))
    return private, public, kid


def load_key(path: Path) -> ec.EllipticCurvePrivateKey:
    key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise ValueError(f"{path} is not an EC private key")
    return key


def client_assertion(client_id: str, key: ec.EllipticCurvePrivateKey, token_url: str, *, lifetime: int = 120) -> str:
    now = int(time.time())
    claims = {"iss": client_id, "sub": client_id, "aud": token_url, "iat": now, "exp": now + lifetime, "jti": uuid.uuid4().hex}
    return jwt.encode(claims, key, algorithm="ES256", headers={"kid": thumbprint_kid(key)})


def request_token(token_url: str, client_id: str, key: ec.EllipticCurvePrivateKey, scope: str | None = None, *, timeout: float = 30) -> dict[str, Any]:
    form = {"grant_type": "client_credentials", "client_assertion_type": ASSERTION_TYPE, "client_assertion": client_assertion(client_id, key, token_url)}
    if scope:
        form["scope"] = scope
    response = httpx.post(token_url, data=form, timeout=timeout)
    if response.status_code != 200:
        raise RuntimeError(f"token request refused ({response.status_code}): {response.text}")
    return response.json()
