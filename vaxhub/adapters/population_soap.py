"""`PopulationRegistry` over SOAP 1.1 and X-Road v4.0, with zeep.

The client is built from the registry's WSDL (a URL such as
`http://host/population-registry?wsdl`, or the file shipped in this package)
with zeep's XML hardening on (`forbid_dtd`, `forbid_entities`,
`forbid_external`), and a `zeep.Transport` with a load timeout and an
operation timeout; pass your own `transport` (or a `requests.Session`) to
control the HTTP layer. `http_headers`, called before each operation, adds
HTTP headers to it (the hub sends its request id as `X-Request-ID`, so the
registry's logs can be matched with ours).

Each call carries fresh X-Road headers (PR-MESS §2.2): the configured
`client` and `service` identifiers with the operation's `serviceCode`, a new
UUID `id`, the `userId` and `protocolVersion` 4.0; the response must copy
them back, and a response that does not is a `RegistryProtocolError`.

Failures become `vaxhub.adapters.errors` exceptions: a read or connect
timeout is `RegistryTimeout`, a refused connection `RegistryUnavailable`, a
fault `Server.Throttled` (or HTTP 429) `RegistryThrottled`, any other SOAP
Fault (SOAP 1.1 §4.4) `RegistryFault` with its faultcode.

`verify_many` sends up to `BATCH_LIMIT` claims in one `VerifyCitizens` call
when the WSDL offers it (each claim numbered by its position, each verdict
matched back by that `ref`; a reply that does not answer every claim once is
a `RegistryProtocolError`), and falls back to one `VerifyCitizen` each.

A sync client suffices here: verification runs in the hub's outbox workers,
never inside a request a hospital waits on.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping, Sequence
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests
import zeep
import zeep.exceptions
import zeep.helpers
from lxml import etree

from vaxhub.adapters.agreement import CMND_PATTERN, claim_identifier, claim_problem
from vaxhub.adapters.errors import (
    RegistryFault,
    RegistryProtocolError,
    RegistryThrottled,
    RegistryTimeout,
    RegistryUnavailable,
)
from vaxhub.adapters.ports import PersonClaim, VerificationResult, VerificationStatus

SERVICE_NAME = "population registry"
PROTOCOL_VERSION = "4.0"
BINDING = "{urn:vaxhub:population-registry:v1}PopulationRegistryBinding"
SHIPPED_WSDL = Path(__file__).with_name("population_registry.wsdl")
BATCH_LIMIT = 100  # claims per VerifyCitizens (the WSDL's maxOccurs)

_OUTCOMES = {
    "VERIFIED": VerificationStatus.VERIFIED,
    "MISMATCH": VerificationStatus.MISMATCH,
    "NOT_FOUND": VerificationStatus.NOT_FOUND,
}
_PORT_FIELDS = {"fullName": "full_name", "birthDate": "birth_date", "sex": "sex"}


@dataclass(frozen=True)
class XRoadMember:
    """An X-Road member or subsystem (PR-MESS §1.3, §2.1): `SUBSYSTEM:VN/GOV/000.00.00.H26/vaxhub`."""

    instance: str
    member_class: str
    member_code: str
    subsystem_code: str | None = None

    def client_header(self) -> dict[str, Any]:
        header: dict[str, Any] = {
            "objectType": "SUBSYSTEM" if self.subsystem_code else "MEMBER",
            "xRoadInstance": self.instance,
            "memberClass": self.member_class,
            "memberCode": self.member_code,
        }
        if self.subsystem_code:
            header["subsystemCode"] = self.subsystem_code
        return header

    def service_header(self, service_code: str, service_version: str | None) -> dict[str, Any]:
        header = self.client_header() | {"objectType": "SERVICE", "serviceCode": service_code}
        if service_version:
            header["serviceVersion"] = service_version
        return header


#: Identifiers used by the demo and tests (any values work with the simulator).
DEMO_CLIENT = XRoadMember("VN", "GOV", "000.00.00.H26", "vaxhub")
DEMO_PROVIDER = XRoadMember("VN", "GOV", "000.00.00.C06", "dancu")


class SoapPopulationRegistry:
    """The population registry, reached with zeep through an X-Road security server.

    `wsdl` is a URL or a file (default: the WSDL shipped here); `address`
    overrides the WSDL's `soap:address`. `timeout` bounds each operation in
    seconds; `load_timeout` bounds fetching the WSDL.
    """

    def __init__(
        self,
        wsdl: str | Path = SHIPPED_WSDL,
        *,
        address: str | None = None,
        client: XRoadMember = DEMO_CLIENT,
        provider: XRoadMember = DEMO_PROVIDER,
        service_version: str | None = "v1",
        user_id: str | None = None,
        timeout: float = 10.0,
        load_timeout: float = 30.0,
        transport: zeep.Transport | None = None,
        session: requests.Session | None = None,
        strict: bool = True,
        new_message_id: Callable[[], str] = lambda: str(uuid.uuid4()),
        http_headers: Callable[[], Mapping[str, str]] | None = None,
    ):
        self.client_id = client
        self._http_headers = http_headers
        self.provider = provider
        self.service_version = service_version
        self.user_id = user_id
        self._new_message_id = new_message_id
        self.transport = transport or zeep.Transport(
            session=session, timeout=load_timeout, operation_timeout=timeout
        )
        settings = zeep.Settings(strict=strict, forbid_dtd=True, forbid_entities=True, forbid_external=True)
        try:
            self._zeep = zeep.Client(str(wsdl), transport=self.transport, settings=settings)
        except requests.Timeout as exc:
            raise RegistryTimeout(f"loading the WSDL timed out: {exc}", service=SERVICE_NAME) from exc
        except requests.ConnectionError as exc:
            raise RegistryUnavailable(f"cannot load the WSDL: {exc}", service=SERVICE_NAME) from exc
        self._service = (
            self._zeep.create_service(BINDING, address) if address else self._zeep.service
        )
        self._batch_operation = "VerifyCitizens" in self._zeep.wsdl.bindings[BINDING]._operations
        #: X-Road headers of the last request sent and of its response.
        self.last_request_headers: dict[str, Any] | None = None
        self.last_response_headers: dict[str, Any] | None = None

    # -- the port ----------------------------------------------------------

    def verify(self, claim: PersonClaim) -> VerificationResult:
        """PopulationRegistry.verify over the `VerifyCitizen` operation."""
        wire = _wire_claim(claim)
        if isinstance(wire, VerificationResult):
            return wire
        return _verdict(claim, self._call("VerifyCitizen", **wire))

    @property
    def verifies_in_batches(self) -> bool:
        """Whether the registry's WSDL offers `VerifyCitizens`."""
        return self._batch_operation

    def verify_many(self, claims: Sequence[PersonClaim]) -> list[VerificationResult]:
        """`verify` for each claim, over `VerifyCitizens`: one call per
        `BATCH_LIMIT` claims, each claim's verdict matched back by its ref.
        A fault fails the whole call (every claim in it is retried)."""
        if not self._batch_operation:
            return [self.verify(claim) for claim in claims]
        results: list[VerificationResult | None] = [None] * len(claims)
        sent: list[tuple[int, dict[str, Any]]] = []
        for index, claim in enumerate(claims):
            wire = _wire_claim(claim)
            if isinstance(wire, VerificationResult):
                results[index] = wire  # refused here, never sent
            else:
                sent.append((index, {"ref": str(index), "claim": wire}))
        for start in range(0, len(sent), BATCH_LIMIT):
            chunk = sent[start:start + BATCH_LIMIT]
            body = self._call("VerifyCitizens", citizen=[citizen for _, citizen in chunk])
            verdicts = {result.ref: result.verdict for result in (body.result or [])}
            if len(verdicts) != len(chunk) or set(verdicts) != {citizen["ref"] for _, citizen in chunk}:
                raise RegistryProtocolError("VerifyCitizens did not answer each claim once", service=SERVICE_NAME)
            for index, citizen in chunk:
                results[index] = _verdict(claims[index], verdicts[citizen["ref"]])
        return results  # type: ignore[return-value]  # every slot is filled above

    def lookup_by_old_id(self, cmnd: str) -> str | None:
        """PopulationRegistry.lookup_by_old_id over the `LookupByOldId` operation."""
        if not CMND_PATTERN.match(cmnd.strip()):
            raise ValueError(f"not an old identity card number: {cmnd!r}")
        body = self._call("LookupByOldId", oldId=cmnd.strip())
        return body.currentId if body.found else None

    # -- the wire ----------------------------------------------------------

    def xroad_headers(self, service_code: str) -> dict[str, Any]:
        """Fresh X-Road request headers for one call (PR-MESS §2.2)."""
        headers: dict[str, Any] = {
            "client": self.client_id.client_header(),
            "service": self.provider.service_header(service_code, self.service_version),
            "id": self._new_message_id(),
            "protocolVersion": PROTOCOL_VERSION,
        }
        if self.user_id:
            headers["userId"] = self.user_id
        return headers

    def _call(self, operation: str, **body: Any) -> Any:
        headers = self.xroad_headers(operation)
        self.last_request_headers, self.last_response_headers = headers, None
        extra = dict(self._http_headers()) if self._http_headers else None
        # zeep's settings override is thread-local: concurrent calls keep their own headers.
        scoped = self._zeep.settings(extra_http_headers=extra) if extra else nullcontext()
        try:
            with scoped:
                result = getattr(self._service, operation)(_soapheaders=headers, **body)
        except requests.Timeout as exc:
            raise RegistryTimeout(f"{operation} timed out", service=SERVICE_NAME) from exc
        except requests.ConnectionError as exc:
            raise RegistryUnavailable(f"{operation}: cannot connect: {exc}", service=SERVICE_NAME) from exc
        except zeep.exceptions.Fault as fault:
            raise _fault_error(fault) from fault
        except zeep.exceptions.TransportError as exc:
            raise _transport_error(operation, exc) from exc
        except zeep.exceptions.Error as exc:
            raise RegistryProtocolError(f"{operation}: {exc}", service=SERVICE_NAME) from exc
        echoed = _header_values(result.header)
        self.last_response_headers = echoed
        if echoed.get("id") != headers["id"] or echoed.get("service", {}).get("serviceCode") != operation:
            raise RegistryProtocolError(
                f"{operation}: the response does not echo the request's X-Road headers",
                service=SERVICE_NAME,
            )
        return result.body


