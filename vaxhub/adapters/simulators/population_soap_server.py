"""A population registry that speaks SOAP 1.1 with X-Road v4.0 headers over HTTP.

The simulator serves `vaxhub/adapters/population_registry.wsdl` (at `GET
<path>?wsdl`, with the service address set to where it is reached) and
answers `POST <path>` as the WSDL describes, from a `SyntheticRegistry`.

Each request is handled in this order:

1. Parse the body with a hardened lxml parser: no DTD loading, no entity
   resolution, no network, no huge trees; a document carrying a DOCTYPE is
   refused outright (so neither XXE nor entity expansion can happen), as is a
   body over `MAX_BODY_BYTES`.
2. Check the envelope (SOAP 1.1 §4): Envelope, Header, Body with one child;
   a header block we do not know marked `mustUnderstand="1"` is refused
   (SOAP 1.1 §4.2.3, faultcode MustUnderstand).
3. Validate each X-Road header (PR-MESS §2.2: `client`, `service`, `id` and
   `protocolVersion` present, `protocolVersion` 4.x, `serviceCode` naming
   the body's wrapper element, §2.3) and the body against the inline XSD.
4. Apply the `SimulatedConditions` (latency, errors, hangs, rate limit).
5. Answer with the `<Operation>Response` wrapper, copying the request's X-Road
   headers in the same order with the same values (PR-MESS §2.2).

Faults (SOAP 1.1 §4.4, HTTP 500 per §6.2) carry the request's X-Road headers
when they could be read (PR-MESS §2.5) and a `faultDetail` with a reason:
`Client.InvalidRequest`, `Client.UnknownOperation`, `MustUnderstand`,
`Server.ServiceFailed`. Rate limiting answers HTTP 429 with a `Retry-After`
header (whole seconds, RFC 9110 §10.2.3) and a `Server.Throttled` fault whose
detail gives `retryAfterSeconds` exactly, so a SOAP client that only sees
the fault still learns when to come back.
"""

from __future__ import annotations

import asyncio
import copy
import math
from collections import deque
from importlib import resources

from lxml import etree
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from vaxhub.adapters.fakes import verify_against_registry
from vaxhub.adapters.ports import PersonClaim, VerificationStatus
from vaxhub.adapters.registry_data import SyntheticRegistry
from vaxhub.adapters.simulators.conditions import (
    ConditionedSimulator,
    ConditionsController,
    Fate,
    SimulatedConditions,
)

SOAP_ENV = "http://schemas.xmlsoap.org/soap/envelope/"
XROAD = "http://x-road.eu/xsd/xroad.xsd"
XROAD_ID = "http://x-road.eu/xsd/identifiers"
REGISTRY_NS = "urn:vaxhub:population-registry:v1"
WSDL_NS = "http://schemas.xmlsoap.org/wsdl/"
WSDL_SOAP_NS = "http://schemas.xmlsoap.org/wsdl/soap/"
XSD_NS = "http://www.w3.org/2001/XMLSchema"

MAX_BODY_BYTES = 256 * 1024  # a VerifyCitizens of 100 claims with long names fits
DEFAULT_PATH = "/population-registry"
OPERATIONS = ("VerifyCitizen", "VerifyCitizens", "LookupByOldId")
REQUIRED_HEADERS = ("client", "service", "id", "protocolVersion")

_WIRE_FIELDS = {"full_name": "fullName", "birth_date": "birthDate", "sex": "sex"}


def wsdl_text() -> bytes:
    """The registry's WSDL as shipped in the package."""
    return resources.files("vaxhub.adapters").joinpath("population_registry.wsdl").read_bytes()


def safe_xml_parser() -> etree.XMLParser:
    """An lxml parser that never loads DTDs, resolves entities or touches the network."""
    return etree.XMLParser(
        resolve_entities=False,
        no_network=True,
        load_dtd=False,
        dtd_validation=False,
        huge_tree=False,
        remove_pis=True,
    )


class _InlineSchemaResolver(etree.Resolver):
    """Serves the WSDL's inline schemas to lxml by name; refuses anything else."""

    def __init__(self, documents: dict[str, bytes]):
        super().__init__()
        self._documents = documents

    def resolve(self, url, pubid, context):
        name = url.rsplit("/", 1)[-1]
        if name in self._documents:
            return self.resolve_string(self._documents[name], context)
        raise etree.XMLSchemaParseError(f"schema {url!r} is not part of the WSDL")


