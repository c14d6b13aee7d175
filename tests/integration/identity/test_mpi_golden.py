"""The golden Patient is derived from the linked records, never typed."""

from __future__ import annotations

from vaxhub.fhir.resources import validate_resource
from vaxhub.hub.mpi.golden import PERSON_CCCD_SYSTEM, Member, agreed_birth_date, golden_patient, is_golden, merged_patient


def record(record_id: str, name: str, birth: str | None = None, gender: str | None = "female", phone: str | None = None) -> Member:
    content: dict = {"resourceType": "Patient", "name": [{"text": name}]}
    if birth:
        content["birthDate"] = birth
    if gender:
        content["gender"] = gender
    if phone:
        content["telecom"] = [{"system": "phone", "value": phone}]
    return Member(record_id, content)


def test_birth_date_at_the_most_precise_precision_the_records_agree_on():
    assert agreed_birth_date(["1990-05-04", "1990"]) == "1990-05-04"
    assert agreed_birth_date(["1990-05-04", "1990-04-05"]) == "1990"  # day and month swapped somewhere
    assert agreed_birth_date(["1990-05-04", "1990-05-14"]) == "1990-05"
    assert agreed_birth_date(["1990-05-04", "1990-05-04", "1991-05-04"]) == "1990-05-04"  # outvoted year
    assert agreed_birth_date(["1990"], verified=["1990-05-04"]) == "1990-05-04"
    assert agreed_birth_date(["", "not a date"]) is None


def test_golden_patient_takes_the_agreed_spelling_with_its_diacritics():
    members = [
        record("b", "Nguyen Thi Thu Huong", "1990", phone="0912 345 678"),
        record("a", "Nguyễn Thị Thu Hương", "1990-05-04", phone="0912345678"),
        record("c", "Nguyễn Thị Thu Hương", "1990-05-04", gender=None),
    ]
    golden = golden_patient("p1", members)
    validate_resource(golden, expected_type="Patient")
    assert is_golden(golden) and golden["active"] is True
    assert golden["name"][0]["text"] == "Nguyễn Thị Thu Hương" and golden["name"][0]["family"] == "Nguyễn"
    assert (golden["birthDate"], golden["gender"]) == ("1990-05-04", "female")
    assert "telecom" not in golden  # a phone look-up must find the site record alone
    assert [link["other"]["reference"] for link in golden["link"]] == ["Patient/a", "Patient/b", "Patient/c"]
    assert {link["type"] for link in golden["link"]} == {"seealso"}


def test_a_verified_record_decides_name_birth_date_and_identifier():
    members = [record("a", "Nguyễn Thị Thu Huơng", "1990-04-05"), Member("v", {"resourceType": "Patient", "name": [{"text": "Nguyễn Thị Thu Hương"}],
                                                                           "birthDate": "1990-05-04", "gender": "female"}, "001190012345")]
    golden = golden_patient("p1", members)
    assert golden["name"][0]["text"] == "Nguyễn Thị Thu Hương" and golden["birthDate"] == "1990-05-04"
    assert [i["value"] for i in golden["identifier"] if i["system"] == PERSON_CCCD_SYSTEM] == ["001190012345"]


def test_a_merged_away_person_points_at_the_survivor():
    before = golden_patient("p2", [Member("m", {"resourceType": "Patient", "name": [{"text": "Trần Thị Mai"}]}, "001165004321")])
    merged = merged_patient("p2", "p1", before)
    validate_resource(merged, expected_type="Patient")
    assert merged["active"] is False and merged["link"] == [{"other": {"reference": "Patient/p1"}, "type": "replaced-by"}]
    assert all(i["system"] != PERSON_CCCD_SYSTEM for i in merged["identifier"])
