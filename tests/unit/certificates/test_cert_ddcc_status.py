"""WHO DDCC:VS core data set and the app's certificate colour."""

from __future__ import annotations

import datetime as dt

import pytest

from vaxhub.certificates.ddcc import DdccVaccinationEvent, core_data_set, ddcc_bundle
from vaxhub.certificates.status import CertificateColour, certificate_colour, colour_for_dcc_entry
from vaxhub.errors import InputError


def _event(**overrides) -> DdccVaccinationEvent:
    values = dict(
        name="Đặng Thị Ngọc Hà",
        birth_date="1990-05-24",
        identifier="001190012345",
        identifier_system="urn:oid:2.16.704.1.1",
        sex="female",
        vaccine={"system": "http://id.who.int/icd11/mms", "code": "XM0GQ8", "display": "COVID-19 vaccine, mRNA based"},
        brand={"system": "http://smart.who.int/ddcc/CodeSystem/DDCC-Example-Test-CodeSystem", "code": "TEST", "display": "Comirnaty"},
        manufacturer={"code": "ORG-100030215", "display": "Biontech Manufacturing GmbH"},
        market_authorization_holder={"code": "ORG-100030215"},
        lot="FK5618",
        date=dt.date(2021, 11, 3),
        dose=2,
        total_doses=2,
        country={"system": "urn:iso:std:iso:3166", "code": "VN"},
        centre="Trạm y tế phường Láng Hạ",
        practitioner_identifier="HW-0042",
        certificate_issuer="Bộ Y tế",
        certificate_issuer_identifier="VN-MOH",
        certificate_id="URN:UVCI:01:VN:FFFE3D31FABD035899134A9D3BAE9BCF",
        certificate_valid_from="2021-11-03",
        certificate_valid_until="2022-11-03",
    )
    values.update(overrides)
    return DdccVaccinationEvent(**values)


def test_core_data_set_uses_the_ig_element_names():
    cds = core_data_set(_event())
    assert set(cds) == {"resourceType", "name", "birthDate", "identifier", "sex", "certificate", "vaccination"}
    assert set(cds["certificate"]) == {"issuer", "hcid", "version", "period"}
    v = cds["vaccination"]
    assert set(v) == {
        "vaccine", "brand", "manufacturer", "maholder", "lot", "date", "dose", "totalDoses",
        "country", "centre", "practitioner", "disease",
    }
    assert v["date"] == "2021-11-03" and v["dose"] == 2 and v["country"]["code"] == "VN"
    assert v["disease"]["code"] == "RA01"


def test_ddcc_bundle_is_valid_fhir():
    bundle = ddcc_bundle(_event())
    kinds = [e["resource"]["resourceType"] for e in bundle["entry"]]
    assert kinds == ["Patient", "Immunization", "Organization"]
    imm = bundle["entry"][1]["resource"]
    assert imm["lotNumber"] == "FK5618"
    assert imm["protocolApplied"][0]["doseNumberPositiveInt"] == 2
    assert imm["protocolApplied"][0]["seriesDosesPositiveInt"] == 2


def test_manufacturer_or_authorisation_holder_is_required():
    with pytest.raises(InputError):
        _event(manufacturer=None, market_authorization_holder=None)
    assert "maholder" not in core_data_set(_event(market_authorization_holder=None))["vaccination"]


@pytest.mark.parametrize(
    ("doses", "series", "colour"),
    [
        (0, 2, CertificateColour.NONE),
        (1, 2, CertificateColour.YELLOW),
        (2, 2, CertificateColour.GREEN),
        (3, 2, CertificateColour.GREEN),
        (1, 1, CertificateColour.GREEN),  # Janssen
    ],
)
def test_yellow_after_first_dose_green_when_series_complete(doses, series, colour):
    assert certificate_colour(doses, series) is colour


def test_colour_from_dcc_entry_accepts_whole_number_floats():
    assert colour_for_dcc_entry({"dn": 1.0, "sd": 2.0}) is CertificateColour.YELLOW
    with pytest.raises(InputError):
        certificate_colour(1, 0)
