"""The SOAP population registry on the wire: X-Road v4.0 headers, faults,
hostile XML and the served WSDL (PR-MESS §2.2–§3.2, SOAP 1.1 §4.4)."""

from __future__ import annotations

import httpx
import pytest
import zeep
from lxml import etree

from vaxhub.adapters.errors import RegistryProtocolError
from vaxhub.adapters.population_soap import SHIPPED_WSDL, SoapPopulationRegistry
from vaxhub.adapters.ports import PersonClaim
from vaxhub.adapters.registry_data import SAMPLE_CITIZENS
from vaxhub.adapters.simulators.background import serve_in_background
from vaxhub.adapters.simulators.population_soap_server import MAX_BODY_BYTES

AN = SAMPLE_CITIZENS[0]
NS = {
    "soap": "http://schemas.xmlsoap.org/soap/envelope/",
    "xrd": "http://x-road.eu/xsd/xroad.xsd",
    "id": "http://x-road.eu/xsd/identifiers",
    "pr": "urn:vaxhub:population-registry:v1",
}

X_ROAD_HEADERS = """
    <xrd:client id:objectType="SUBSYSTEM">
      <id:xRoadInstance>VN</id:xRoadInstance><id:memberClass>GOV</id:memberClass>
      <id:memberCode>000.00.00.H26</id:memberCode><id:subsystemCode>vaxhub</id:subsystemCode>
    </xrd:client>
    <xrd:service id:objectType="SERVICE">
      <id:xRoadInstance>VN</id:xRoadInstance><id:memberClass>GOV</id:memberClass>
      <id:memberCode>000.00.00.C06</id:memberCode><id:subsystemCode>dancu</id:subsystemCode>
      <id:serviceCode>{service_code}</id:serviceCode><id:serviceVersion>v1</id:serviceVersion>
    </xrd:service>
    <xrd:userId>VN001090012345</xrd:userId>
    <xrd:id>4894e35d-bf0f-44a6-867a-8e51f1daa7e0</xrd:id>
    <xrd:protocolVersion>{version}</xrd:protocolVersion>"""


def envelope(body: str, *, service_code: str = "LookupByOldId", version: str = "4.0",
             headers: str | None = None, prolog: str = "") -> bytes:
    header_xml = X_ROAD_HEADERS.format(service_code=service_code, version=version) if headers is None else headers
    return f"""{prolog}<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/"
      xmlns:xrd="http://x-road.eu/xsd/xroad.xsd" xmlns:id="http://x-road.eu/xsd/identifiers"
      xmlns:pr="urn:vaxhub:population-registry:v1">
  <soapenv:Header>{header_xml}</soapenv:Header>
  <soapenv:Body>{body}</soapenv:Body>
</soapenv:Envelope>""".encode()


LOOKUP_AN = f"<pr:LookupByOldId><pr:oldId>{AN.cmnd}</pr:oldId></pr:LookupByOldId>"


def post(sims, payload: bytes) -> tuple[httpx.Response, etree._Element]:
    response = httpx.post(sims.population_url, content=payload,
                          headers={"Content-Type": "text/xml; charset=utf-8", "SOAPAction": '""'})
    return response, etree.fromstring(response.content)


def fault_code(document: etree._Element) -> str:
    return document.findtext("soap:Body/soap:Fault/faultcode", namespaces=NS)


# -- X-Road headers -------------------------------------------------------------


def test_response_copies_the_request_headers_in_order_and_value(sims):
    response, document = post(sims, envelope(LOOKUP_AN))
    assert response.status_code == 200
    request_headers = etree.fromstring(envelope(LOOKUP_AN)).find("soap:Header", NS)
    response_headers = document.find("soap:Header", NS)
    assert [etree.QName(h).localname for h in response_headers] == [
        "client", "service", "userId", "id", "protocolVersion"]
    for sent, echoed in zip(request_headers, response_headers, strict=True):
        assert etree.tostring(sent, method="c14n", exclusive=True) == etree.tostring(
            echoed, method="c14n", exclusive=True)
    assert document.findtext("soap:Body/pr:LookupByOldIdResponse/pr:currentId", namespaces=NS) == AN.cccd


