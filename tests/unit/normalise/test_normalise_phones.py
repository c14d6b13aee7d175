"""Phone numbers: every Vietnamese way of writing one gives one E.164 form."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vaxhub.errors import InvalidResource
from vaxhub.fhir.normalise import phones
from vaxhub.fhir.normalise import (
    OLD_MOBILE_PREFIXES,
    contact_point,
    is_mobile,
    normalise_phone,
    upgrade_old_mobile,
)

QUICK = settings(database=None, deadline=None, max_examples=200)


@pytest.mark.parametrize(
    "written",
    ["0912345678", "0912 345 678", "0912.345.678", "0912-345-678", "84912345678",
     "+84912345678", "+84 912 345 678", "(+84) 912-345-678", "0084912345678", "912345678",
     912345678],
)
def test_written_forms_give_one_e164_number(written):
    assert normalise_phone(written) == "+84912345678"


@pytest.mark.parametrize(
    ("old", "new"),
    [("01683456789", "+84383456789"), ("0162 345 6789", "+84323456789"),
     ("+84 120 345 6789", "+84703456789"), ("0121.345.6789", "+84793456789"),
     ("01273456789", "+84813456789"), ("01863456789", "+84563456789"),
     ("01993456789", "+84593456789"), ("1693456789", "+84393456789")],
)
def test_old_eleven_digit_mobile_numbers_get_their_2018_prefix(old, new):
    assert normalise_phone(old) == new


def test_the_conversion_table_is_complete():
    assert len(OLD_MOBILE_PREFIXES) == 21
    assert all(len(old) == 4 and len(new) == 3 for old, new in OLD_MOBILE_PREFIXES.items())


def test_landlines_with_2017_area_codes_are_kept():
    assert normalise_phone("024 3825 1234") == "+842438251234"
    assert upgrade_old_mobile("02438251234") == "02438251234"
    assert not is_mobile("024 3825 1234")


def test_foreign_numbers_are_accepted_in_international_form():
    assert normalise_phone("+1 (650) 253-0000") == "+16502530000"


@pytest.mark.parametrize("written", ["", "12345", "0912 345", "09123456789012", "hello"])
def test_invalid_numbers_are_errors(written):
    with pytest.raises(InvalidResource):
        normalise_phone(written, expression="Patient.telecom[0].value")


def test_contact_point_for_a_mobile():
    assert contact_point("0168 345 6789") == {
        "system": "phone", "value": "+84383456789", "use": "mobile",
    }


def test_contact_point_for_a_landline_has_only_the_use_given():
    assert contact_point("024 3825 1234") == {"system": "phone", "value": "+842438251234"}
    assert contact_point("024 3825 1234", use="work", rank=2) == {
        "system": "phone", "value": "+842438251234", "use": "work", "rank": 2,
    }


@QUICK
@given(st.sampled_from(sorted(OLD_MOBILE_PREFIXES)), st.from_regex(r"[0-9]{7}", fullmatch=True))
def test_old_and_new_forms_of_a_number_normalise_alike(prefix, tail):
    new = OLD_MOBILE_PREFIXES[prefix] + tail
    assert normalise_phone(prefix + tail) == normalise_phone(new) == "+84" + new[1:]


@QUICK
@given(st.sampled_from(["090", "091", "098", "086", "038", "070", "083", "056"]),
       st.from_regex(r"[0-9]{7}", fullmatch=True),
       st.sampled_from([" ", ".", "-", ""]))
def test_separators_never_change_the_number(prefix, tail, sep):
    national = prefix + tail
    spaced = sep.join([national[:4], national[4:7], national[7:]])
    assert normalise_phone(spaced) == normalise_phone(national) == "+84" + national[1:]


def test_contact_point_is_a_valid_fhir_r4_contact_point():
    from fhir.resources.R4B.contactpoint import ContactPoint

    ContactPoint.model_validate(contact_point("0912 345 678"))


def _library_reading(raw: str) -> tuple[str, int] | None:
    """What phonenumbers alone makes of a number (None: not a valid one)."""
    import phonenumbers

    digits = phones._SEPARATORS.sub("", raw)
    national = phones._national_form(digits)
    text = phones.upgrade_old_mobile(national) if national is not None else digits
    try:
        number = phonenumbers.parse(text, "VN")
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_valid_number(number):
        return None
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164), phonenumbers.number_type(number)


def _hub_reading(raw: str) -> tuple[str, int] | None:
    try:
        return phones._read(raw, None)
    except InvalidResource:
        return None


def test_the_mobile_shortcut_reads_every_number_as_libphonenumber_does():
    import random

    rng = random.Random(84)
    numbers = [f"0{head:03d}{rng.randrange(10**6):06d}" for head in range(1000) for _ in range(4)]  # every 3-digit start
    numbers += [f"0{rng.randrange(10**n):0{n}d}" for n in (7, 8, 10, 11) for _ in range(500)]  # other lengths
    numbers += [f"01{rng.randrange(10**9):09d}" for _ in range(500)]  # retired 11-digit mobiles
    numbers += [f"+84 {n[1:4]} {n[4:]}" for n in numbers[::7]] + [f"84.{n[1:]}" for n in numbers[::11]]
    shortcut = [n for n in numbers if phones._vietnamese_mobile(phones.upgrade_old_mobile(phones._national_form(phones._SEPARATORS.sub("", n)) or "x")) is not None]
    assert len(shortcut) > 1000  # most mobile starts take the shortcut
    assert [(n, _hub_reading(n)) for n in numbers] == [(n, _library_reading(n)) for n in numbers]


def test_numbers_the_shortcut_refuses_are_left_to_the_library():
    assert phones._vietnamese_mobile("0912345678") == "+84912345678"
    assert phones._vietnamese_mobile("02838291234") is None  # a Ho Chi Minh City landline
    assert phones._vietnamese_mobile("0672123456") is None  # VoIP, not mobile
    assert phones._vietnamese_mobile("0９12345678") is None  # full-width digits: the library's to normalise
    assert phones.contact_point("028 3829 1234") == {"system": "phone", "value": "+842838291234"}
