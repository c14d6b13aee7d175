"""Names: one canonical spelling, FHIR HumanName parts, given-first inputs."""

import unicodedata

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vaxhub.errors import InvalidResource
from vaxhub.fhir.normalise import (
    human_name,
    name_match_key,
    normalise_name,
    place_tone_marks,
    split_name,
)
from vaxhub.fhir.text import fold

QUICK = settings(database=None, deadline=None, max_examples=200)


def test_case_is_fixed_word_by_word():
    assert normalise_name("NGUYỄN văn an") == "Nguyễn Văn An"


def test_whitespace_is_collapsed():
    assert normalise_name("  Trần \t Thị   Bích\u00a0Ngọc ") == "Trần Thị Bích Ngọc"


def test_decomposed_input_is_composed():
    decomposed = unicodedata.normalize("NFD", "Phạm Minh Chính")
    assert normalise_name(decomposed) == "Phạm Minh Chính"
    assert unicodedata.is_normalized("NFC", normalise_name(decomposed))


def test_eth_lookalike_becomes_d_with_stroke():
    assert normalise_name("ÐẶNG THỊ ÐÀO") == "Đặng Thị Đào"


@pytest.mark.parametrize(
    ("modern", "classic"),
    [
        ("Nguyễn Văn Hoà", "Nguyễn Văn Hòa"),
        ("Lê Thị Thuỷ", "Lê Thị Thủy"),
        ("Trần Văn Khoẻ", "Trần Văn Khỏe"),
        ("Phạm Thị Thuý", "Phạm Thị Thúy"),
        ("Võ Văn Hoá", "Võ Văn Hóa"),
        ("Đỗ Thị Loạ", "Đỗ Thị Lọa"),
    ],
)
def test_old_style_tone_mark_is_canonicalised(modern, classic):
    assert normalise_name(modern) == classic


@pytest.mark.parametrize(
    "name",
    ["Nguyễn Quý Hoàng", "Huỳnh Thị Quyên", "Lê Gia Huy", "Trương Thị Giàu", "Ngô Quốc Tuấn",
     "Bùi Thị Tuyết", "Dương Văn Khuyến", "Hồ Thị Người", "Đinh Văn Ngoãn", "Lý Thị Khuya"],
)
def test_names_already_canonical_are_unchanged(name):
    assert normalise_name(name) == name


def test_tone_marks_convert_both_ways():
    classic = "Hòa Thủy Khỏe Hóa Thúy"
    modern = place_tone_marks(classic, "modern")
    assert modern == "Hoà Thuỷ Khoẻ Hoá Thuý"
    assert place_tone_marks(modern, "classic") == classic


def test_qu_and_gi_are_onsets_not_vowels():
    assert place_tone_marks("qúy gìa", "classic") == "quý già"


def test_misplaced_mark_before_final_consonant_is_repaired():
    assert normalise_name("hóang") == "Hoáng"
    assert normalise_name("Huỳnh") == "Huỳnh"


def test_foreign_words_are_left_alone():
    assert normalise_name("josé garcía") == "José García"


def test_empty_name_is_an_error():
    with pytest.raises(InvalidResource, match="empty"):
        normalise_name("   ")


def test_match_key_ignores_diacritics_case_and_tone_style():
    assert name_match_key("Nguyễn Văn Hoà") == name_match_key("NGUYEN VAN HÒA") == "nguyen van hoa"
    assert name_match_key("Đặng Thị Ðào") == "dang thi dao"


def test_family_is_first_word_and_given_the_rest_in_order():
    name = split_name("Nguyễn Thị Minh Khai")
    assert name.family == "Nguyễn"
    assert name.given == ("Thị", "Minh", "Khai")
    assert name.given_name == "Khai"
    assert name.middle == ("Thị", "Minh")


def test_human_name_is_fhir_official_name():
    assert human_name("NGUYỄN văn an") == {
        "use": "official",
        "text": "Nguyễn Văn An",
        "family": "Nguyễn",
        "given": ["Văn", "An"],
    }


def test_given_first_with_surname_last_is_reordered():
    name = split_name("An Văn Nguyễn")
    assert name.text == "Nguyễn Văn An"
    assert name.order == "given-first"


def test_given_first_with_surname_second_is_reordered():
    name = split_name("An Nguyen Van")
    assert (name.family, name.given) == ("Nguyen", ("Van", "An"))


def test_common_given_names_that_are_also_surnames_do_not_trigger_reordering():
    assert split_name("Nguyễn Thị Mai").order == "family-first"
    assert split_name("Lâm Thị Hà").text == "Lâm Thị Hà"
    assert split_name("Quách Lê Hoa").family == "Quách"


def test_diacritics_distinguish_given_name_le_from_surname_le():
    assert split_name("Mỹ Lệ").family == "Mỹ"


def test_explicit_order_overrides_the_heuristic():
    assert split_name("An Văn Nguyễn", order="family-first").family == "An"
    assert split_name("Hoa Thị Mai", order="given-first").text == "Mai Thị Hoa"


def test_one_word_name_has_no_family():
    assert human_name("H'Hen") == {"use": "official", "text": "H'Hen", "given": ["H'Hen"]}


syllables = st.sampled_from(
    ["hoà", "hòa", "thuỷ", "thủy", "khoẻ", "nguyễn", "văn", "an", "quý", "già", "người",
     "tuấn", "ngoái", "huỳnh", "đặng", "bích", "ngọc", "xoáy", "khuỷu", "lê", "HOÀNG"]
)
names = st.lists(syllables, min_size=1, max_size=5).map(" ".join)


@QUICK
@given(names)
def test_normalising_twice_changes_nothing(name):
    once = normalise_name(name)
    assert normalise_name(once) == once


@QUICK
@given(names)
def test_tone_style_round_trips(name):
    classic = normalise_name(name)
    assert normalise_name(place_tone_marks(classic, "modern")) == classic


@QUICK
@given(names)
def test_normalising_keeps_the_match_key(name):
    assert name_match_key(normalise_name(name)) == fold(name)


@QUICK
@given(st.text())
def test_fold_is_idempotent(text):
    assert fold(fold(text)) == fold(text)
