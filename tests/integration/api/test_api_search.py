"""Search parameters, paging, sorting, _include and _summary on both databases."""

from __future__ import annotations

import pytest

from tests.builders import CCCD, CVX, SITE_IMM, immunization, patient


@pytest.fixture
def people(client):
    """Three people, four doses, two sites."""
    def make(res: dict) -> str:
        r = client.post(f"/fhir/{res['resourceType']}", json=res)
        assert r.status_code == 201, r.text
        return r.json()["id"]

    loc_a = make({"resourceType": "Location", "name": "Trạm Y tế phường Bến Nghé"})
    loc_b = make({"resourceType": "Location", "name": "Bệnh viện Bạch Mai"})
    nurse = make({"resourceType": "Practitioner", "name": [{"family": "Đỗ", "given": ["Thu", "Hà"]}]})
    an = make(patient("079090012345", "Nguyễn", ("Văn", "An"), birth_date="1990-05-04", phone="0912 345 678"))
    hoa = make(patient("001185012345", "Trần", ("Thị", "Hòa"), gender="female", birth_date="1985", phone="+84 98 765 4321"))
    duc = make(patient("048200012345", "Đặng", ("Minh", "Đức"), birth_date="2000-12-31", phone="0912345678"))
    doses = [
        make(immunization(f"Patient/{an}", "1", cvx="210", date="2021-07-01T08:00:00+07:00", lot="AZ001", location=f"Location/{loc_a}", performer=f"Practitioner/{nurse}")),
        make(immunization(f"Patient/{an}", "2", cvx="210", date="2021-09-15T08:00:00+07:00", lot="AZ002", location=f"Location/{loc_a}")),
        make(immunization(f"Patient/{hoa}", "3", cvx="208", date="2021-08-20", lot="FF1234", location=f"Location/{loc_b}")),
        make(immunization(f"Patient/{duc}", "4", cvx="208", date="2022-01-10T10:00:00+07:00", lot="FF9999", location=f"Location/{loc_b}", status="entered-in-error")),
    ]
    return {"an": an, "hoa": hoa, "duc": duc, "loc_a": loc_a, "loc_b": loc_b, "nurse": nurse, "doses": doses}


def ids(client, rtype: str, **params) -> set[str]:
    r = client.get(f"/fhir/{rtype}", params=params)
    assert r.status_code == 200, r.text
    return {e["resource"]["id"] for e in r.json().get("entry", []) if e["search"]["mode"] == "match"}


def test_name_matches_without_diacritics_and_in_any_case(client, people):
    assert ids(client, "Patient", name="nguyen") == {people["an"]}
    assert ids(client, "Patient", name="NGUYỄN VĂN") == {people["an"]}
    assert ids(client, "Patient", name="hoa") == {people["hoa"]}
    assert ids(client, "Patient", name="duc") == {people["duc"]}  # Đ folds to D


def test_name_exact_respects_diacritics(client, people):
    assert ids(client, "Patient", **{"name:exact": "Hòa"}) == {people["hoa"]}
    assert ids(client, "Patient", **{"name:exact": "Hoa"}) == set()


def test_name_finds_each_word_of_the_name(client, people):
    # Single words are indexed once, under family or given; `name` must still find them.
    for word in ("Trần", "Thị", "Hòa", "Thị Hòa", "Trần Thị Hòa"):
        assert ids(client, "Patient", name=word) == {people["hoa"]}, word
    assert ids(client, "Patient", **{"name:exact": "Thị"}) == {people["hoa"]}
    assert ids(client, "Practitioner", name="ha") == {people["nurse"]}
    assert ids(client, "Patient", **{"name:missing": "false"}) == {people["an"], people["hoa"], people["duc"]}


def test_name_contains(client, people):
    assert ids(client, "Patient", **{"name:contains": "inh"}) == {people["duc"]}


def test_family_and_given(client, people):
    assert ids(client, "Patient", family="tran") == {people["hoa"]}
    assert ids(client, "Patient", given="an") == {people["an"]}
    assert ids(client, "Patient", family="an") == set()


def test_identifier_with_and_without_system(client, people):
    assert ids(client, "Patient", identifier=f"{CCCD}|001185012345") == {people["hoa"]}
    assert ids(client, "Patient", identifier="001185012345") == {people["hoa"]}
    assert ids(client, "Patient", identifier=f"{CCCD}|") == {people["an"], people["hoa"], people["duc"]}
    assert ids(client, "Patient", identifier="https://other|001185012345") == set()


def test_birthdate_prefixes_and_partial_dates(client, people):
    assert ids(client, "Patient", birthdate="1985") == {people["hoa"]}
    assert ids(client, "Patient", birthdate="1985-06-01") == set()  # a year is not inside one day
    assert ids(client, "Patient", birthdate="ge1990-01-01") == {people["an"], people["duc"]}
    assert ids(client, "Patient", birthdate="le1989-12-31") == {people["hoa"]}
    assert ids(client, "Patient", birthdate="lt2000-12-31") == {people["an"], people["hoa"]}


