"""`SocialInsurance` over the social insurance registry's REST API, with httpx.

`GET /v1/insured-persons/{bhxh}` or `GET /v1/insured-persons?cccd=…`, and
`POST /v1/insured-persons/lookups` for many people in one call (see
`vaxhub.adapters.simulators.social_insurance_server` for the wire format),
authenticated with either

- `ApiKeyAuth`: a static key in the `X-API-Key` header, or
- `ClientCredentialsAuth`: an OAuth 2.0 client credentials token (RFC 6749
  §4.4) fetched from the token endpoint, cached until shortly before
  `expires_in` runs out, sent as `Authorization: Bearer` (RFC 6750 §2.1) and
  fetched again once if the registry answers 401 (a revoked token).

Both are `httpx.Auth` flows, so the token request goes through the same
client and transport as the data calls. Pass `transport=` (e.g.
`httpx.MockTransport`) to control the HTTP layer, and `request_headers=`, a
function called for each lookup, to add headers to it (the hub's request id
as `X-Request-ID`).

404 is "nobody", returned as None. Failures become
`vaxhub.adapters.errors` exceptions: `RegistryTimeout`, `RegistryUnavailable`
(connection errors, 5xx), `RegistryThrottled` (429, with `Retry-After`),
`RegistryAuthenticationFailed` (401/403, or the token endpoint refusing us),
`RegistryProtocolError` (an answer that is not the agreed JSON).
"""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections.abc import Callable, Generator, Mapping, Sequence
from email.utils import parsedate_to_datetime
from typing import Any

import httpx

from vaxhub.adapters.errors import (
    RegistryAuthenticationFailed,
    RegistryError,
    RegistryProtocolError,
    RegistryThrottled,
    RegistryTimeout,
    RegistryUnavailable,
)
from vaxhub.adapters.ports import Coverage, InsuranceRecord

SERVICE_NAME = "social insurance"
BATCH_LIMIT = 100  # lookups per POST /v1/insured-persons/lookups


class ApiKeyAuth(httpx.Auth):
    """A static API key in a header (`X-API-Key` by default)."""

    def __init__(self, key: str, header: str = "X-API-Key"):
        self.key, self.header = key, header

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        request.headers[self.header] = self.key
        yield request


