"""Match keys read from FHIR Patients, and the blocks they fall into."""

from __future__ import annotations

from vaxhub.fhir.normalise import BHYT_SYSTEM, CCCD_SYSTEM
from vaxhub.identity.keys import MatchKeys, blocking_keys, match_keys
from tests.unit.identity.identity_builders import keys, patient


def test_keys_fold_names_and_keep_the_exact_spelling_beside():
    k = keys("ĐẶNG thị  Hoà", "1990-05-17", "female", phone="0912 345 678", province="TP.HCM")
    assert (k.family, k.middle, k.given) == ("dang", "thi", "hoa")
    assert k.name_exact == "đặng thị hòa"  # classic tone placement, lower case, NFC
    assert (k.birth_year, k.birth_month, k.birth_day) == (1990, 5, 17)
    assert k.phone == "0912345678"
    assert k.province == "79"


def test_given_first_spelling_is_put_back_in_vietnamese_order():
    k = keys("An Văn Nguyễn", "1985")
    assert (k.family, k.middle, k.given) == ("nguyen", "van", "an")
    assert (k.birth_year, k.birth_month, k.birth_day) == (1985, None, None)


def test_structured_name_parts_are_read_when_there_is_no_text():
    resource = {"resourceType": "Patient", "name": [{"family": "Lý", "given": ["Thị", "Kim", "Ngân"]}]}
    k = match_keys(resource)
    assert (k.family, k.middle, k.given) == ("ly", "thi kim", "ngan")


def test_numbers_are_sorted_by_kind_whatever_box_they_were_typed_in():
    resource = patient("Lê Văn Tám", cmnd="012345678", bhxh="0101234567")
    # A 9-digit number in the CCCD box is an old CMND.
    resource["identifier"].append({"system": CCCD_SYSTEM, "value": "023 456 789"})
    k = match_keys(resource)
    assert k.cccd is None
    assert k.cmnd in ("012345678", "023456789")
    assert k.bhxh == "0101234567"


def test_bhxh_number_is_read_from_a_health_insurance_card():
    resource = patient("Lê Văn Tám")
    resource["identifier"] = [{"system": BHYT_SYSTEM, "value": "DN4797931234567"}]
    assert match_keys(resource).bhxh == "7931234567"


def test_unreadable_parts_become_unknown_not_errors():
    k = match_keys({"resourceType": "Patient", "birthDate": "31/02/1990", "telecom": [
        {"system": "phone", "value": "12"}], "gender": "unknown"})
    assert k == MatchKeys("", "", "", "", None, None, None, None, None, None, None, None, None)


def test_keys_survive_their_json_document():
    k = keys("Nguyễn Văn An", "1985-03-12", "male", cccd="001085012345", phone="0912345678")
    assert MatchKeys.from_document(k.to_document()) == k


def test_day_month_swap_and_missing_diacritics_keep_a_shared_block():
    a = keys("Hoàng Văn Nam", "1990-03-07", "male")
    b = keys("Hoang Van Nam", "1990-07-03", "male")
    assert set(blocking_keys(a)) & set(blocking_keys(b))


def test_year_only_birth_date_shares_the_year_and_province_block():
    a = keys("Dương Thị Hạnh", "1952", "female")
    b = keys("Duong Thi Hanh", "1952-08-21", "female")
    assert set(blocking_keys(a)) & set(blocking_keys(b))


def test_no_block_is_a_surname_or_a_year_alone():
    k = keys("Nguyễn Văn An", "1985-03-12", "male", province="Hà Nội")
    for key in blocking_keys(k):
        kind, _, rest = key.partition(":")
        assert rest not in ("nguyen", "1985")
        if kind in ("dg", "df", "dn"):
            assert rest.startswith("1985-03-12:")
        if kind == "yp":
            assert rest.startswith("1985:01:")
