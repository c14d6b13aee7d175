from datetime import date, datetime

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.tabular_files import HEADER, csv_bytes, messy_rows, person, xlsx_bytes
from vaxhub.errors import MalformedInput
from vaxhub.fhir.tabular import map_row, match_columns, mangled_reason, open_sheet, phone_sharing_warnings
from vaxhub.fhir.tabular.columns import classify_header

TODAY = date(2022, 6, 1)


def _results(content: bytes, name: str = "backlog.csv"):
    sheet = open_sheet(name, content)
    return sheet, {n: map_row(sheet.columns, n, cells, site_code="79001", today=TODAY, legacy_encoding=sheet.legacy_encoding) for n, cells in sheet.rows()}


def _messages(result, severity="error"):
    return [(i.column, i.message) for i in result.issues if i.severity == severity]


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("Họ và tên", ("full_name", None)), ("HO VA TEN", ("full_name", None)), ("ho_va_ten", ("full_name", None)),
        ("Full name", ("full_name", None)), ("Ngay sinh:", ("birth_date", None)), ("Số CCCD/CMND", ("id_number", None)),
        ("Mũi 2 - Loại vắc xin", ("vaccine", 2)), ("ngày tiêm mũi 3", ("date", 3)), ("Dose 1 date", ("date", 1)),
        ("Lot 2", ("lot", 2)), ("Mã cơ sở tiêm", ("site", 1)), ("Vaccine", ("vaccine", 1)), ("STT", None),
    ],
)
def test_headers_match_loosely_in_vietnamese_and_english(header, expected):
    assert classify_header(header) == expected


def test_missing_required_columns_are_named():
    found = match_columns(["Ngày sinh", "Giới tính"])
    assert any("họ và tên" in p for p in found.problems) and any("loại vắc xin" in p for p in found.problems)


def test_good_row_becomes_patient_and_two_doses_keyed_on_cccd():
    _sheet, results = _results(csv_bytes([person(1)]))
    (result,) = results.values()
    assert result.row == 3 and not result.issues
    patient, dose1, dose2 = result.entries
    assert patient["request"]["ifNoneExist"] == "identifier=https://vaxhub.vn/fhir/sid/cccd|079090012345"
    assert patient["resource"]["birthDate"] == "1990-05-04" and patient["resource"]["gender"] == "male"
    assert patient["resource"]["address"][0]["state"] == "Hồ Chí Minh"
    assert dose1["resource"]["occurrenceDateTime"] == "2021-07-15"
    assert dose2["resource"]["protocolApplied"][0]["doseNumberPositiveInt"] == 2
    assert dose1["resource"]["identifier"][0]["system"] == "https://vaxhub.vn/fhir/sid/site/79001/immunization"


def test_the_mistakes_people_make_are_reported_by_row_and_column():
    sheet, results = _results(csv_bytes(messy_rows()))
    good, no_id, stripped, swapped, unknown, tcvn3 = (results[n] for n in range(3, 9))
    assert not good.issues
    assert not no_id.rejected and any("no CCCD/CMND" in m for _c, m in _messages(no_id, "warning"))
    assert no_id.entries[0]["resource"]["birthDate"] == "1956"
    assert no_id.entries[0]["request"]["ifNoneExist"].startswith("identifier=https://vaxhub.vn/fhir/sid/site/79001/patient|k-")
    assert ("Họ và tên", "'Tran Van Binh' has no Vietnamese diacritics; stored as written (please restore them if you can)") in _messages(stripped, "warning")
    (column, message), = _messages(swapped)
    assert column == "Mũi 1 - Ngày tiêm" and "swapped" in message and "2021-07-25" in message
    assert _messages(unknown)[0][0] == "Mũi 1 - Loại vắc xin" and "Sinovac XYZ" in _messages(unknown)[0][1]
    assert tcvn3.rejected and "legacy Vietnamese font" in _messages(tcvn3)[0][1]
    assert swapped.entries == [] and unknown.entries == [] and tcvn3.entries == []
    phones: dict = {}
    for r in results.values():
        if r.phone and not r.rejected:
            phones.setdefault(r.phone, {}).setdefault(r.person_key, []).append(r.row)
    shared = phone_sharing_warnings(phones, sheet.columns)
    assert {w.row for w in shared} == {3, 4, 5} and "shared by 3 people" in shared[0].message


def test_same_person_and_dose_give_the_same_keys_after_a_fix():
    _s, before = _results(csv_bytes([person(1, "Tran Thi Hoa", sex="Nữ", birth="1956", cccd="")]))
    _s, after = _results(csv_bytes([person(1, "Trần Thị Hoa", sex="Nữ", birth="03/02/1956", cccd="")]))
    keys = lambda r: [e["resource"]["identifier"][0]["value"] for e in r.entries]  # noqa: E731
    assert keys(before[3]) == keys(after[3])