def load_message_schema(wsdl: bytes | None = None) -> etree.XMLSchema:
    """An XMLSchema of every element in the WSDL's `<types>` (headers and bodies).

    The inline schemas import each other by namespace only (WSDL 1.1 §2.2);
    each is given a local name and served through a resolver, so building
    the schema reads nothing outside the WSDL.
    """
    definitions = etree.fromstring(wsdl or wsdl_text(), safe_xml_parser())
    schemas = definitions.findall(f"{{{WSDL_NS}}}types/{{{XSD_NS}}}schema")
    names = {schema.get("targetNamespace"): f"inline-{i}.xsd" for i, schema in enumerate(schemas)}
    documents: dict[str, bytes] = {}
    for schema in schemas:
        # A fresh root carrying every in-scope prefix: QName values such as
        # type="id:XRoadClientIdentifierType" need their declarations.
        standalone = etree.Element(schema.tag, attrib=dict(schema.attrib),
                                   nsmap=dict(schema.nsmap))
        standalone.extend(copy.deepcopy(child) for child in schema)
        for imported in standalone.findall(f"{{{XSD_NS}}}import"):
            imported.set("schemaLocation", names[imported.get("namespace")])
        documents[names[schema.get("targetNamespace")]] = etree.tostring(standalone)
    bundle = etree.Element(f"{{{XSD_NS}}}schema", nsmap={"xs": XSD_NS})
    for namespace, name in names.items():
        etree.SubElement(bundle, f"{{{XSD_NS}}}import", namespace=namespace, schemaLocation=name)
    parser = safe_xml_parser()
    parser.resolvers.add(_InlineSchemaResolver(documents))
    return etree.XMLSchema(etree.fromstring(etree.tostring(bundle), parser))


class SoapFault(Exception):
    """A fault to send back instead of an answer."""

    def __init__(self, code: str, message: str, *, status: int = 500,
                 retry_after: float | None = None):
        super().__init__(message)
        self.code, self.message, self.status, self.retry_after = code, message, status, retry_after


