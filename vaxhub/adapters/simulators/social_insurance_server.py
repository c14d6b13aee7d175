"""A social insurance (BHXH) registry that speaks REST/JSON over HTTP.

Endpoints:

- `POST /oauth/token`: OAuth 2.0 client credentials grant (RFC 6749 §4.4),
  client authenticated with HTTP Basic or form fields (§2.3.1); answers
  `{"access_token", "token_type": "Bearer", "expires_in"}` (§5.1) or an
  error object (§5.2: `invalid_client`, `unsupported_grant_type`).
- `GET /v1/insured-persons/{bhxh}`: the insured person with this 10-digit
  BHXH number.
- `GET /v1/insured-persons?cccd={cccd}`: the insured person holding this CCCD.
- `POST /v1/insured-persons/lookups` with `{"lookups": [{"bhxh": …} or
  {"cccd": …}, …]}` (at most `MAX_LOOKUPS`): one answer per lookup, in order,
  `{"results": [{"found": true, "person": {…}} or {"found": false}, …]}`.
  A malformed number anywhere refuses the whole request with 400.

Data calls need `X-API-Key: <key>` or `Authorization: Bearer <token>`
(RFC 6750 §2.1); without either they get 401 with `WWW-Authenticate`.
A person is answered as

    {"bhxh": "0123456789", "cccd": "001090123456", "fullName": "Nguyễn Văn An",
     "birthDate": "1990-03-04", "sex": "male",
     "coverage": {"cardNumber": "GD4010123456789", "validFrom": "2022-01-01",
                  "validTo": "2026-12-31"}}

Errors are RFC 9457 problem details (`application/problem+json`): 400 for a
malformed number, 404 for nobody, 503 for an injected failure, 429 with
`Retry-After` (whole seconds) when the rate limit is hit. The
`SimulatedConditions` apply to data calls only, not to the token endpoint.
"""

from __future__ import annotations

import asyncio
import math
import secrets
import time
from collections import deque
from collections.abc import Mapping
from typing import Any

from fastapi import FastAPI, Form, Request
from fastapi.responses import JSONResponse
from fastapi.security import HTTPBasic

from vaxhub.adapters.agreement import BHXH_PATTERN, CCCD_PATTERN
from vaxhub.adapters.ports import InsuranceRecord
from vaxhub.adapters.registry_data import SyntheticRegistry
from vaxhub.adapters.simulators.conditions import (
    ConditionedSimulator,
    ConditionsController,
    Fate,
    SimulatedConditions,
)

PROBLEM_JSON = "application/problem+json"
MAX_LOOKUPS = 100


def insurance_record_json(record: InsuranceRecord) -> dict[str, Any]:
    """The wire form of an insured person (camelCase JSON)."""
    data: dict[str, Any] = {
        "bhxh": record.bhxh,
        "cccd": record.cccd,
        "fullName": record.full_name,
        "birthDate": record.birth_date,
        "sex": record.sex,
        "coverage": None,
    }
    if record.coverage is not None:
        data["coverage"] = {
            "cardNumber": record.coverage.card_number,
            "validFrom": record.coverage.valid_from.isoformat(),
            "validTo": record.coverage.valid_to.isoformat(),
        }
    return data


def _problem(status: int, title: str, detail: str | None = None, headers: Mapping[str, str] | None = None):
    body = {"type": "about:blank", "title": title, "status": status}
    if detail:
        body["detail"] = detail
    return JSONResponse(body, status_code=status, media_type=PROBLEM_JSON, headers=dict(headers or {}))


