"""The correction Task's claimed values: what is accepted, and what a claim does to a record."""

from __future__ import annotations

import pytest

from vaxhub.errors import InvalidResource
from vaxhub.hub.healthbook.correction_apply import corrected, recorded_value
from vaxhub.hub.healthbook.corrections import FIELD_SYSTEM, claim_input, read_claims

PATIENT = {
    "resourceType": "Patient", "id": "p1",
    "name": [{"use": "official", "family": "Nguyễn", "given": ["Văn", "An"], "text": "Nguyễn Văn An"}],
    "gender": "male", "birthDate": "1990-03-04",
}
DOSE = {
    "resourceType": "Immunization", "id": "i1", "status": "completed",
    "vaccineCode": {"coding": [{"system": "http://hl7.org/fhir/sid/cvx", "code": "208"}]},
    "patient": {"reference": "Patient/p1"}, "occurrenceString": "tháng 8/2021", "lotNumber": "LOT1",
}


def task(*inputs: dict) -> dict:
    return {"resourceType": "Task", "input": list(inputs)}


def test_given_names_replace_the_official_name_and_keep_its_text_in_step():
    claims = read_claims(task(claim_input("name.given", "Văn Ân"), claim_input("name.family", "Trần")), "Patient", focus_id="p1")
    fixed = corrected(PATIENT, claims)
    assert fixed["name"][0] == {"use": "official", "family": "Trần", "given": ["Văn", "Ân"], "text": "Trần Văn Ân"}
    assert PATIENT["name"][0]["given"] == ["Văn", "An"]  # the stored record is not touched in place
    assert recorded_value(fixed, "name.given") == "Văn Ân"


def test_a_dose_date_replaces_a_free_text_occurrence():
    fixed = corrected(DOSE, read_claims(task(claim_input("occurrenceDateTime", "2021-08-24T09:15:00+07:00")), "Immunization", focus_id="i1"))
    assert fixed["occurrenceDateTime"] == "2021-08-24T09:15:00+07:00" and "occurrenceString" not in fixed


@pytest.mark.parametrize("entry, focus", [
    (claim_input("birthDate", "1990"), "Patient"),  # a correction states the full date
    (claim_input("birthDate", "2990-01-01"), "Patient"),
    (claim_input("gender", "nam"), "Patient"),
    (claim_input("lotNumber", " A1"), "Immunization"),
    (claim_input("lotNumber", "A1"), "Patient"),  # a dose's field on the person
    (claim_input("vaccineCode", {"text": "Pfizer"}), "Immunization"),
    (claim_input("evidence", {"contentType": "text/html", "data": "PGI+"}), "Patient"),
    ({"type": {"coding": [{"system": FIELD_SYSTEM, "code": "address"}]}, "valueString": "Hà Nội"}, "Patient"),
    ({"type": {"text": "birthDate"}, "valueDate": "1990-03-05"}, "Patient"),
])
def test_claims_out_of_shape_are_refused_with_their_location(entry, focus):
    with pytest.raises(InvalidResource) as refused:
        read_claims(task(claim_input("gender", "male") if focus == "Patient" else claim_input("lotNumber", "OK1"), entry), focus, focus_id="x")
    assert refused.value.issues[0].expression.startswith("Task.input[1]")


def test_a_field_claimed_twice_is_refused():
    with pytest.raises(InvalidResource, match="claimed twice"):
        read_claims(task(claim_input("lotNumber", "A1"), claim_input("lotNumber", "A2")), "Immunization", focus_id="i1")


def test_a_missing_dose_must_be_about_the_focused_person():
    stray = {"resourceType": "Immunization", "id": "d", "status": "completed", "patient": {"reference": "Patient/other"},
             "vaccineCode": {"coding": [{"system": "http://hl7.org/fhir/sid/cvx", "code": "208"}]}, "occurrenceDateTime": "2022-01-10"}
    body = {**task(claim_input("missing-dose", {"reference": "#d"})), "contained": [stray]}
    with pytest.raises(InvalidResource, match="Patient/p1"):
        read_claims(body, "Patient", focus_id="p1")
    assert read_claims({**body, "contained": [{**stray, "patient": {"reference": "Patient/p1"}}]}, "Patient", focus_id="p1")[0].field == "missing-dose"