class PopulationRegistrySimulator(ConditionedSimulator):
    """The ASGI app and its state: registry, conditions, schema.

    `app` is a Starlette application; mount it or run it with uvicorn.
    Change `conditions` between tests; it resets the RNG and rate window.
    """

    def __init__(
        self,
        registry: SyntheticRegistry,
        conditions: SimulatedConditions | None = None,
        *,
        path: str = DEFAULT_PATH,
    ):
        self.registry = registry
        self.controller = ConditionsController(conditions)
        self.path = path
        #: `X-Request-ID` headers of the calls received, newest last (the caller's correlation ids).
        self.request_ids: deque[str] = deque(maxlen=10_000)
        self._wsdl = wsdl_text()
        self._schema = load_message_schema(self._wsdl)
        self.app = Starlette(routes=[Route(path, self._endpoint, methods=["GET", "POST"])])

    async def _endpoint(self, request: Request) -> Response:
        if request.method == "GET":
            if any(key.lower() == "wsdl" for key in request.query_params):
                return Response(self.served_wsdl(str(request.url.replace(query=""))),
                                media_type="text/xml; charset=utf-8")
            return Response("GET ?wsdl for the service description\n", status_code=404)
        if request_id := request.headers.get("x-request-id"):
            self.request_ids.append(request_id)
        body = bytearray()
        async for chunk in request.stream():
            body += chunk
            if len(body) > MAX_BODY_BYTES:  # stop reading; the size check below refuses it
                break
        return await self.answer(bytes(body))

    def served_wsdl(self, address: str) -> bytes:
        """The WSDL with `soap:address` pointing at `address` (WSDL 1.1 §3.8)."""
        definitions = etree.fromstring(self._wsdl, safe_xml_parser())
        for location in definitions.iter(f"{{{WSDL_SOAP_NS}}}address"):
            location.set("location", address)
        return etree.tostring(definitions, xml_declaration=True, encoding="UTF-8")

    async def answer(self, body: bytes) -> Response:
        headers: list[etree._Element] = []
        try:
            envelope = self._parse_envelope(body)
            headers = self._read_headers(envelope)
            payload = self._read_body(envelope, headers)
            decision = self.controller.decide()
            if decision.fate is Fate.THROTTLE:
                raise SoapFault("Server.Throttled", "rate limit exceeded, retry later",
                                status=429, retry_after=decision.retry_after)
            if decision.delay:
                await asyncio.sleep(decision.delay)
            if decision.fate is Fate.FAIL:
                raise SoapFault("Server.ServiceFailed", "the population registry failed to answer")
            response_payload = self._operate(payload)
        except SoapFault as fault:
            return self._fault_response(fault, headers)
        return self._xml_response(self._envelope(headers, response_payload), 200)

    # -- reading the request ----------------------------------------------

    def _parse_envelope(self, body: bytes) -> etree._Element:
        if len(body) > MAX_BODY_BYTES:
            raise SoapFault("Client.InvalidRequest", f"request larger than {MAX_BODY_BYTES} bytes")
        try:
            root = etree.fromstring(body, safe_xml_parser())
        except etree.XMLSyntaxError as exc:
            raise SoapFault("Client.InvalidRequest", f"not well-formed XML: {exc.msg}") from None
        docinfo = root.getroottree().docinfo
        if docinfo.doctype or docinfo.internalDTD is not None:
            raise SoapFault("Client.InvalidRequest", "a DOCTYPE is not allowed in a SOAP message")
        if root.tag != f"{{{SOAP_ENV}}}Envelope":
            raise SoapFault("Client.InvalidRequest", "the root element is not a SOAP 1.1 Envelope")
        return root

    def _read_headers(self, envelope: etree._Element) -> list[etree._Element]:
        """The X-Road header blocks, checked (PR-MESS §2.2; SOAP 1.1 §4.2.3)."""
        header = envelope.find(f"{{{SOAP_ENV}}}Header")
        blocks = [child for child in (header if header is not None else []) if isinstance(child.tag, str)]
        xroad_headers = [block for block in blocks if etree.QName(block).namespace == XROAD]
        for block in blocks:
            if block not in xroad_headers and block.get(f"{{{SOAP_ENV}}}mustUnderstand") == "1":
                raise SoapFault("MustUnderstand", f"header {block.tag} is not understood")
        self._check_xroad_headers(xroad_headers)
        return xroad_headers

    def _read_body(self, envelope: etree._Element, xroad_headers: list[etree._Element]) -> etree._Element:
        """The one wrapper element of the Body, validated (PR-MESS §2.3)."""
        body = envelope.find(f"{{{SOAP_ENV}}}Body")
        if body is None:
            raise SoapFault("Client.InvalidRequest", "the Envelope has no Body")
        payloads = [child for child in body if isinstance(child.tag, str)]
        if len(payloads) != 1:
            raise SoapFault("Client.InvalidRequest", "the Body must hold exactly one element")
        payload = payloads[0]
        name = etree.QName(payload)
        if name.namespace != REGISTRY_NS or name.localname not in OPERATIONS:
            raise SoapFault("Client.UnknownOperation", f"no operation {name.text}")
        service_code = xroad_headers_by_name(xroad_headers)["service"].findtext(f"{{{XROAD_ID}}}serviceCode")
        if service_code != name.localname:
            raise SoapFault("Client.InvalidRequest",
                            f"serviceCode {service_code!r} does not name the body element {name.localname!r}")
        self._validate(payload)
        return payload

    def _check_xroad_headers(self, blocks: list[etree._Element]) -> None:
        by_name = xroad_headers_by_name(blocks)
        if len(by_name) != len(blocks):
            raise SoapFault("Client.InvalidRequest", "an X-Road header appears twice")
        missing = [name for name in REQUIRED_HEADERS if name not in by_name]
        if missing:
            raise SoapFault("Client.InvalidRequest", f"missing X-Road header(s): {', '.join(missing)}")
        version = (by_name["protocolVersion"].text or "").strip()
        if version.split(".")[0] != "4":
            raise SoapFault("Client.InvalidRequest", f"protocolVersion {version!r} is not 4.x")
        for block in blocks:
            self._validate(block)

    def _validate(self, element: etree._Element) -> None:
        if not self._schema.validate(element):
            error = self._schema.error_log.last_error
            raise SoapFault("Client.InvalidRequest",
                            f"{etree.QName(element).localname}: {error.message if error else 'invalid'}")

    # -- answering ---------------------------------------------------------

    def _operate(self, payload: etree._Element) -> etree._Element:
        operation = etree.QName(payload).localname
        if operation == "VerifyCitizen":
            return self._verdict(_element("VerifyCitizenResponse"), payload)
        if operation == "VerifyCitizens":
            return self._verify_citizens(payload)
        return self._lookup_by_old_id(payload)

    def _verify_citizens(self, payload: etree._Element) -> etree._Element:
        response = _element("VerifyCitizensResponse")
        for citizen in payload.iterfind(f"{{{REGISTRY_NS}}}citizen"):
            result = _sub(response, "result")
            _sub(result, "ref", citizen.findtext(f"{{{REGISTRY_NS}}}ref"))
            self._verdict(_sub(result, "verdict"), citizen.find(f"{{{REGISTRY_NS}}}claim"))
        return response

    def _verdict(self, response: etree._Element, claimed: etree._Element) -> etree._Element:
        """Fill `response` (a CitizenVerdict) with the registry's answer to `claimed` (a CitizenClaim)."""
        def text(name: str) -> str | None:
            return claimed.findtext(f"{{{REGISTRY_NS}}}{name}")

        claim = PersonClaim(
            full_name=text("fullName") or "",
            birth_date=text("birthDate") or "",
            sex=text("sex") or "",
            cccd=text("personalId"),
            cmnd=text("oldId"),
        )
        result = verify_against_registry(self.registry, claim)
        _sub(response, "outcome", {
            VerificationStatus.VERIFIED: "VERIFIED",
            VerificationStatus.MISMATCH: "MISMATCH",
            VerificationStatus.NOT_FOUND: "NOT_FOUND",
        }[result.status])
        if result.current_id:
            _sub(response, "currentId", result.current_id)
        if result.status in (VerificationStatus.VERIFIED, VerificationStatus.MISMATCH):
            for field, wire_name in _WIRE_FIELDS.items():
                check = _sub(response, "fieldCheck")
                _sub(check, "field", wire_name)
                _sub(check, "agrees", "false" if field in result.mismatches else "true")
                if field in result.mismatches:
                    registry_value = result.mismatches[field][1]
                    if registry_value is not None:
                        _sub(check, "registryValue", registry_value)
        return response

    def _lookup_by_old_id(self, payload: etree._Element) -> etree._Element:
        citizen = self.registry.by_cmnd(payload.findtext(f"{{{REGISTRY_NS}}}oldId") or "")
        response = _element("LookupByOldIdResponse")
        _sub(response, "found", "true" if citizen else "false")
        if citizen:
            _sub(response, "currentId", citizen.cccd)
        return response

    def _envelope(self, headers: list[etree._Element], payload: etree._Element) -> etree._Element:
        envelope = etree.Element(f"{{{SOAP_ENV}}}Envelope", nsmap={"SOAP-ENV": SOAP_ENV})
        if headers:
            header = etree.SubElement(envelope, f"{{{SOAP_ENV}}}Header")
            for block in headers:
                header.append(copy.deepcopy(block))
        etree.SubElement(envelope, f"{{{SOAP_ENV}}}Body").append(payload)
        return envelope

    def _fault_response(self, fault: SoapFault, headers: list[etree._Element]) -> Response:
        fault_element = etree.Element(f"{{{SOAP_ENV}}}Fault")
        etree.SubElement(fault_element, "faultcode").text = f"SOAP-ENV:{fault.code}"
        etree.SubElement(fault_element, "faultstring").text = fault.message
        detail = _sub(etree.SubElement(fault_element, "detail"), "faultDetail")
        _sub(detail, "reason", fault.message)
        extra_headers = {}
        if fault.retry_after is not None:
            _sub(detail, "retryAfterSeconds", f"{max(fault.retry_after, 0.0):.3f}")
            extra_headers["Retry-After"] = str(max(1, math.ceil(fault.retry_after)))
        return self._xml_response(self._envelope(headers, fault_element), fault.status, extra_headers)

    @staticmethod
    def _xml_response(envelope: etree._Element, status: int, headers: dict[str, str] | None = None) -> Response:
        return Response(
            etree.tostring(envelope, xml_declaration=True, encoding="UTF-8"),
            status_code=status,
            media_type="text/xml; charset=utf-8",
            headers=headers,
        )


def xroad_headers_by_name(blocks: list[etree._Element]) -> dict[str, etree._Element]:
    return {etree.QName(block).localname: block for block in blocks}


def _element(name: str) -> etree._Element:
    return etree.Element(f"{{{REGISTRY_NS}}}{name}", nsmap={"pr": REGISTRY_NS})


def _sub(parent: etree._Element, name: str, text: str | None = None) -> etree._Element:
    child = etree.SubElement(parent, f"{{{REGISTRY_NS}}}{name}")
    if text is not None:
        child.text = text
    return child


def create_population_registry_app(
    registry: SyntheticRegistry, conditions: SimulatedConditions | None = None, *, path: str = DEFAULT_PATH
) -> PopulationRegistrySimulator:
    """A population registry simulator over `registry`; serve `.app` with uvicorn."""
    return PopulationRegistrySimulator(registry, conditions, path=path)