def test_zeep_client_sends_fresh_headers_and_checks_the_echo(sims):
    ids = iter(["msg-1", "msg-2"])
    client = SoapPopulationRegistry(sims.population_wsdl_url, user_id="VN0001", new_message_id=lambda: next(ids))
    client.lookup_by_old_id(AN.cmnd)
    assert client.last_response_headers["id"] == "msg-1"
    client.lookup_by_old_id(AN.cmnd)
    echoed = client.last_response_headers
    assert echoed["id"] == "msg-2"
    assert echoed["protocolVersion"] == "4.0" and echoed["userId"] == "VN0001"
    assert echoed["client"] == {"objectType": "SUBSYSTEM", "xRoadInstance": "VN", "memberClass": "GOV",
                                "memberCode": "000.00.00.H26", "subsystemCode": "vaxhub"}
    assert echoed["service"]["serviceCode"] == "LookupByOldId"
    assert echoed["service"]["objectType"] == "SERVICE"


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (envelope(LOOKUP_AN, version="3.1"), "protocolVersion"),
        (envelope(LOOKUP_AN, service_code="VerifyCitizen"), "serviceCode"),
        (envelope(LOOKUP_AN, headers="<xrd:id>x</xrd:id><xrd:protocolVersion>4.0</xrd:protocolVersion>"),
         "missing X-Road header"),
        (envelope("<pr:LookupByOldId><pr:oldId>12345</pr:oldId></pr:LookupByOldId>"), "oldId"),
        (envelope("<pr:LookupByOldId><pr:cmnd>012345678</pr:cmnd></pr:LookupByOldId>"), "cmnd"),
        (envelope(""), "exactly one element"),
        (b"<soapenv:Envelope xmlns:soapenv='http://schemas.xmlsoap.org/soap/envelope/'><soapenv:Body>",
         "well-formed"),
        (b"<Envelope/>", "SOAP 1.1 Envelope"),
    ],
    ids=["old-protocol", "service-code-mismatch", "missing-headers", "schema-pattern", "unknown-element",
         "empty-body", "truncated", "not-soap"],
)
def test_malformed_request_is_a_client_fault(sims, payload, reason):
    response, document = post(sims, payload)
    assert response.status_code == 500
    assert fault_code(document) == "SOAP-ENV:Client.InvalidRequest"
    assert reason in document.findtext("soap:Body/soap:Fault/faultstring", namespaces=NS)


def test_unknown_operation_is_a_client_fault(sims):
    response, document = post(sims, envelope("<pr:DeleteCitizen><pr:oldId>012345678</pr:oldId></pr:DeleteCitizen>",
                                             service_code="DeleteCitizen"))
    assert response.status_code == 500
    assert fault_code(document) == "SOAP-ENV:Client.UnknownOperation"
    assert document.find("soap:Header/xrd:id", NS) is not None  # faults echo the headers too


def test_unknown_header_that_must_be_understood_is_refused(sims):
    headers = X_ROAD_HEADERS.format(service_code="LookupByOldId", version="4.0") + (
        '<sec:Security xmlns:sec="urn:example:security" soapenv:mustUnderstand="1"/>')
    _, document = post(sims, envelope(LOOKUP_AN, headers=headers))
    assert fault_code(document) == "SOAP-ENV:MustUnderstand"


def test_rate_limit_answers_http_429_with_retry_after(sims):
    from vaxhub.adapters.simulators.conditions import SimulatedConditions

    sims.population.conditions = SimulatedConditions(rate_limit=0, rate_window=5.0)
    response, document = post(sims, envelope(LOOKUP_AN))
    assert response.status_code == 429
    assert response.headers["Retry-After"] == "5"
    assert fault_code(document) == "SOAP-ENV:Server.Throttled"


# -- hostile XML ------------------------------------------------------------------


def test_external_entity_envelope_is_refused_without_reading_the_file(sims):
    xxe = envelope(
        "<pr:VerifyCitizen><pr:personalId>001090012345</pr:personalId><pr:fullName>&leak;</pr:fullName>"
        "<pr:birthDate>1990</pr:birthDate><pr:sex>male</pr:sex></pr:VerifyCitizen>",
        service_code="VerifyCitizen",
        prolog='<?xml version="1.0"?><!DOCTYPE soapenv:Envelope [<!ENTITY leak SYSTEM "file:///etc/passwd">]>',
    )
    response, document = post(sims, xxe)
    assert response.status_code == 500
    assert fault_code(document) == "SOAP-ENV:Client.InvalidRequest"
    assert "DOCTYPE" in document.findtext("soap:Body/soap:Fault/faultstring", namespaces=NS)
    assert b"root:" not in response.content


