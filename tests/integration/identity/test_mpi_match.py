"""Patient/$match (hl7.org/fhir/R4/patient-operation-match.html): persons, best
first, with a score and a match grade; onlyCertainMatches and count honoured."""

from __future__ import annotations

import pytest

from tests.integration.identity.identity_builders import FAMILY_PHONE, HUONG, MAI, TWIN, of, person_of
from vaxhub.hub.mpi.golden import MPI_TAG_SYSTEM

MATCH_GRADE = "http://hl7.org/fhir/StructureDefinition/match-grade"


def created(response) -> str:
    assert response.status_code == 201, response.text
    return response.json()["id"]


@pytest.fixture
def family(site, link_all, engine):
    hanoi = site("79001")
    ids = {c.full_name: created(hanoi.post("/fhir/Patient", json=of(c, phone=FAMILY_PHONE, number=c.cccd))) for c in (HUONG, MAI, TWIN)}
    link_all()
    return {name: person_of(engine, record) for name, record in ids.items()}


def parameters(patient: dict, **extra) -> dict:
    params = [{"name": "resource", "resource": patient}]
    if "only_certain" in extra:
        params.append({"name": "onlyCertainMatches", "valueBoolean": extra["only_certain"]})
    if "count" in extra:
        params.append({"name": "count", "valueInteger": extra["count"]})
    return {"resourceType": "Parameters", "parameter": params}


def test_match_returns_persons_best_first_with_score_and_grade(client, family):
    query = of(HUONG, name="Nguyen Thi Thu Huong", cccd=None, phone=FAMILY_PHONE)
    r = client.post("/fhir/Patient/$match", json=parameters(query))
    assert r.status_code == 200, r.text
    bundle = r.json()
    assert bundle["resourceType"] == "Bundle" and bundle["type"] == "searchset"
    entries = bundle["entry"]
    assert entries[0]["resource"]["id"] == family["Nguyễn Thị Thu Hương"]
    scores = [e["search"]["score"] for e in entries]
    assert scores == sorted(scores, reverse=True) and all(0 <= s <= 1 for s in scores)
    for entry in entries:
        assert entry["search"]["mode"] == "match"
        [grade] = [x["valueCode"] for x in entry["search"]["extension"] if x["url"] == MATCH_GRADE]
        assert grade in ("certain", "probable", "possible")
        assert {"system": MPI_TAG_SYSTEM, "code": "golden"}.items() <= entry["resource"]["meta"]["tag"][0].items()
    assert entries[0]["search"]["extension"][0]["valueCode"] == "probable"
    assert family["Trần Thị Mai"] not in [e["resource"]["id"] for e in entries]  # another name and birth date: no match at all


def test_only_certain_matches_and_count(client, family):
    exact = of(HUONG, phone=FAMILY_PHONE)  # her CCCD, name and birth date: certain
    r = client.post("/fhir/Patient/$match", json=parameters(exact, only_certain=True)).json()
    assert [(e["resource"]["id"], e["search"]["extension"][0]["valueCode"]) for e in r["entry"]] == [(family["Nguyễn Thị Thu Hương"], "certain")]

    vague = of(HUONG, name="Nguyen Thi Thu Huong", cccd=None, phone=FAMILY_PHONE)
    assert client.post("/fhir/Patient/$match", json=parameters(vague, only_certain=True)).json()["total"] == 0
    many = client.post("/fhir/Patient/$match", json=parameters(of(TWIN, name="Nguyễn Thị Thu", cccd=None, phone=FAMILY_PHONE))).json()
    one = client.post("/fhir/Patient/$match", json=parameters(of(TWIN, name="Nguyễn Thị Thu", cccd=None, phone=FAMILY_PHONE), count=1)).json()
    assert len(one.get("entry", [])) == min(1, len(many.get("entry", [])))
    # A bare Patient is taken as the resource parameter.
    bare = client.post("/fhir/Patient/$match", json=exact).json()
    assert bare["entry"][0]["resource"]["id"] == family["Nguyễn Thị Thu Hương"]


@pytest.mark.parametrize("body,status", [
    ({"resourceType": "Observation"}, 400),
    ({"resourceType": "Parameters"}, 400),
    ({"resourceType": "Parameters", "parameter": [{"name": "count", "valueInteger": 2}]}, 400),
    ({"resourceType": "Parameters", "parameter": [{"name": "resource", "resource": {"resourceType": "Immunization"}}]}, 400),
    ({"resourceType": "Parameters", "parameter": [{"name": "resource", "resource": {"resourceType": "Patient", "birthDate": "4/5/1990"}}]}, 422),
    ({"resourceType": "Parameters", "parameter": [{"name": "resource", "resource": {"resourceType": "Patient"}}, {"name": "count", "valueInteger": 0}]}, 400),
    ({"resourceType": "Parameters", "parameter": [{"name": "resource", "resource": {"resourceType": "Patient"}}, {"name": "onlyCertainMatches", "valueString": "yes"}]}, 400),
    ([1, 2], 400),
])
def test_malformed_input_is_refused_with_an_operation_outcome(client, body, status):
    r = client.post("/fhir/Patient/$match", json=body)
    assert r.status_code == status, r.text
    assert r.json()["resourceType"] == "OperationOutcome"


def test_unparseable_bodies_are_400(client):
    r = client.post("/fhir/Patient/$match", content=b"{not json", headers={"content-type": "application/fhir+json"})
    assert r.status_code == 400 and r.json()["resourceType"] == "OperationOutcome"


def test_match_needs_patient_search_rights_and_is_audited(hub, client, family):
    app, raw, login = hub
    reader = login("imm-reader", "system/Immunization.rs")
    body = parameters(of(HUONG, phone=FAMILY_PHONE))
    assert raw.post("/fhir/Patient/$match", json=body).status_code == 401
    assert raw.post("/fhir/Patient/$match", json=body, headers=reader).status_code == 403
    before = app.state.audit.count()
    assert client.post("/fhir/Patient/$match", json=body).status_code == 200
    assert app.state.audit.count() == before + 1
    [event] = app.state.audit.search(patient=family["Nguyễn Thị Thu Hương"], action="operation")[0][:1]
    assert event["subtype"][0]["code"] == "operation"


def test_the_capability_statement_lists_match(client):
    statement = client.get("/fhir/metadata").json()
    [patient] = [r for r in statement["rest"][0]["resource"] if r["type"] == "Patient"]
    assert {"name": "match", "definition": "http://hl7.org/fhir/OperationDefinition/Patient-match"} in patient["operation"]
