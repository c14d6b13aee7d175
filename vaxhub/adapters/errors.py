"""Failures of the national registries, as the adapters report them.

Every adapter turns what went wrong on the wire (a socket timeout, a SOAP
Fault, an HTTP 429) into one of these, so callers never see zeep, requests
or httpx exceptions. `retryable` tells the hub's outbox worker whether the
same call may succeed later.

    vaxhub.errors.ExternalServiceError
    └── RegistryError                  a registry call failed             (.service, .retryable)
        ├── RegistryTimeout            no answer within the client's timeout          retryable
        ├── RegistryUnavailable        connection refused, HTTP 5xx without a fault   retryable
        ├── RegistryThrottled          HTTP 429 / fault Server.Throttled (.retry_after) retryable
        ├── RegistryFault              a SOAP 1.1 Fault (§4.4) or a REST problem       (.code, .detail)
        │                              retryable when the code is a Server fault
        ├── RegistryAuthenticationFailed  API key or token refused (HTTP 401/403)     not retryable
        └── RegistryProtocolError      the answer breaks the contract (bad XML,       not retryable
                                       X-Road headers not echoed, unexpected JSON)
"""

from __future__ import annotations

from vaxhub.errors import ExternalServiceError


class RegistryError(ExternalServiceError):
    """Base of every registry failure; `service` names the registry called."""

    retryable: bool = False

    def __init__(self, message: str, *, service: str):
        super().__init__(f"{service}: {message}")
        self.service = service


class RegistryTimeout(RegistryError):
    """The registry did not answer within the client's timeout."""

    retryable = True
    default_code = "timeout"


class RegistryUnavailable(RegistryError):
    """The registry could not be reached or answered with a server error."""

    retryable = True


class RegistryThrottled(RegistryError):
    """The registry refused the call for now (rate limit); `retry_after` in seconds."""

    retryable = True
    default_code = "throttled"

    def __init__(self, message: str, *, service: str, retry_after: float | None = None):
        super().__init__(message, service=service)
        self.retry_after = retry_after


class RegistryFault(RegistryError):
    """The registry answered with a fault (SOAP 1.1 §4.4 `faultcode`, e.g.
    `Client.InvalidRequest` or `Server.ServiceFailed`); `detail` is the text
    of the fault detail, when there is one."""

    def __init__(self, message: str, *, service: str, code: str, detail: str | None = None):
        super().__init__(f"{code}: {message}", service=service)
        self.code = code
        self.fault_string = message
        self.detail = detail

    @property
    def retryable(self) -> bool:  # type: ignore[override]
        return self.code.startswith("Server")


class RegistryAuthenticationFailed(RegistryError):
    """The registry refused our credentials (HTTP 401 or 403)."""

    default_code = "security"


class RegistryProtocolError(RegistryError):
    """The registry's answer does not follow the agreed contract."""

    default_code = "invalid"
