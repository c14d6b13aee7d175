"""Dose numbers, series and colour from a person's Immunization records."""

from __future__ import annotations

import datetime as dt

import pytest

from vaxhub.certificates.status import CertificateColour
from vaxhub.hub.certificates.doses import NothingToCertify, vaccination_course, vaccine_of


def _imm(code: str, when: str, *, system: str = "http://hl7.org/fhir/sid/cvx", status: str = "completed", **extra) -> dict:
    return {"resourceType": "Immunization", "status": status, "vaccineCode": {"coding": [{"system": system, "code": code}]},
            "occurrenceDateTime": when, **extra}


def _course(*imms: dict, owners: list[str] | None = None):
    return vaccination_course("p1", [((owners or ["p1"] * len(imms))[i], f"i{i}", imm) for i, imm in enumerate(imms)])


def test_yellow_after_one_dose_green_after_two():
    one = _course(_imm("208", "2021-08-02"))
    assert (one.dose_number, one.total_doses, one.colour) == (1, 2, CertificateColour.YELLOW)
    two = _course(_imm("208", "2021-08-02"), _imm("208", "2021-08-23"))
    assert (two.dose_number, two.total_doses, two.colour) == (2, 2, CertificateColour.GREEN)


def test_janssen_is_green_after_one_dose():
    course = _course(_imm("212", "2021-09-01"))
    assert (course.dose_number, course.total_doses, course.colour) == (1, 1, CertificateColour.GREEN)
    assert course.latest.vaccine.dcc_mp == "EU/1/20/1525"


def test_abdala_needs_three_doses_and_has_no_cvx():
    system = "https://vaxhub.vn/fhir/CodeSystem/vaccine"
    course = _course(*(_imm("ABDALA", f"2021-10-0{d}", system=system) for d in (1, 2)))
    assert (course.dose_number, course.total_doses, course.colour) == (2, 3, CertificateColour.YELLOW)


def test_booster_after_a_complete_series_is_n_of_n():
    course = _course(_imm("210", "2021-07-01"), _imm("210", "2021-09-01"), _imm("208", "2022-01-05"))
    assert (course.dose_number, course.total_doses) == (3, 3)
    assert course.latest.vaccine.code == "COMIRNATY" and course.series_length == 2


def test_only_completed_covid_doses_count_in_date_order():
    course = _course(
        _imm("208", "2021-08-23T10:00:00+07:00"),
        _imm("208", "2021-08-02", status="entered-in-error"),
        _imm("03", "2021-05-01"),  # MMR: not a COVID-19 vaccine
        _imm("210", "2021-07-01T23:30:00Z"),  # 06:30 on 2 July in Viet Nam
    )
    assert [(d.number, d.vaccine.code, d.date) for d in course.doses] == [
        (1, "VAXZEVRIA", dt.date(2021, 7, 2)),
        (2, "COMIRNATY", dt.date(2021, 8, 23)),
    ]


def test_the_same_dose_reported_by_two_linked_records_counts_once():
    course = _course(_imm("208", "2021-08-02T09:00:00+07:00"), _imm("208", "2021-08-02T15:00:00+07:00"), owners=["p2", "p1"])
    assert course.dose_number == 1 and course.latest.patient_id == "p1"


def test_no_completed_dose_is_refused():
    with pytest.raises(NothingToCertify):
        _course(_imm("208", "2021-08-02", status="not-done"))


def test_vaccine_is_read_from_our_code_before_cvx():
    both = {"vaccineCode": {"coding": [{"system": "http://hl7.org/fhir/sid/cvx", "code": "210"},
                                       {"system": "https://vaxhub.vn/fhir/CodeSystem/vaccine", "code": "COVISHIELD"}]}}
    assert vaccine_of(both).code == "COVISHIELD"
    assert vaccine_of({"vaccineCode": {"text": "Vero Cell"}}).code == "BBIBP-CORV"
    assert vaccine_of({"vaccineCode": {"coding": [{"code": 5}]}}) is None
