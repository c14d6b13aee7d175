"""The COVID-19 vaccine code table: spellings, codes, and agreement with the
EU DCC value sets."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from vaxhub.errors import InvalidResource
from vaxhub.fhir import vaccines
from vaxhub.fhir.vaccines import (
    BOOSTER_INTERVAL_DAYS,
    CVX_SYSTEM,
    SECOND_BOOSTER_INTERVAL_DAYS,
    VACCINE_SYSTEM,
    all_vaccines,
    by_cvx,
    by_dcc_product,
    lookup,
    vaccine_codeable_concept,
)

VALUESETS = Path(__file__).resolve().parents[3].parent / "shared" / "data" / "eu-dcc-valuesets"


@pytest.mark.parametrize(
    ("spelling", "code"),
    [
        ("Astra", "VAXZEVRIA"),
        ("AZ", "VAXZEVRIA"),
        ("az", "VAXZEVRIA"),
        ("AstraZeneca", "VAXZEVRIA"),
        ("Astra Zeneca", "VAXZEVRIA"),
        ("ASTRA-ZENECA", "VAXZEVRIA"),
        ("Vắc xin AstraZeneca", "VAXZEVRIA"),
        ("Covishield", "COVISHIELD"),
        ("Pfizer", "COMIRNATY"),
        ("pfizer ", "COMIRNATY"),
        ("Pfizer-BioNTech", "COMIRNATY"),
        ("vaccine Pfizer", "COMIRNATY"),
        ("Pfizer trẻ em", "COMIRNATY-PAED"),
        ("PFIZER TRE EM", "COMIRNATY-PAED"),
        ("Moderna", "SPIKEVAX"),
        ("COVID-19 Vaccine Moderna", "SPIKEVAX"),
        ("Sputnik", "SPUTNIK-V"),
        ("Sputnik V", "SPUTNIK-V"),
        ("Vero Cell", "BBIBP-CORV"),
        ("VeroCell", "BBIBP-CORV"),
        ("vắc-xin Vero Cell", "BBIBP-CORV"),
        ("Sinopharm", "BBIBP-CORV"),
        ("Hayat-Vax", "HAYAT-VAX"),
        ("hayat vax", "HAYAT-VAX"),
        ("Abdala", "ABDALA"),
        ("ABDALA", "ABDALA"),
        ("J&J", "JANSSEN"),
        ("Johnson & Johnson", "JANSSEN"),
        ("Janssen", "JANSSEN"),
    ],
)
def test_spellings_from_spreadsheets_and_feeds_resolve(spelling, code):
    assert lookup(spelling).code == code


def test_our_codes_cvx_codes_and_dcc_products_resolve_through_lookup():
    assert lookup("SPIKEVAX").code == "SPIKEVAX"
    assert lookup("207").code == "SPIKEVAX"
    assert lookup("EU/1/21/1529").code == "VAXZEVRIA"
    assert lookup("Sputnik-V").code == "SPUTNIK-V"
    assert lookup("BBIBP-CorV").code == "BBIBP-CORV"


def test_every_listed_spelling_of_every_vaccine_resolves_to_it():
    for vaccine in all_vaccines():
        for spelling in (vaccine.code, vaccine.display, *vaccine.aliases):
            assert lookup(spelling) is vaccine, spelling


@pytest.mark.parametrize(
    "name",
    ["", "   ", "Nanocovax", "Sputnik Light", "COVID-19 vaccine", "vắc xin", "Astrazenca",
     "Sinovac", "CoronaVac", "Novavax", "999", "EU/1/21/1618"],
)
def test_unknown_names_are_refused_not_guessed(name):
    with pytest.raises(InvalidResource) as raised:
        lookup(name)
    assert "unknown vaccine" in raised.value.message
    assert raised.value.issues[0].code == "code-invalid"


def test_unknown_cvx_and_dcc_product_are_refused():
    with pytest.raises(InvalidResource):
        by_cvx("211")
    with pytest.raises(InvalidResource):
        by_dcc_product("CoronaVac")


def test_by_cvx_and_by_dcc_product():
    assert by_cvx("212").code == "JANSSEN"
    assert by_cvx(510).code == "BBIBP-CORV"
    assert by_cvx("218").code == "COMIRNATY-PAED"
    assert by_dcc_product("Abdala").code == "ABDALA"
    assert by_dcc_product("Hayat-Vax").code == "HAYAT-VAX"
    assert by_dcc_product("EU/1/20/1525").code == "JANSSEN"


def test_shared_codes_resolve_to_the_originator_product():
    assert by_cvx("210").code == "VAXZEVRIA"
    assert by_dcc_product("EU/1/20/1528").code == "COMIRNATY"


def test_abdala_and_hayat_vax_have_no_cvx_code():
    assert lookup("Abdala").cvx is None
    assert lookup("Hayat-Vax").cvx is None
    assert {v.code for v in all_vaccines() if v.cvx is None} == {"ABDALA", "HAYAT-VAX"}


def test_primary_series_lengths():
    doses = {v.code: v.primary_doses for v in all_vaccines()}
    assert doses["JANSSEN"] == 1
    assert doses["ABDALA"] == 3  # Cuban regimen: days 0, 14, 28
    assert all(n == 2 for code, n in doses.items() if code not in {"JANSSEN", "ABDALA"})


def test_interval_to_next_dose():
    az = lookup("AZ")
    assert az.days_to_next_dose(1) == az.interval_days
    assert az.days_to_next_dose(2) == BOOSTER_INTERVAL_DAYS
    assert az.days_to_next_dose(3) == SECOND_BOOSTER_INTERVAL_DAYS
    assert lookup("J&J").days_to_next_dose(1) == BOOSTER_INTERVAL_DAYS
    assert lookup("Abdala").days_to_next_dose(2) == 14
    for v in all_vaccines():
        if v.primary_doses > 1:
            assert v.min_interval_days <= v.interval_days


def test_codeable_concept_carries_cvx_and_our_coding():
    concept = vaccine_codeable_concept(lookup("Moderna"))
    assert concept["coding"] == [
        {"system": CVX_SYSTEM, "code": "207", "display": lookup("Moderna").cvx_display},
        {"system": VACCINE_SYSTEM, "code": "SPIKEVAX", "display": "Spikevax (Moderna)"},
    ]
    assert concept["text"] == "Spikevax (Moderna)"


def test_codeable_concept_without_cvx_has_our_coding_only_and_validates():
    from fhir.resources.R4B.codeableconcept import CodeableConcept

    for vaccine in all_vaccines():
        concept = vaccine_codeable_concept(vaccine)
        CodeableConcept.model_validate(concept)
        systems = [c["system"] for c in concept["coding"]]
        assert systems[-1] == VACCINE_SYSTEM
        assert (CVX_SYSTEM in systems) == (vaccine.cvx is not None)


def test_codes_are_unique():
    codes = [v.code for v in all_vaccines()]
    assert len(codes) == len(set(codes))
    assert vaccines.lookup is lookup


# --- agreement with the EU DCC value-set files ------------------------------

def _valueset(name: str) -> dict:
    if not VALUESETS.is_dir():
        pytest.skip(f"EU DCC value sets not present at {VALUESETS} (../shared/data is optional)")
    return json.loads((VALUESETS / name).read_text("utf-8"))


@pytest.mark.shared_data
def test_every_product_code_is_an_active_eu_value():
    values = _valueset("vaccine-medicinal-product.json")["valueSetValues"]
    for v in all_vaccines():
        assert v.dcc_mp in values, v.code
        assert values[v.dcc_mp]["active"], v.code


@pytest.mark.shared_data
def test_every_manufacturer_code_is_an_active_eu_value():
    values = _valueset("vaccine-mah-manf.json")["valueSetValues"]
    for v in all_vaccines():
        assert v.dcc_ma in values, v.code
        assert values[v.dcc_ma]["active"], v.code


@pytest.mark.shared_data
def test_every_prophylaxis_code_is_an_active_eu_value():
    values = _valueset("vaccine-prophylaxis.json")["valueSetValues"]
    for v in all_vaccines():
        assert v.dcc_vp in values, v.code
        assert values[v.dcc_vp]["active"], v.code


@pytest.mark.shared_data
def test_codes_follow_the_eu_encoding_instructions():
    instructions = _valueset("vaccine-encoding-instructions.json")["valueSetValues"]
    by_product = {row["vaccine-code"]: row for row in instructions.values()}
    for v in all_vaccines():
        row = by_product[v.dcc_mp]
        assert row["vaccine-manufacturer"] == v.dcc_ma, v.code
        assert v.dcc_vp in row["sct-codes"], v.code


@pytest.mark.shared_data
def test_eu_display_names_are_known_spellings():
    values = _valueset("vaccine-medicinal-product.json")["valueSetValues"]
    for v in all_vaccines():
        display = values[v.dcc_mp]["display"]
        assert lookup(display).dcc_mp == v.dcc_mp, display
