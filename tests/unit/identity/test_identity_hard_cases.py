"""The hard cases of issue 7, one test each: what the committed model
decides for a pair of site records of one person, or of two people."""

from __future__ import annotations

from vaxhub.identity.comparisons import compare, level_names, prepare
from vaxhub.identity.linkage import link_records
from tests.unit.identity.identity_builders import keys

CCCD_AN = "001085012345"
CCCD_OTHER = "001085067890"
PHONE = "0912345678"


def levels(a, b) -> dict[str, str]:
    return level_names(compare(prepare(a), prepare(b)))


def test_spelling_without_diacritics_links(model, frequencies):
    a = keys("Nguyễn Thị Thu Hương", "1990-05-17", "female", phone=PHONE)
    b = keys("Nguyen Thi Thu Huong", "1990-05-17", "female", phone="+84 912 345 678")
    score = model.score(a, b, frequencies)
    assert levels(a, b)["given"] == "folded"
    assert model.decide(score) == "link"


def test_modern_and_classic_tone_placement_are_the_same_name(model, frequencies):
    a = keys("Trần Thị Hòa", "1979-02-03", "female", phone=PHONE)
    b = keys("Trần Thị Hoà", "1979-02-03", "female", phone=PHONE)
    assert levels(a, b)["given"] == "exact"
    assert model.decide(model.score(a, b, frequencies)) == "link"


def test_typo_in_given_name_goes_to_review_without_a_number(model, frequencies):
    # One edit separates many real given names (An/Anh, Hoa/Hoan), so a
    # typo alone is not enough for a machine to merge health records.
    a = keys("Phạm Minh Khoa", "2001-11-23", "male", phone=PHONE)
    b = keys("Phạm Minh Khao", "2001-11-23", "male", phone=PHONE)
    assert levels(a, b)["given"] == "fuzzy"
    assert model.decide(model.score(a, b, frequencies)) == "review"


def test_typo_in_given_name_links_when_the_cccd_agrees(model, frequencies):
    a = keys("Phạm Minh Khoa", "2001-11-23", "male", cccd="001201012345")
    b = keys("Phạm Minh Khao", "2001-11-23", "male", cccd="001201012345")
    assert model.decide(model.score(a, b, frequencies)) == "link"


def test_missing_id_links_on_name_birth_date_and_phone(model, frequencies):
    a = keys("Lê Văn Thắng", "1988-07-09", "male", cccd=CCCD_AN, phone=PHONE)
    b = keys("Lê Văn Thắng", "1988-07-09", "male", phone=PHONE)
    score = model.score(a, b, frequencies)
    assert levels(a, b)["cccd"] == "null"
    assert score.grade == "probable"
    assert model.decide(score) == "link"


def test_old_cmnd_links_to_the_chip_card_record_holding_both_numbers(model, frequencies):
    chip_card = keys("Võ Thị Mai", "1975-12-01", "female", cccd="079175001234", cmnd="023456789")
    old_card = keys("Vo Thi Mai", "1975-12-01", "female", cmnd="023456789")
    score = model.score(chip_card, old_card, frequencies)
    assert levels(chip_card, old_card)["cmnd"] == "same"
    assert score.grade == "certain"
    assert model.decide(score) == "link"


def test_twelve_digit_cmnd_that_became_the_cccd_links(model, frequencies):
    cccd = keys("Đặng Văn Long", "1980-04-04", "male", cccd="036080001122")
    old = keys("Đặng Văn Long", "1980-04-04", "male", cmnd="036080001122")
    assert levels(cccd, old)["cccd"] == "cross"
    assert model.decide(model.score(cccd, old, frequencies)) == "link"


def test_family_members_sharing_a_phone_are_not_linked(model, frequencies):
    father = keys("Lê Văn Hùng", "1965-03-02", "male", phone=PHONE)
    son = keys("Lê Văn Minh", "1992-06-15", "male", phone=PHONE)
    daughter = keys("Lê Thị Lan", "1995-01-20", "female", phone=PHONE)
    for a, b in ((father, son), (son, daughter), (father, daughter)):
        assert model.decide(model.score(a, b, frequencies)) == "new"


def test_twins_are_not_linked(model, frequencies):
    first = keys("Đỗ Minh Phúc", "2005-09-01", "male", phone=PHONE, bhxh="0105123456")
    second = keys("Đỗ Minh Lộc", "2005-09-01", "male", phone=PHONE)
    score = model.score(first, second, frequencies)
    assert levels(first, second)["given"] == "else"
    assert model.decide(score) != "link"


def test_twins_whose_names_differ_only_in_marks_are_not_linked(model, frequencies):
    first = keys("Trịnh Văn Hùng", "2010-02-14", "male", phone=PHONE)
    second = keys("Trịnh Văn Hưng", "2010-02-14", "male", phone=PHONE)
    score = model.score(first, second, frequencies)
    assert levels(first, second)["given"] == "conflict"
    assert model.decide(score) != "link"
    result = link_records([("a", first), ("b", second)], model, frequencies)
    assert result.clusters["a"] != result.clusters["b"]


