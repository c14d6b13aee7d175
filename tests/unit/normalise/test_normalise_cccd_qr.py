"""Chip-CCCD QR code into a FHIR Patient."""

from datetime import date

import pytest
from fhir.resources.R4B.patient import Patient
from hypothesis import given, settings
from hypothesis import strategies as st

from vaxhub.errors import InvalidResource
from vaxhub.fhir.normalise import (
    CCCD_SYSTEM,
    CMND_SYSTEM,
    build_cccd,
    cccd_qr_to_patient,
    parse_cccd_qr,
)

TODAY = date(2022, 3, 1)
QUICK = settings(database=None, deadline=None, max_examples=100)
CARD = "001203012345|013456789|Nguyễn Văn An|12052003|Nam|Số 1 Tràng Tiền, Hoàn Kiếm, Hà Nội|10082021"


def test_qr_becomes_a_patient_with_both_numbers():
    patient = cccd_qr_to_patient(CARD, today=TODAY)
    assert [(i["system"], i["value"]) for i in patient["identifier"]] == [
        (CCCD_SYSTEM, "001203012345"),
        (CMND_SYSTEM, "013456789"),
    ]
    assert patient["identifier"][0]["period"] == {"start": "2021-08-10"}
    assert patient["name"] == [
        {"use": "official", "text": "Nguyễn Văn An", "family": "Nguyễn", "given": ["Văn", "An"]}
    ]
    assert patient["gender"] == "male"
    assert patient["birthDate"] == "2003-05-12"
    assert patient["address"][0]["text"] == "Số 1 Tràng Tiền, Hoàn Kiếm, Hà Nội"


def test_patient_is_a_valid_fhir_r4_resource():
    Patient.model_validate(cccd_qr_to_patient(CARD, today=TODAY))


def test_empty_cmnd_gives_only_the_cccd():
    text = "079185012345||TRẦN THỊ THUỶ|01021985|Nữ|Quận 1, TP.HCM|15032021"
    card = parse_cccd_qr(text, today=TODAY)
    assert card.cmnd is None
    assert card.gender == "female"
    assert card.name.text == "Trần Thị Thủy"
    assert len(card.to_patient()["identifier"]) == 1


def test_trailing_empty_fields_are_tolerated():
    assert parse_cccd_qr(CARD + "||", today=TODAY).cccd.number == "001203012345"


def test_disagreeing_cccd_is_kept_with_warnings():
    text = "001303012345||Lê Văn Bình|12052002|Nam|Hà Nội|10082021"
    card = parse_cccd_qr(text, today=TODAY)
    messages = [w.message for w in card.warnings]
    assert any("sex female" in m for m in messages)
    assert any("birth year 2003" in m for m in messages)
    assert all(w.severity == "warning" for w in card.warnings)


@pytest.mark.parametrize(
    ("text", "field"),
    [("001203012345|013456789|Nguyễn Văn An|12052003|Nam", "CCCD QR"),
     (CARD.replace("001203012345", "00120301234"), "field 1 (CCCD)"),
     (CARD.replace("013456789", "0134567"), "field 2 (CMND)"),
     (CARD.replace("Nguyễn Văn An", " "), "field 3 (full name)"),
     (CARD.replace("12052003", "31022003"), "field 4 (date of birth)"),
     (CARD.replace("12052003", "2003-05-12"), "field 4 (date of birth)"),
     (CARD.replace("|Nam|", "|M|"), "field 5 (sex)"),
     (CARD.replace("10082021", "10082030"), "field 7 (date of issue)"),
     (CARD.replace("10082021", "10082001"), "field 7 (date of issue)")],
)
def test_malformed_field_is_named_in_the_error(text, field):
    with pytest.raises(InvalidResource) as caught:
        parse_cccd_qr(text, today=TODAY)
    assert field in caught.value.issues[0].expression


def test_sex_without_diacritics_is_read():
    assert parse_cccd_qr(CARD.replace("|Nam|", "|NU|").replace("0012", "0013", 1),
                         today=TODAY).gender == "female"


@QUICK
@given(st.integers(1930, 2008), st.sampled_from([("Nam", "male"), ("Nữ", "female")]),
       st.integers(0, 999_999), st.sampled_from(["001", "079", "048", "096"]))
def test_any_consistent_card_reads_back_without_warnings(year, sex, serial, province):
    cccd = build_cccd(province, sex[1], year, serial)
    text = f"{cccd}||Phạm Thị Hoà|0103{year}|{sex[0]}|Hà Nội|0103{year + 14}"
    card = parse_cccd_qr(text, today=TODAY)
    assert card.warnings == ()
    assert card.to_patient()["birthDate"] == f"{year}-03-01"
    assert card.to_patient()["gender"] == sex[1]