class ClientCredentialsAuth(httpx.Auth):
    """OAuth 2.0 client credentials (RFC 6749 §4.4) with a cached Bearer token.

    The client authenticates to `token_url` with HTTP Basic (§2.3.1). The
    token is reused until `leeway` seconds before it expires.
    """

    requires_response_body = True

    def __init__(
        self,
        token_url: str,
        client_id: str,
        client_secret: str,
        *,
        scope: str | None = None,
        leeway: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.token_url = token_url
        self.client_id, self.client_secret, self.scope = client_id, client_secret, scope
        self.leeway = leeway
        self._clock = clock
        self._lock = threading.Lock()
        self._token: str | None = None
        self._expires_at = 0.0
        self.tokens_fetched = 0

    def _token_request(self) -> httpx.Request:
        form = {"grant_type": "client_credentials"}
        if self.scope:
            form["scope"] = self.scope
        request = httpx.Request("POST", self.token_url, data=form, headers={"Accept": "application/json"})
        return next(httpx.BasicAuth(self.client_id, self.client_secret).auth_flow(request))

    def _store_token(self, response: httpx.Response) -> None:
        if response.status_code in (400, 401, 403):
            raise RegistryAuthenticationFailed(
                f"token endpoint refused the client: HTTP {response.status_code} {response.text[:200]}",
                service=SERVICE_NAME,
            )
        _raise_for_status(response, "token")
        try:
            body = response.json()
            token, token_type = body["access_token"], body.get("token_type", "Bearer")
            lifetime = float(body.get("expires_in", 300))
        except (ValueError, KeyError, TypeError) as exc:
            raise RegistryProtocolError(f"token response is not RFC 6749 §5.1 JSON: {exc}",
                                        service=SERVICE_NAME) from exc
        if token_type.lower() != "bearer":
            raise RegistryProtocolError(f"token type {token_type!r} is not Bearer", service=SERVICE_NAME)
        self._token, self._expires_at = token, self._clock() + lifetime - self.leeway
        self.tokens_fetched += 1

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        with self._lock:
            if self._token is None or self._clock() >= self._expires_at:
                self._store_token((yield self._token_request()))
            token = self._token
        request.headers["Authorization"] = f"Bearer {token}"
        response = yield request
        if response.status_code == 401:
            with self._lock:
                if self._token == token:
                    self._store_token((yield self._token_request()))
                token = self._token
            request.headers["Authorization"] = f"Bearer {token}"
            yield request


class RestSocialInsurance:
    """The social insurance registry over REST.

    `base_url` is the API root (e.g. "https://bhxh.example.vn"); `timeout`
    bounds each call in seconds.
    """

    def __init__(
        self,
        base_url: str,
        *,
        auth: httpx.Auth,
        timeout: float = 10.0,
        transport: httpx.BaseTransport | None = None,
        request_headers: Callable[[], Mapping[str, str]] | None = None,
    ):
        self._request_headers = request_headers
        self._http = httpx.Client(
            base_url=base_url,
            auth=auth,
            timeout=httpx.Timeout(timeout),
            transport=transport,
            headers={"Accept": "application/json"},
        )

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> RestSocialInsurance:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def lookup(self, bhxh: str | None = None, cccd: str | None = None) -> InsuranceRecord | None:
        """SocialInsurance.lookup: by BHXH number when given, else by CCCD."""
        if bhxh:
            path, params = f"/v1/insured-persons/{bhxh.strip()}", None
        elif cccd:
            path, params = "/v1/insured-persons", {"cccd": cccd.strip()}
        else:
            raise ValueError("lookup needs a BHXH number or a CCCD")
        try:
            headers = dict(self._request_headers()) if self._request_headers else None
            response = self._http.get(path, params=params, headers=headers)
        except httpx.TimeoutException as exc:
            raise RegistryTimeout(f"GET {path} timed out", service=SERVICE_NAME) from exc
        except httpx.TransportError as exc:
            raise RegistryUnavailable(f"GET {path}: {exc}", service=SERVICE_NAME) from exc
        if response.status_code == 404:
            return None
        _raise_for_status(response, path)
        return _insurance_record(_json_object(response))

    def lookup_many(self, keys: Sequence[Mapping[str, str]]) -> list[InsuranceRecord | None]:
        """`lookup` for each key ({"bhxh": …} or {"cccd": …}), `BATCH_LIMIT` per call, in order."""
        records: list[InsuranceRecord | None] = []
        path = "/v1/insured-persons/lookups"
        for start in range(0, len(keys), BATCH_LIMIT):
            chunk = [{name: value.strip() for name, value in key.items()} for key in keys[start:start + BATCH_LIMIT]]
            try:
                headers = dict(self._request_headers()) if self._request_headers else None
                response = self._http.post(path, json={"lookups": chunk}, headers=headers)
            except httpx.TimeoutException as exc:
                raise RegistryTimeout(f"POST {path} timed out", service=SERVICE_NAME) from exc
            except httpx.TransportError as exc:
                raise RegistryUnavailable(f"POST {path}: {exc}", service=SERVICE_NAME) from exc
            _raise_for_status(response, path)
            results = _json_object(response).get("results")
            if not isinstance(results, list) or len(results) != len(chunk):
                raise RegistryProtocolError(f"POST {path}: not one result per lookup", service=SERVICE_NAME)
            for result in results:
                found = isinstance(result, dict) and result.get("found") is True
                records.append(_insurance_record(result.get("person")) if found else None)
        return records


def _raise_for_status(response: httpx.Response, what: str) -> None:
    status = response.status_code
    if status < 400:
        return
    detail = _problem_detail(response)
    error: RegistryError
    if status == 429:
        error = RegistryThrottled(f"{what}: {detail}", service=SERVICE_NAME,
                                  retry_after=_retry_after(response.headers.get("Retry-After")))
    elif status in (401, 403):
        error = RegistryAuthenticationFailed(f"{what}: HTTP {status} {detail}", service=SERVICE_NAME)
    elif status >= 500:
        error = RegistryUnavailable(f"{what}: HTTP {status} {detail}", service=SERVICE_NAME)
    else:
        error = RegistryProtocolError(f"{what}: HTTP {status} {detail}", service=SERVICE_NAME)
    raise error


def _problem_detail(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text[:200]
    if isinstance(body, dict):
        return str(body.get("detail") or body.get("title") or body.get("error") or body)
    return str(body)[:200]


def _retry_after(value: str | None) -> float | None:
    """`Retry-After` as seconds: delay-seconds or an HTTP-date (RFC 9110 §10.2.3)."""
    if not value:
        return None
    if value.strip().isdigit():
        return float(value.strip())
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, (when - dt.datetime.now(dt.timezone.utc)).total_seconds())


def _json_object(response: httpx.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError as exc:
        raise RegistryProtocolError(f"the answer is not JSON: {exc}", service=SERVICE_NAME) from exc
    if not isinstance(body, dict):
        raise RegistryProtocolError("the answer is not a JSON object", service=SERVICE_NAME)
    return body


def _insurance_record(body: Any) -> InsuranceRecord:
    try:
        coverage = body.get("coverage")
        return InsuranceRecord(
            bhxh=body["bhxh"],
            cccd=body.get("cccd"),
            full_name=body["fullName"],
            birth_date=body["birthDate"],
            sex=body["sex"],
            coverage=Coverage(
                card_number=coverage["cardNumber"],
                valid_from=dt.date.fromisoformat(coverage["validFrom"]),
                valid_to=dt.date.fromisoformat(coverage["validTo"]),
            ) if coverage else None,
        )
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise RegistryProtocolError(f"unexpected insured-person JSON: {exc}", service=SERVICE_NAME) from exc
