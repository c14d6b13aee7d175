"""Identifiers: CCCD, CMND, BHXH, BHYT parsed, checked, classified, as FHIR."""

from datetime import date

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vaxhub.errors import InvalidResource
from vaxhub.fhir.normalise import (
    BHXH_SYSTEM,
    BHYT_SYSTEM,
    CCCD_SYSTEM,
    CMND_SYSTEM,
    build_cccd,
    classify,
    cross_check_cccd,
    fhir_identifier,
    historical_provinces,
    parse_bhxh,
    parse_bhyt,
    parse_cccd,
    parse_cmnd,
)

TODAY = date(2022, 3, 1)
QUICK = settings(database=None, deadline=None, max_examples=300)


def test_cccd_reads_province_sex_and_birth_year():
    cccd = parse_cccd("079185012345", today=TODAY)
    assert cccd.province.name == "Hồ Chí Minh"
    assert cccd.sex == "female"
    assert cccd.birth_year == 1985
    assert cccd.serial == "012345"


@pytest.mark.parametrize(
    ("digit", "sex", "year"),
    [("0", "male", 1990), ("1", "female", 1990), ("2", "male", 2090), ("3", "female", 2090),
     ("8", "male", 1890), ("9", "female", 1890)],
)
def test_century_and_sex_digit(digit, sex, year):
    cccd = parse_cccd(f"001{digit}90000001", today=date(2100, 1, 1))
    assert (cccd.sex, cccd.birth_year) == (sex, year)


def test_cccd_typed_with_spaces_is_accepted():
    assert parse_cccd("001 203 012 345", today=TODAY).number == "001203012345"


def test_cccd_with_unknown_province_code_is_rejected():
    with pytest.raises(InvalidResource, match="003, which is not a province code"):
        parse_cccd("003090012345", today=TODAY)


def test_cccd_of_wrong_length_is_rejected():
    with pytest.raises(InvalidResource, match="12 digits"):
        parse_cccd("00120301234", today=TODAY)


def test_cccd_born_in_the_future_is_rejected():
    with pytest.raises(InvalidResource, match="birth year 2045"):
        parse_cccd("001245012345", today=TODAY)


def test_error_carries_an_issue_with_location():
    with pytest.raises(InvalidResource) as caught:
        parse_cccd("12345", expression="Patient.identifier[0].value")
    issue = caught.value.issues[0]
    assert issue.expression == "Patient.identifier[0].value"
    assert issue.severity == "error"
    assert "12 digits" in issue.message


def test_cross_check_warns_on_sex_and_birth_year_mismatch():
    warnings = cross_check_cccd("001303012345", gender="male", birth_date="2002-05-17")
    assert [w.severity for w in warnings] == ["warning", "warning"]
    assert "encodes sex female" in warnings[0].message
    assert "encodes birth year 2003" in warnings[1].message


def test_cross_check_is_silent_when_the_record_agrees():
    assert cross_check_cccd("001303012345", gender="female", birth_date="2003") == []
    assert cross_check_cccd("001303012345", gender="unknown", birth_date=date(2003, 1, 1)) == []


def test_cmnd_has_nine_or_twelve_digits():
    assert parse_cmnd("013 456 789") == "013456789"
    assert parse_cmnd("025123456789") == "025123456789"
    with pytest.raises(InvalidResource, match="9 or 12 digits"):
        parse_cmnd("0134567")


def test_bhxh_has_ten_digits():
    assert parse_bhxh("79-3123-4567") == "7931234567"
    with pytest.raises(InvalidResource, match="10 digits"):
        parse_bhxh("793123456")


def test_bhyt_card_gives_its_bhxh_number():
    card = parse_bhyt("DN 4 79 7931234567")
    assert (card.category, card.benefit_level, card.province_code) == ("DN", 4, "79")
    assert card.bhxh == "7931234567"
    assert card.number == "DN4797931234567"


def test_bhyt_card_with_bad_benefit_level_is_rejected():
    with pytest.raises(InvalidResource, match="benefit level 7"):
        parse_bhyt("HT7010123456789")


@pytest.mark.parametrize(
    ("raw", "kind"),
    [("001203012345", "cccd"), ("001 203 012 345", "cccd"), ("013456789", "cmnd"),
     ("0134.567.89", "cmnd"), ("7931234567", "bhxh"), ("gd4797931234567", "bhyt"),
     ("TE 1 01 0123456789", "bhyt")],
)
def test_raw_strings_are_classified(raw, kind):
    assert classify(raw) == kind


@pytest.mark.parametrize("raw", ["B 123 456 789", "C1234567", "12345", "", "ABC1234567890123"])
def test_unrecognised_strings_are_rejected(raw):
    with pytest.raises(InvalidResource, match="is not a CCCD"):
        classify(raw)


def test_each_kind_has_its_own_system():
    assert {CCCD_SYSTEM, CMND_SYSTEM, BHXH_SYSTEM, BHYT_SYSTEM} == {
        fhir_identifier(raw, today=TODAY)["system"]
        for raw in ("001203012345", "013456789", "7931234567", "DN4797931234567")
    }


def test_cccd_as_fhir_identifier():
    assert fhir_identifier("001 203 012 345", today=TODAY) == {
        "use": "official",
        "type": {
            "coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0203", "code": "NI",
                        "display": "National unique individual identifier"}],
            "text": "CCCD",
        },
        "system": "https://vaxhub.vn/fhir/sid/cccd",
        "value": "001203012345",
    }


def test_cmnd_is_an_old_identifier():
    assert fhir_identifier("013456789")["use"] == "old"


def test_twelve_digit_cmnd_when_the_caller_says_so():
    assert fhir_identifier("025123456789", "cmnd")["system"] == CMND_SYSTEM


provinces = st.sampled_from([p.cccd_code for p in historical_provinces()])


@QUICK
@given(
    provinces,
    st.sampled_from(["male", "female"]),
    st.integers(1800, 2022),
    st.integers(0, 999_999),
)
def test_any_cccd_built_from_parts_parses_back_to_them(province, sex, year, serial):
    number = build_cccd(province, sex, year, serial)
    cccd = parse_cccd(number, today=TODAY)
    assert (cccd.province.cccd_code, cccd.sex, cccd.birth_year, int(cccd.serial)) == (
        province, sex, year, serial,
    )
    assert classify(number) == "cccd"
    assert cross_check_cccd(cccd, gender=sex, birth_date=str(year)) == []


@QUICK
@given(st.from_regex(r"[A-Z]{2}[1-5][0-9]{12}", fullmatch=True))
def test_any_well_formed_bhyt_parses_and_keeps_its_tail(number):
    card = parse_bhyt(" ".join([number[:2], number[2], number[3:5], number[5:]]))
    assert card.number == number and card.bhxh == number[5:]


def test_every_kind_is_a_valid_fhir_r4_identifier():
    from fhir.resources.R4B.identifier import Identifier

    for raw in ("001203012345", "013456789", "7931234567", "DN4797931234567"):
        Identifier.model_validate(fhir_identifier(raw, today=TODAY))
