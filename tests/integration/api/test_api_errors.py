"""Bad input gets a FHIR OperationOutcome with the right 4xx, never a 500."""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.builders import patient


def _outcome(r, status: int) -> dict:
    assert r.status_code == status, r.text
    body = r.json()
    assert body["resourceType"] == "OperationOutcome"
    assert body["issue"] and body["issue"][0]["diagnostics"]
    return body


def test_unparseable_json_is_400(client):
    _outcome(client.post("/fhir/Patient", content=b'{"resourceType": "Patient",'), 400)


def test_wrong_resource_type_for_endpoint_is_400(client):
    _outcome(client.post("/fhir/Patient", json={"resourceType": "Organization", "name": "x"}), 400)


def test_invalid_birth_date_is_422_with_expression(client):
    body = _outcome(client.post("/fhir/Patient", json=patient(birth_date="1990-02-30x")), 422)
    assert body["issue"][0]["expression"] == ["Patient.birthDate"]


def test_unknown_gender_code_is_422(client):
    body = _outcome(client.post("/fhir/Patient", json=patient(gender="x")), 422)
    assert body["issue"][0]["code"] == "code-invalid"


def test_unknown_element_is_422(client):
    _outcome(client.post("/fhir/Patient", json={**patient(), "favouriteColour": "red"}), 422)


def test_unsupported_type_is_404(client):
    _outcome(client.get("/fhir/Observation/1"), 404)


def test_missing_resource_is_404(client):
    _outcome(client.get("/fhir/Patient/does-not-exist"), 404)


@pytest.mark.parametrize("path", ["/fhir/Patient/%00", "/fhir/Patient/a%00b/_history/1", "/fhir/Patient%00", "/fhir/Patient?name=%00"])
def test_control_characters_in_the_url_are_refused_and_still_audited(client, path):
    r = client.get(path)
    assert 400 <= r.status_code < 500, r.text
    # The audit trail recorded the refusal (a path's character made printable).
    events = [e["resource"] for e in client.get("/fhir/AuditEvent", params={"_count": 50}).json().get("entry", [])]
    refused = [
        ext["valueString"] for ev in events if ev["outcome"] == "4"
        for ext in ev.get("extension", []) if ext["url"] == "urn:vaxhub:request"
    ]
    assert refused and refused[0].startswith("GET /fhir/Patient"), refused
    assert not any("\x00" in text for text in refused)
    if "%00" in path.partition("?")[0]:
        assert any("\ufffd" in text for text in refused), refused


def test_non_json_content_type_is_400(client):
    _outcome(client.post("/fhir/Patient", content=b"<Patient/>", headers={"content-type": "application/xml"}), 400)


def test_unknown_search_parameter_is_ignored_unless_strict(client):
    assert client.get("/fhir/Patient", params={"shoe-size": "42"}).status_code == 200
    _outcome(client.get("/fhir/Patient", params={"shoe-size": "42"}, headers={"Prefer": "handling=strict"}), 400)


@pytest.mark.parametrize(
    "params",
    [{"birthdate": "yesterday"}, {"_count": "-1"}, {"name:fuzzy": "an"}, {"_sort": "shoe"}, {"birthdate": "ap1990"}, {"_summary": "text"}],
)
def test_bad_search_parameters_are_400(client, params):
    _outcome(client.get("/fhir/Patient", params=params), 400)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=20,
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=json_values, as_bundle=st.booleans())
def test_arbitrary_json_never_causes_a_500(client, body, as_bundle):
    if as_bundle:
        r = client.post("/fhir", content=json.dumps({"resourceType": "Bundle", "type": "transaction", "entry": body}))
    else:
        r = client.post("/fhir/Patient", content=json.dumps(body))
    assert r.status_code < 500, r.text
    if r.status_code >= 400:
        assert r.json()["resourceType"] == "OperationOutcome"