def _wire_claim(claim: PersonClaim) -> dict[str, Any] | VerificationResult:
    """A claim as the registry's `CitizenClaim`, or the ERROR result for a claim
    that cannot be sent (no well-formed identifier, a field missing)."""
    problem = claim_problem(claim)
    identifier = claim_identifier(claim)
    if problem or identifier is None:
        return VerificationResult(VerificationStatus.ERROR, message=problem)
    kind, value = identifier
    return {
        "personalId" if kind == "cccd" else "oldId": value,
        "fullName": claim.full_name,
        "birthDate": claim.birth_date.strip(),
        "sex": claim.sex,
    }


def _verdict(claim: PersonClaim, body: Any) -> VerificationResult:
    """A `CitizenVerdict` as the port's result; a verdict that contradicts itself is a protocol error."""
    status = _OUTCOMES.get(body.outcome)
    if status is None:
        raise RegistryProtocolError(f"unknown outcome {body.outcome!r}", service=SERVICE_NAME)
    claimed = {"full_name": claim.full_name, "birth_date": claim.birth_date.strip(), "sex": claim.sex}
    mismatches = {
        _PORT_FIELDS[check.field]: (claimed[_PORT_FIELDS[check.field]], check.registryValue)
        for check in (body.fieldCheck or [])
        if not check.agrees
    }
    if (status is VerificationStatus.MISMATCH) != bool(mismatches):
        raise RegistryProtocolError("outcome and field checks disagree", service=SERVICE_NAME)
    return VerificationResult(status, current_id=body.currentId, mismatches=mismatches)


