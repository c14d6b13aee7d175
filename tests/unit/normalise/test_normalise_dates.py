"""Dates: Vietnamese and machine forms read into FHIR dates, precision kept."""

from datetime import date, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vaxhub.errors import InvalidResource
from vaxhub.fhir.normalise import (
    date_from_ddmmyyyy,
    date_to_excel_serial,
    excel_serial_to_date,
    parse_birth_date,
    parse_date,
)

TODAY = date(2022, 3, 1)
QUICK = settings(database=None, deadline=None, max_examples=300)


def test_year_only_birth_date_stays_partial():
    birth = parse_birth_date("1990", today=TODAY)
    assert (birth.value, birth.precision) == ("1990", "year")
    assert birth.as_date() is None


def test_year_month_stays_partial():
    assert parse_date("2021-07").value == "2021-07"
    assert parse_date("07/2021").value == "2021-07"
    assert parse_date("7-2021").precision == "month"


def test_ambiguous_slash_date_is_read_day_first():
    assert parse_date("03/04/2021").value == "2021-04-03"


@pytest.mark.parametrize(
    "written",
    ["2021-07-05", "05/07/2021", "5/7/2021", "05-07-2021", "05.07.2021", "05072021",
     "2021/07/05", "20210705", "05/07/2021 14:30", "2021-07-05T08:00:00+07:00",
     "ngày 05 tháng 07 năm 2021", "Ngày 5 tháng 7 năm 2021"],
)
def test_common_written_forms_give_the_same_day(written):
    assert parse_date(written).value == "2021-07-05"


def test_python_dates_and_datetimes():
    assert parse_date(date(2021, 7, 5)).value == "2021-07-05"
    assert parse_date(datetime(2021, 7, 5, 23, 59)).value == "2021-07-05"


def test_excel_serial_dates():
    assert parse_date(44382).value == "2021-07-05"
    assert parse_date(44382.75).value == "2021-07-05"
    assert excel_serial_to_date(1) == date(1900, 1, 1)
    assert excel_serial_to_date(59) == date(1900, 2, 28)
    assert excel_serial_to_date(61) == date(1900, 3, 1)


def test_excel_phantom_leap_day_is_an_error():
    with pytest.raises(InvalidResource, match="1900-02-29"):
        parse_date(60)


def test_whole_number_in_year_range_is_a_year_typed_into_a_cell():
    assert parse_date(1990).value == "1990"


@pytest.mark.parametrize(
    ("written", "message"),
    [("31/02/2021", "February 2021 has 28 days"),
     ("29/02/2022", "February 2022 has 28 days"),
     ("15/13/2021", "no month 13"),
     ("2021-13", "no month 13"),
     ("31042021", "April 2021 has 30 days"),
     ("00/01/2021", "no day 0"),
     ("yesterday", "is not a date"),
     ("03/04/21", "is not a date"),
     ("", "empty")],
)
def test_impossible_dates_are_errors_with_a_clear_message(written, message):
    with pytest.raises(InvalidResource, match=message):
        parse_date(written, expression="Patient.birthDate")


def test_leap_day_in_a_leap_year_is_fine():
    assert parse_date("29/02/2020").value == "2020-02-29"


def test_birth_date_in_the_future_is_an_error():
    with pytest.raises(InvalidResource, match="birth date 2022-03-02 is in the future") as caught:
        parse_birth_date("02/03/2022", today=TODAY)
    assert caught.value.issues[0].expression == "Patient.birthDate"


def test_future_is_judged_at_the_precision_written():
    assert parse_birth_date("2022", today=TODAY).value == "2022"
    assert parse_birth_date("03/2022", today=TODAY).value == "2022-03"
    with pytest.raises(InvalidResource, match="future"):
        parse_birth_date("2023", today=TODAY)


def test_qr_date_must_be_exactly_eight_digits():
    assert date_from_ddmmyyyy("12052003").value == "2003-05-12"
    with pytest.raises(InvalidResource, match="ddmmyyyy"):
        date_from_ddmmyyyy("1252003")


def test_booleans_are_not_dates():
    with pytest.raises(InvalidResource):
        parse_date(True)


days = st.dates(min_value=date(1300, 1, 1), max_value=date(2099, 12, 31))


@QUICK
@given(days)
def test_every_written_form_round_trips(day):
    forms = [
        day.isoformat(),
        day.strftime("%d/%m/%Y"),
        f"{day.day}/{day.month}/{day.year}",
        day.strftime("%d-%m-%Y"),
        day.strftime("%d.%m.%Y"),
        day.strftime("%d%m%Y"),
        day.strftime("%Y%m%d"),
        f"ngày {day.day} tháng {day.month} năm {day.year}",
    ]
    for form in forms:
        assert parse_date(form).value == day.isoformat(), form


@QUICK
@given(st.dates(min_value=date(1900, 3, 1), max_value=date(9999, 12, 31)))
def test_excel_serials_round_trip(day):
    serial = date_to_excel_serial(day)
    assert excel_serial_to_date(serial) == day
    assert excel_serial_to_date(serial + 0.5) == day


@QUICK
@given(st.integers(1, 9999), st.integers(1, 12))
def test_partial_dates_keep_their_precision(year, month):
    assert parse_date(f"{year:04d}").value == f"{year:04d}"
    assert parse_date(f"{year:04d}-{month:02d}").value == f"{year:04d}-{month:02d}"


@QUICK
@given(days, st.integers(1, 400))
def test_a_birth_date_after_today_is_always_rejected(today, ahead):
    with pytest.raises(InvalidResource, match="future"):
        parse_birth_date(today + timedelta(days=ahead), today=today)