def test_entity_expansion_bomb_is_refused(sims):
    entities = '<!ENTITY a "aaaaaaaaaa">' + "".join(
        f'<!ENTITY {chr(98 + i)} "{("&" + chr(97 + i) + ";") * 10}">' for i in range(8))
    bomb = envelope("<pr:LookupByOldId><pr:oldId>&i;</pr:oldId></pr:LookupByOldId>",
                    prolog=f"<!DOCTYPE soapenv:Envelope [{entities}]>")
    response, document = post(sims, bomb)
    assert response.status_code == 500
    assert fault_code(document) == "SOAP-ENV:Client.InvalidRequest"
    assert len(response.content) < 4096


def test_oversized_request_is_refused(sims):
    padding = "<!--" + "x" * (MAX_BODY_BYTES + 1000) + "-->"
    response, document = post(sims, envelope(LOOKUP_AN + padding))
    assert fault_code(document) == "SOAP-ENV:Client.InvalidRequest"


def test_client_refuses_a_response_carrying_a_dtd():
    from starlette.applications import Starlette
    from starlette.responses import Response
    from starlette.routing import Route

    hostile = (b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY leak SYSTEM "file:///etc/passwd">]>'
               b'<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/">'
               b'<soapenv:Body>&leak;</soapenv:Body></soapenv:Envelope>')

    async def answer(request):
        return Response(hostile, media_type="text/xml")

    with serve_in_background(Starlette(routes=[Route("/", answer, methods=["POST"])])) as server:
        client = SoapPopulationRegistry(address=server.url + "/", timeout=2.0)
        with pytest.raises(RegistryProtocolError):
            client.lookup_by_old_id(AN.cmnd)


# -- the served WSDL ----------------------------------------------------------------


def test_served_wsdl_is_the_shipped_one_with_the_live_address(sims):
    response = httpx.get(sims.population_wsdl_url)
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/xml")
    served = etree.fromstring(response.content)
    address = served.find(".//{http://schemas.xmlsoap.org/wsdl/soap/}address")
    assert address.get("location") == sims.population_url
    shipped = etree.parse(str(SHIPPED_WSDL)).getroot()
    shipped.find(".//{http://schemas.xmlsoap.org/wsdl/soap/}address").set("location", sims.population_url)
    assert etree.tostring(served, method="c14n") == etree.tostring(shipped, method="c14n")


def test_zeep_consumes_the_served_wsdl_with_xml_hardening(sims):
    settings = zeep.Settings(strict=True, forbid_dtd=True, forbid_entities=True, forbid_external=True)
    client = zeep.Client(sims.population_wsdl_url, settings=settings)
    port = client.wsdl.services["PopulationRegistryService"].ports["PopulationRegistryPort"]
    assert sorted(port.binding._operations) == ["LookupByOldId", "VerifyCitizen", "VerifyCitizens"]
    assert port.binding_options["address"] == sims.population_url
    verify = port.binding._operations["VerifyCitizen"]
    assert [name for name, _ in verify.input.header.type.elements] == [
        "client", "service", "id", "userId", "protocolVersion"]


def test_client_built_from_the_served_wsdl_calls_the_served_address(sims):
    client = SoapPopulationRegistry(sims.population_wsdl_url)
    assert client.lookup_by_old_id(AN.cmnd) == AN.cccd


def test_a_batch_reply_that_leaves_a_claim_unanswered_is_a_protocol_error(sims):
    from starlette.applications import Starlette
    from starlette.responses import Response
    from starlette.routing import Route

    async def drop_last_verdict(request):
        answered = await sims.population.answer(await request.body())
        document = etree.fromstring(answered.body)
        results = document.findall(".//{urn:vaxhub:population-registry:v1}result")
        results[-1].getparent().remove(results[-1])
        return Response(etree.tostring(document), media_type="text/xml")

    claims = [PersonClaim(c.full_name, c.birth_date, c.sex, cccd=c.cccd) for c in SAMPLE_CITIZENS]
    with serve_in_background(Starlette(routes=[Route("/", drop_last_verdict, methods=["POST"])])) as server:
        client = SoapPopulationRegistry(address=server.url + "/", timeout=2.0)
        assert client.verifies_in_batches
        with pytest.raises(RegistryProtocolError, match="each claim once"):
            client.verify_many(claims)
    honest = SoapPopulationRegistry(sims.population_wsdl_url, timeout=2.0)
    assert [r.status for r in honest.verify_many(claims)] == [honest.verify(c).status for c in claims]