def _header_values(header: Any) -> dict[str, Any]:
    """zeep's response header object as plain dicts and strings."""
    values = zeep.helpers.serialize_object(header, target_cls=dict) if header is not None else {}
    return {name: (dict(value) if isinstance(value, dict) else value) for name, value in values.items()}


def _fault_error(fault: zeep.exceptions.Fault) -> Exception:
    code = (fault.code or "Server").rsplit(":", 1)[-1]
    detail = fault.detail
    reason = retry_after = None
    if detail is not None:
        reason = _detail_text(detail, "reason")
        seconds = _detail_text(detail, "retryAfterSeconds")
        retry_after = float(seconds) if seconds else None
    if code == "Server.Throttled":
        return RegistryThrottled(fault.message or "throttled", service=SERVICE_NAME, retry_after=retry_after)
    return RegistryFault(fault.message or code, service=SERVICE_NAME, code=code, detail=reason)


def _detail_text(detail: etree._Element, name: str) -> str | None:
    for element in detail.iter():
        if isinstance(element.tag, str) and etree.QName(element).localname == name:
            return (element.text or "").strip() or None
    return None


def _transport_error(operation: str, exc: zeep.exceptions.TransportError) -> Exception:
    if exc.status_code == 429:
        return RegistryThrottled(f"{operation}: HTTP 429", service=SERVICE_NAME)
    if exc.status_code >= 500:
        return RegistryUnavailable(f"{operation}: HTTP {exc.status_code}", service=SERVICE_NAME)
    return RegistryProtocolError(f"{operation}: HTTP {exc.status_code}: {exc.message}", service=SERVICE_NAME)