def test_xlsx_cells_numbers_and_dates_are_read():
    row = person(1)
    row[3] = datetime(1990, 5, 4)
    row[5] = 79090012345  # Excel dropped the leading zero of the CCCD
    row[4] = 912345678
    row[14] = datetime(2021, 7, 15)
    _sheet, results = _results(xlsx_bytes([row]), "backlog.xlsx")
    (result,) = results.values()
    assert not result.rejected
    assert result.entries[0]["resource"]["identifier"][0]["value"] == "079090012345"
    assert any("leading zero" in m for _c, m in _messages(result, "warning"))
    assert result.entries[1]["resource"]["occurrenceDateTime"] == "2021-07-15"


def test_legacy_encoded_csv_is_refused_not_stored_as_garbage():
    text = csv_bytes([person(1)], bom=False).decode("utf-8")
    with pytest.raises(MalformedInput, match="not UTF-8"):
        open_sheet("backlog.csv", text.encode("cp1258", errors="replace"))
    english = ["No", "Full name", "Sex", "Date of birth", "Phone", "ID number", "Insurance number", "Ethnicity", "Nationality",
               "Province", "District", "Commune", "Address", "Vaccine 1", "Dose 1 date", "Lot 1", "Site code 1", "Vaccine 2", "Dose 2 date", "Lot 2", "Site code 2"]
    body = ",".join(english) + "\n" + ",".join(person(1)) + "\n"
    _sheet, results = _results(body.encode("cp1258", errors="replace"))
    (result,) = results.values()
    assert result.rejected and any("not UTF-8" in m for _c, m in _messages(result))


def test_utf8_without_bom_and_semicolons_are_read():
    content = csv_bytes([person(1)], bom=False, title=False).decode().replace(",", ";").encode()
    _sheet, results = _results(content)
    assert not results[2].rejected


def test_a_file_without_a_header_is_refused():
    with pytest.raises(MalformedInput):
        open_sheet("x.csv", b"a,b,c\n1,2,3\n")
    with pytest.raises(MalformedInput):
        open_sheet("x.xlsx", b"PK\x03\x04 broken zip")


@pytest.mark.parametrize("text", ["NguyÔn V¨n An", "Nguyeãn Vaên An", "Traàn Thò Leâ", "Nguyá»…n VÄƒn An"])
def test_mangled_vietnamese_is_detected(text):
    assert mangled_reason(text)


@pytest.mark.parametrize("text", ["Nguyễn Văn An", "Hoàng Thị Hòa", "Nguyễn Thị Hoà", "Khuất Duy Tiến", "Ngô Bảo Châu", "Thừa Thiên Huế"])
def test_real_vietnamese_is_not_flagged(text):
    assert mangled_reason(text) is None


cells = st.one_of(st.none(), st.text(max_size=30), st.integers(-10**12, 10**12), st.floats(allow_nan=True), st.dates(), st.booleans())


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(cells, min_size=0, max_size=len(HEADER) + 2))
def test_arbitrary_rows_never_raise(row):
    columns = match_columns(HEADER)
    result = map_row(columns, 5, row, site_code="79001", today=TODAY)
    assert result.rejected or result.empty or result.entries


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=300))
def test_arbitrary_files_are_read_or_refused(content):
    try:
        sheet = open_sheet("upload.csv", content)
    except MalformedInput:
        return
    for n, row in sheet.rows():
        map_row(sheet.columns, n, row, site_code="79001", today=TODAY)


def test_ten_thousand_broken_csv_rows_give_row_errors_never_a_crash():
    import random

    rng = random.Random(7)
    columns = match_columns(HEADER)
    base = person(1)
    rejected = 0
    for n in range(10_000):
        row = list(base)
        for _ in range(rng.randrange(1, 4)):
            i = rng.randrange(len(row))
            row[i] = rng.choice(["", "??", "31/02/2021", "99/99/9999", "abc", "0", "1e+11", "x" * 300, "NguyÔn", "2099-01-01", "Sputnik Z", "-1"])
        # and one mistake that always rejects a row, in its own column
        column, bad = rng.choice([(1, ""), (1, "NguyÔn V¨n"), (3, "31/13/2021"), (3, ""), (13, "Unknown vax"), (14, "31/13/2021")])
        row[column] = bad
        result = map_row(columns, n + 2, row, site_code="79001", today=TODAY)
        rejected += result.rejected
    assert rejected == 10_000