def test_two_different_cccds_never_link_even_with_identical_names(model, frequencies):
    a = keys("Nguyễn Văn An", "1985-03-12", "male", cccd=CCCD_AN, phone=PHONE, bhxh="0105123456")
    b = keys("Nguyễn Văn An", "1985-03-12", "male", cccd=CCCD_OTHER, phone=PHONE, bhxh="0105123456")
    score = model.score(a, b, frequencies)
    assert score.grade == "no-match"
    assert score.probability == 0.0
    assert model.decide(score) == "new"
    assert any("different CCCD" in reason for reason in score.reasons)


def test_two_different_bhxh_numbers_never_link(model, frequencies):
    a = keys("Hồ Thị Yến", "1999-09-09", "female", bhxh="7912345678", phone=PHONE)
    b = keys("Hồ Thị Yến", "1999-09-09", "female", bhxh="7987654321", phone=PHONE)
    assert model.score(a, b, frequencies).grade == "no-match"


def test_cccd_one_digit_off_goes_to_review(model, frequencies):
    a = keys("Bùi Thị Thu", "1993-10-30", "female", cccd="001193012345", phone=PHONE)
    b = keys("Bùi Thị Thu", "1993-10-30", "female", cccd="001193012845", phone=PHONE)
    assert levels(a, b)["cccd"] == "one_digit"
    assert model.decide(model.score(a, b, frequencies)) == "review"


def test_common_name_same_year_same_province_without_ids_is_not_auto_linked(model, frequencies):
    year_only = keys("Nguyễn Văn An", "1985", "male", province="Hà Nội")
    full_date = keys("Nguyễn Văn An", "1985-06-02", "male", province="Hà Nội")
    other_date = keys("Nguyễn Văn An", "1985-11-19", "male", province="Hà Nội")
    for a, b in ((year_only, full_date), (full_date, other_date), (year_only, year_only)):
        assert model.decide(model.score(a, b, frequencies)) != "link"


def test_rare_surname_agreement_scores_higher_than_nguyen(model, frequencies):
    assert frequencies.share("family", "nguyen") > 0.3
    assert frequencies.share("family", "khong") < 0.01
    nguyen = keys("Nguyễn Văn Tài", "1970-01-05", "male")
    khong = keys("Khổng Văn Tài", "1970-01-05", "male")
    common = model.score(nguyen, nguyen, frequencies)
    rare = model.score(khong, khong, frequencies)
    assert rare.weight > common.weight + 3


def test_year_only_birth_date_is_compatible_with_a_full_date_of_that_year(model, frequencies):
    a = keys("Dương Thị Hạnh", "1952", "female", phone=PHONE)
    b = keys("Dương Thị Hạnh", "1952-08-21", "female", phone=PHONE)
    c = keys("Dương Thị Hạnh", "1953-08-21", "female", phone=PHONE)
    assert levels(a, b)["birth_date"] == "year_compatible"
    assert levels(a, c)["birth_date"] == "else"
    assert model.decide(model.score(a, b, frequencies)) == "link"
    assert model.decide(model.score(a, c, frequencies)) != "link"


def test_day_and_month_swapped_links(model, frequencies):
    a = keys("Hoàng Văn Nam", "1990-03-07", "male", phone=PHONE)
    b = keys("Hoang Van Nam", "1990-07-03", "male", phone=PHONE)
    assert levels(a, b)["birth_date"] == "transposed"
    assert model.decide(model.score(a, b, frequencies)) == "link"


def test_middle_and_given_name_swapped_links_with_the_phone(model, frequencies):
    a = keys("Phan Thị Ngọc Ánh", "1998-12-12", "female", phone=PHONE)
    b = keys("Phan Thị Ánh Ngọc", "1998-12-12", "female", phone=PHONE)
    assert levels(a, b)["given"] == "reordered"
    assert model.decide(model.score(a, b, frequencies)) == "link"


def test_reasons_say_what_each_comparison_contributed(model, frequencies):
    a = keys("Nguyễn Văn An", "1985-03-12", "male", cccd=CCCD_AN)
    score = model.score(a, a, frequencies)
    assert score.grade == "certain"
    assert any(r.startswith("family: exact") and "records" in r for r in score.reasons)
    assert any(r.startswith("cccd: same") for r in score.reasons)


def test_twelve_digit_cmnd_other_than_the_cccd_is_another_person(model, frequencies):
    # A 12-digit CMND is the personal number the CCCD kept: another number
    # of that kind is another person, as two CCCDs are.
    cccd = keys("Cao Văn Hùng", "1994-03-20", "male", cccd="024094848249", phone=PHONE)
    old = keys("Cao Van Hung", "1994-03-20", "male", cmnd="024094541175", phone=PHONE)
    assert levels(cccd, old)["cccd"] == "different"
    assert model.score(cccd, old, frequencies).grade == "no-match"


def test_same_birthday_twelve_years_apart_is_not_a_typo(model, frequencies):
    mother = keys("Nguyễn Thị Hòa", "1987-03-17", "female", phone=PHONE)
    daughter = keys("Nguyễn Như Hòa", "1999-03-17", "female", phone=PHONE)
    slip = keys("Nguyễn Thị Hòa", "1997-03-17", "female", phone=PHONE)
    assert levels(mother, daughter)["birth_date"] == "else"
    assert levels(mother, slip)["birth_date"] == "one_part"
    assert model.decide(model.score(mother, daughter, frequencies)) != "link"
