"""Provinces: 63 historical, 34 current, any spelling, old -> new."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vaxhub.errors import InvalidResource
from vaxhub.fhir.normalise import (
    current_province,
    current_province_by_code,
    current_province_for,
    current_provinces,
    historical_province,
    historical_province_by_code,
    historical_provinces,
    province_in_address,
    province_key,
)
from vaxhub.fhir.text import fold

QUICK = settings(database=None, deadline=None, max_examples=200)


def test_there_are_63_historical_and_34_current_provinces():
    assert len(historical_provinces()) == 63
    assert len(current_provinces()) == 34


def test_historical_codes_run_001_to_096_with_gaps():
    codes = [p.cccd_code for p in historical_provinces()]
    assert codes[0] == "001" and codes[-1] == "096"
    assert "003" not in codes and "018" not in codes


@pytest.mark.parametrize(
    ("code", "name"),
    [("001", "Hà Nội"), ("079", "Hồ Chí Minh"), ("048", "Đà Nẵng"), ("031", "Hải Phòng"),
     ("092", "Cần Thơ"), ("038", "Thanh Hóa"), ("046", "Thừa Thiên Huế"), ("066", "Đắk Lắk"),
     ("077", "Bà Rịa - Vũng Tàu"), ("002", "Hà Giang"), ("096", "Cà Mau")],
)
def test_historical_province_by_cccd_code(code, name):
    assert historical_province_by_code(code).name == name


def test_code_forms_are_interchangeable():
    assert historical_province_by_code("079") == historical_province_by_code("79") == \
        historical_province_by_code(79)


@pytest.mark.parametrize(
    ("spelling", "code"),
    [("TP.HCM", "79"), ("TPHCM", "79"), ("HCM", "79"), ("Thành phố Hồ Chí Minh", "79"),
     ("ho chi minh", "79"), ("Sài Gòn", "79"), ("Hà Nội", "01"), ("Ha Noi", "01"),
     ("HANOI", "01"), ("Tỉnh Thanh Hoá", "38"), ("thanh hoa", "38"), ("Daklak", "66"),
     ("Đăk Lăk", "66"), ("BR-VT", "77"), ("Bà Rịa Vũng Tàu", "77"), ("Bắc Cạn", "06"),
     ("Thừa Thiên - Huế", "46"), ("Khánh Hòa", "56"), ("Khanh Hoa", "56")],
)
def test_historical_province_by_any_spelling(spelling, code):
    assert historical_province(spelling).code == code


def test_unknown_province_is_an_error():
    with pytest.raises(InvalidResource, match="unknown historical province"):
        historical_province("Atlantis")
    with pytest.raises(InvalidResource, match="code"):
        historical_province_by_code("003")


@pytest.mark.parametrize(
    ("old", "new"),
    [("Hà Giang", "Tuyên Quang"), ("Yên Bái", "Lào Cai"), ("Bắc Kạn", "Thái Nguyên"),
     ("Vĩnh Phúc", "Phú Thọ"), ("Hòa Bình", "Phú Thọ"), ("Bắc Giang", "Bắc Ninh"),
     ("Thái Bình", "Hưng Yên"), ("Hải Dương", "Hải Phòng"), ("Hà Nam", "Ninh Bình"),
     ("Nam Định", "Ninh Bình"), ("Quảng Bình", "Quảng Trị"), ("Quảng Nam", "Đà Nẵng"),
     ("Kon Tum", "Quảng Ngãi"), ("Bình Định", "Gia Lai"), ("Ninh Thuận", "Khánh Hòa"),
     ("Đắk Nông", "Lâm Đồng"), ("Bình Thuận", "Lâm Đồng"), ("Phú Yên", "Đắk Lắk"),
     ("Bình Dương", "Hồ Chí Minh"), ("Bà Rịa - Vũng Tàu", "Hồ Chí Minh"),
     ("Bình Phước", "Đồng Nai"), ("Long An", "Tây Ninh"), ("Sóc Trăng", "Cần Thơ"),
     ("Hậu Giang", "Cần Thơ"), ("Bến Tre", "Vĩnh Long"), ("Trà Vinh", "Vĩnh Long"),
     ("Tiền Giang", "Đồng Tháp"), ("Bạc Liêu", "Cà Mau"), ("Kiên Giang", "An Giang"),
     ("Cao Bằng", "Cao Bằng"), ("Thừa Thiên Huế", "Huế")],
)
def test_historical_provinces_map_to_the_one_they_merged_into(old, new):
    assert current_province_for(historical_province(old)).name == new
    assert current_province(old).name == new


def test_eleven_provinces_were_not_merged():
    unchanged = [p for p in current_provinces() if len(p.members) == 1]
    assert len(unchanged) == 11


def test_every_historical_province_belongs_to_exactly_one_current_one():
    members = [code for p in current_provinces() for code in p.members]
    assert sorted(members) == [p.code for p in historical_provinces()]


def test_a_code_read_as_old_or_new_leads_to_the_same_current_province():
    for province in current_provinces():
        assert current_province_by_code(province.code) == province
        assert current_province_for(historical_province_by_code(province.code)) == province


def test_current_names_win_over_historical_ones():
    assert current_province("Tuyên Quang").members == ("02", "08")
    assert current_province("Huế").code == "46"


def test_no_two_provinces_share_a_lookup_key():
    for table in (historical_provinces(), current_provinces()):
        keys = [province_key(spelling) for p in table for spelling in (p.name, *p.aliases)]
        owners = {}
        for p in table:
            for spelling in (p.name, *p.aliases):
                owners.setdefault(province_key(spelling), set()).add(p.code)
        assert all(len(codes) == 1 for codes in owners.values()), keys


def test_province_named_at_the_end_of_an_address():
    assert province_in_address("Số 12 Lê Lợi, Phường Bến Nghé, Quận 1, TP.HCM").name == "Hồ Chí Minh"
    assert province_in_address("Thôn 3, xã Tân Lập, huyện Đắk R'Lấp, tỉnh Đắk Nông, ").name == "Lâm Đồng"
    assert province_in_address("12, 34, 56") is None


@QUICK
@given(st.sampled_from(historical_provinces()), st.sampled_from(["", "Tỉnh ", "TP. ", "tp "]),
       st.booleans(), st.booleans())
def test_any_spelling_of_a_historical_name_finds_it(province, prefix, folded, upper):
    spelling = prefix + (fold(province.name) if folded else province.name)
    spelling = spelling.upper() if upper else spelling
    assert historical_province(spelling) == province