class SocialInsuranceSimulator(ConditionedSimulator):
    """The FastAPI app and its state: registry, credentials, issued tokens, conditions.

    `api_keys` are accepted in `X-API-Key`; `oauth_clients` maps client ids
    to secrets for the token endpoint; tokens live `token_lifetime` seconds.
    """

    def __init__(
        self,
        registry: SyntheticRegistry,
        conditions: SimulatedConditions | None = None,
        *,
        api_keys: frozenset[str] | set[str] = frozenset({"demo-api-key"}),
        oauth_clients: Mapping[str, str] | None = None,
        token_lifetime: float = 300.0,
    ):
        self.registry = registry
        self.controller = ConditionsController(conditions)
        self.api_keys = frozenset(api_keys)
        self.oauth_clients = dict(oauth_clients if oauth_clients is not None else {"vaxhub": "demo-secret"})
        self.token_lifetime = token_lifetime
        self.tokens: dict[str, float] = {}  # token -> expiry (time.monotonic)
        self.tokens_issued = 0
        #: `X-Request-ID` headers of the lookups received, newest last (the caller's correlation ids).
        self.request_ids: deque[str] = deque(maxlen=10_000)
        self.app = self._build_app()

    def revoke_all_tokens(self) -> None:
        self.tokens.clear()

    def _authorised(self, request: Request) -> bool:
        if request.headers.get("x-api-key") in self.api_keys:
            return True
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        expiry = self.tokens.get(token.strip()) if scheme.lower() == "bearer" else None
        return expiry is not None and expiry > time.monotonic()

    async def _under_conditions(self, request: Request, answer) -> JSONResponse:
        if request_id := request.headers.get("x-request-id"):
            self.request_ids.append(request_id)
        if not self._authorised(request):
            return _problem(401, "Unauthorized", "send X-API-Key or a Bearer token",
                            headers={"WWW-Authenticate": 'Bearer realm="bhxh"'})
        decision = self.controller.decide()
        if decision.fate is Fate.THROTTLE:
            retry_after = str(max(1, math.ceil(decision.retry_after or 0)))
            return _problem(429, "Too Many Requests", "rate limit exceeded", headers={"Retry-After": retry_after})
        if decision.delay:
            await asyncio.sleep(decision.delay)
        if decision.fate is Fate.FAIL:
            return _problem(503, "Service Unavailable", "the social insurance registry failed to answer")
        return answer()

    def _person(self, record: InsuranceRecord | None) -> JSONResponse:
        if record is None:
            return _problem(404, "Not Found", "no insured person with this number")
        return JSONResponse(insurance_record_json(record))

    def _build_app(self) -> FastAPI:
        app = FastAPI(title="Social insurance registry (simulator)", version="1")
        basic = HTTPBasic(auto_error=False)

        @app.post("/oauth/token")
        async def issue_token(
            request: Request,
            grant_type: str = Form(...),
            client_id: str | None = Form(None),
            client_secret: str | None = Form(None),
        ):
            credentials = await basic(request)
            if credentials is not None:
                client_id, client_secret = credentials.username, credentials.password
            if grant_type != "client_credentials":
                return JSONResponse({"error": "unsupported_grant_type"}, status_code=400)
            expected = self.oauth_clients.get(client_id or "")
            if expected is None or not secrets.compare_digest(expected, client_secret or ""):
                return JSONResponse({"error": "invalid_client"}, status_code=401,
                                    headers={"WWW-Authenticate": 'Basic realm="bhxh"'})
            token = secrets.token_urlsafe(24)
            self.tokens[token] = time.monotonic() + self.token_lifetime
            self.tokens_issued += 1
            return JSONResponse(
                {"access_token": token, "token_type": "Bearer", "expires_in": int(self.token_lifetime)},
                headers={"Cache-Control": "no-store"},
            )

        @app.get("/v1/insured-persons/{bhxh}")
        async def insured_person_by_bhxh(bhxh: str, request: Request):
            def answer():
                if not BHXH_PATTERN.match(bhxh):
                    return _problem(400, "Bad Request", "a BHXH number has 10 digits")
                citizen = self.registry.by_bhxh(bhxh)
                return self._person(citizen.insurance_record() if citizen else None)

            return await self._under_conditions(request, answer)

        @app.post("/v1/insured-persons/lookups")
        async def insured_persons(request: Request):
            try:
                body = await request.json()
            except ValueError:
                body = None

            def answer():
                lookups = body.get("lookups") if isinstance(body, dict) else None
                if not isinstance(lookups, list) or not 0 < len(lookups) <= MAX_LOOKUPS:
                    return _problem(400, "Bad Request", f"send {{\"lookups\": [...]}} with 1 to {MAX_LOOKUPS} entries")
                results = []
                for key in lookups:
                    bhxh, cccd = (key.get("bhxh"), key.get("cccd")) if isinstance(key, dict) else (None, None)
                    if isinstance(bhxh, str) and BHXH_PATTERN.match(bhxh):
                        citizen = self.registry.by_bhxh(bhxh)
                    elif isinstance(cccd, str) and CCCD_PATTERN.match(cccd):
                        citizen = self.registry.by_cccd(cccd)
                    else:
                        return _problem(400, "Bad Request", "each lookup needs a 10-digit bhxh or a 12-digit cccd")
                    record = citizen.insurance_record() if citizen else None
                    results.append({"found": True, "person": insurance_record_json(record)} if record else {"found": False})
                return JSONResponse({"results": results})

            return await self._under_conditions(request, answer)

        @app.get("/v1/insured-persons")
        async def insured_person_by_cccd(request: Request, cccd: str = ""):
            def answer():
                if not CCCD_PATTERN.match(cccd):
                    return _problem(400, "Bad Request", "query parameter cccd must have 12 digits")
                citizen = self.registry.by_cccd(cccd)
                return self._person(citizen.insurance_record() if citizen else None)

            return await self._under_conditions(request, answer)

        return app


def create_social_insurance_app(
    registry: SyntheticRegistry, conditions: SimulatedConditions | None = None, **credentials: Any
) -> SocialInsuranceSimulator:
    """A social insurance simulator over `registry`; serve `.app` with uvicorn."""
    return SocialInsuranceSimulator(registry, conditions, **credentials)