def test_multiple_date_criteria_are_anded(client, people):
    r = client.get("/fhir/Patient?birthdate=ge1986&birthdate=le1995")
    assert {e["resource"]["id"] for e in r.json().get("entry", [])} == {people["an"]}


def test_gender_and_comma_or(client, people):
    assert ids(client, "Patient", gender="female") == {people["hoa"]}
    assert ids(client, "Patient", gender="female,male") == {people["an"], people["hoa"], people["duc"]}


def test_phone_in_any_vietnamese_form(client, people):
    assert ids(client, "Patient", phone="+84912345678") == {people["an"], people["duc"]}  # a shared family phone
    assert ids(client, "Patient", phone="0987654321") == {people["hoa"]}
    assert ids(client, "Patient", telecom="0987.654.321") == {people["hoa"]}


def test_immunization_by_patient_in_three_forms(client, people):
    an = people["an"]
    expected = set(people["doses"][:2])
    assert ids(client, "Immunization", patient=an) == expected
    assert ids(client, "Immunization", patient=f"Patient/{an}") == expected
    assert ids(client, "Immunization", patient=f"http://hub.test/fhir/Patient/{an}") == expected


def test_immunization_by_vaccine_status_lot_location_performer(client, people):
    d = people["doses"]
    assert ids(client, "Immunization", **{"vaccine-code": f"{CVX}|208"}) == {d[2], d[3]}
    assert ids(client, "Immunization", status="completed") == {d[0], d[1], d[2]}
    assert ids(client, "Immunization", **{"status:not": "completed"}) == {d[3]}
    assert ids(client, "Immunization", **{"lot-number": "ff"}) == {d[2], d[3]}
    assert ids(client, "Immunization", location=people["loc_b"]) == {d[2], d[3]}
    assert ids(client, "Immunization", performer=f"Practitioner/{people['nurse']}") == {d[0]}
    assert ids(client, "Immunization", identifier=f"{SITE_IMM}|3") == {d[2]}


def test_immunization_date_uses_local_day(client, people):
    d = people["doses"]
    assert ids(client, "Immunization", date="2021-07-01") == {d[0]}
    assert ids(client, "Immunization", date="2021-08") == {d[2]}
    assert ids(client, "Immunization", date="ge2021-09-01") == {d[1], d[3]}


def test_sort_by_date_both_ways_and_paging(client, people):
    d = people["doses"]
    r = client.get("/fhir/Immunization", params={"_sort": "date", "_count": 2}).json()
    assert [e["resource"]["id"] for e in r["entry"]] == [d[0], d[2]]
    nxt = next(link["url"] for link in r["link"] if link["relation"] == "next")
    page2 = client.get(nxt.replace("http://hub.test", "")).json()
    assert [e["resource"]["id"] for e in page2["entry"]] == [d[1], d[3]]
    assert not any(link["relation"] == "next" for link in page2["link"])
    desc = client.get("/fhir/Immunization", params={"_sort": "-date"}).json()
    assert [e["resource"]["id"] for e in desc["entry"]] == [d[3], d[1], d[2], d[0]]


def test_include_patient(client, people):
    r = client.get("/fhir/Immunization", params={"location": people["loc_b"], "_include": "Immunization:patient"}).json()
    modes = {(e["resource"]["resourceType"], e["search"]["mode"]) for e in r["entry"]}
    assert modes == {("Immunization", "match"), ("Patient", "include")}
    included = {e["resource"]["id"] for e in r["entry"] if e["search"]["mode"] == "include"}
    assert included == {people["hoa"], people["duc"]}


def test_revinclude_immunizations_of_a_patient(client, people):
    r = client.get("/fhir/Patient", params={"_id": people["an"], "_revinclude": "Immunization:patient"}).json()
    assert sorted(e["resource"]["resourceType"] for e in r["entry"]) == ["Immunization", "Immunization", "Patient"]


def test_summary_count_and_total(client, people):
    r = client.get("/fhir/Immunization", params={"_summary": "count"}).json()
    assert r["total"] == 4 and "entry" not in r
    r = client.get("/fhir/Patient", params={"gender": "male", "_total": "accurate", "_count": 1}).json()
    assert r["total"] == 2 and len(r["entry"]) == 1


def test_missing_modifier(client, people):
    assert ids(client, "Immunization", **{"performer:missing": "true"}) == set(people["doses"][1:])


def test_every_advertised_search_parameter_is_accepted(client, people):
    statement = client.get("/fhir/metadata").json()
    assert statement["fhirVersion"] == "4.0.1"
    samples = {"token": "x", "string": "x", "date": "2021", "reference": "x"}
    for resource in statement["rest"][0]["resource"]:
        for param in resource["searchParam"]:
            r = client.get(f"/fhir/{resource['type']}", params={param["name"]: samples[param["type"]]}, headers={"Prefer": "handling=strict"})
            assert r.status_code == 200, (resource["type"], param["name"], r.text)
        for inc in resource.get("searchInclude", []):
            assert client.get(f"/fhir/{resource['type']}", params={"_include": inc}).status_code == 200
