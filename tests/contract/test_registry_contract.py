"""The registry ports' contract, run against every adapter.

`population_registry` is the in-memory fake and the zeep client talking to
the SOAP simulator over HTTP; `social_insurance` is the fake and the httpx
client talking to the REST simulator with an API key and with an OAuth 2.0
token. Any behaviour that differs between them fails here.
"""

from __future__ import annotations

import unicodedata

import pytest

from vaxhub.adapters.ports import (
    PersonClaim,
    PopulationRegistry,
    SocialInsurance,
    VerificationResult,
    VerificationStatus,
)
from vaxhub.adapters.registry_data import SAMPLE_CITIZENS

AN, HOA, HUONG, DUC = SAMPLE_CITIZENS


def claim_of(citizen, **changes) -> PersonClaim:
    fields = dict(full_name=citizen.full_name, birth_date=citizen.birth_date, sex=citizen.sex, cccd=citizen.cccd)
    fields.update(changes)
    return PersonClaim(**fields)


# -- population registry ------------------------------------------------------


def test_adapter_satisfies_the_port(population_registry):
    assert isinstance(population_registry, PopulationRegistry)


def test_claim_matching_the_registry_is_verified(population_registry):
    assert population_registry.verify(claim_of(AN)) == VerificationResult(
        VerificationStatus.VERIFIED, current_id=AN.cccd
    )


def test_name_in_another_case_spacing_and_unicode_form_is_verified(population_registry):
    decomposed_upper = unicodedata.normalize("NFD", "  NGUYỄN   văn AN ")
    result = population_registry.verify(claim_of(AN, full_name=decomposed_upper))
    assert result.status is VerificationStatus.VERIFIED


def test_name_spelled_without_diacritics_is_a_mismatch(population_registry):
    result = population_registry.verify(claim_of(AN, full_name="Nguyen Van An"))
    assert result.status is VerificationStatus.MISMATCH
    assert result.mismatches == {"full_name": ("Nguyen Van An", "Nguyễn Văn An")}


@pytest.mark.parametrize(
    ("field", "claimed"),
    [("full_name", "Nguyễn Văn Anh"), ("birth_date", "1990-04-03"), ("sex", "female")],
)
def test_each_disagreeing_field_is_reported_with_the_registry_value(population_registry, field, claimed):
    result = population_registry.verify(claim_of(AN, **{field: claimed}))
    assert result == VerificationResult(
        VerificationStatus.MISMATCH,
        current_id=AN.cccd,
        mismatches={field: (claimed, getattr(AN, field))},
    )


def test_every_disagreeing_field_is_reported_at_once(population_registry):
    result = population_registry.verify(claim_of(AN, birth_date="1991", sex="female"))
    assert result.mismatches == {"birth_date": ("1991", "1990-03-04"), "sex": ("female", "male")}


def test_year_only_claim_agrees_with_a_full_birth_date(population_registry):
    assert population_registry.verify(claim_of(AN, birth_date="1990")).verified


def test_full_birth_date_agrees_with_a_year_only_record(population_registry):
    assert population_registry.verify(claim_of(HOA, birth_date="1958-06-01")).verified


def test_unknown_cccd_is_not_found(population_registry):
    result = population_registry.verify(claim_of(AN, cccd="001090999999"))
    assert result == VerificationResult(VerificationStatus.NOT_FOUND)


def test_claim_made_with_an_old_cmnd_reports_the_current_cccd(population_registry):
    result = population_registry.verify(claim_of(HOA, cccd=None, cmnd=HOA.cmnd))
    assert result == VerificationResult(VerificationStatus.VERIFIED, current_id=HOA.cccd)


def test_cccd_is_preferred_when_both_ids_are_claimed(population_registry):
    result = population_registry.verify(claim_of(DUC, cmnd=AN.cmnd))
    assert result == VerificationResult(VerificationStatus.VERIFIED, current_id=DUC.cccd)


@pytest.mark.parametrize(
    "changes",
    [
        {"cccd": None},
        {"cccd": "00109001234"},  # 11 digits
        {"birth_date": "04/03/1990"},
        {"sex": "M"},
        {"full_name": "  "},
    ],
    ids=["no-id", "short-cccd", "non-iso-date", "non-fhir-sex", "blank-name"],
)
def test_claim_that_cannot_be_checked_is_an_error_without_asking(population_registry, changes):
    result = population_registry.verify(claim_of(AN, **changes))
    assert result.status is VerificationStatus.ERROR
    assert result.message


@pytest.mark.parametrize("citizen", [AN, HOA, HUONG], ids=["9-digit", "9-digit-year-only", "12-digit"])
def test_old_id_lookup_gives_the_current_cccd(population_registry, citizen):
    assert population_registry.lookup_by_old_id(citizen.cmnd) == citizen.cccd


def test_old_id_lookup_of_an_unknown_cmnd_is_none(population_registry):
    assert population_registry.lookup_by_old_id("999999999") is None


def test_old_id_lookup_refuses_a_malformed_number(population_registry):
    with pytest.raises(ValueError):
        population_registry.lookup_by_old_id("12345")


def test_many_claims_at_once_get_the_answers_each_gets_alone(population_registry):
    claims = [
        claim_of(AN),
        claim_of(AN, full_name="Nguyen Van An", sex="female"),
        claim_of(AN, cccd="001090999999"),
        claim_of(HOA, cccd=None, cmnd=HOA.cmnd),
        claim_of(AN, birth_date="04/03/1990"),  # refused before asking
        claim_of(DUC),
    ]
    assert population_registry.verify_many(claims) == [population_registry.verify(claim) for claim in claims]


def test_more_claims_than_one_call_carries_are_all_answered_in_order(population_registry, registry):
    from vaxhub.adapters.population_soap import BATCH_LIMIT

    citizens = list(registry)[:7]
    claims = [claim_of(citizens[i % len(citizens)], sex="female" if i % 5 == 0 else citizens[i % len(citizens)].sex)
              for i in range(BATCH_LIMIT + 30)]
    results = population_registry.verify_many(claims)
    assert results == [population_registry.verify(claim) for claim in claims]


# -- social insurance ---------------------------------------------------------


def test_insurance_adapter_satisfies_the_port(social_insurance):
    assert isinstance(social_insurance, SocialInsurance)


def test_insurance_lookup_by_bhxh_number(social_insurance):
    assert social_insurance.lookup(bhxh=AN.bhxh) == AN.insurance_record()


def test_insurance_lookup_by_cccd(social_insurance):
    assert social_insurance.lookup(cccd=HOA.cccd) == HOA.insurance_record()


def test_both_keys_find_the_same_person(social_insurance):
    assert social_insurance.lookup(bhxh=AN.bhxh) == social_insurance.lookup(cccd=AN.cccd)


def test_insured_person_without_a_card_has_no_coverage(social_insurance):
    record = social_insurance.lookup(bhxh=HUONG.bhxh)
    assert record is not None and record.coverage is None and record.full_name == "Phạm Thu Hương"


def test_coverage_has_card_number_and_validity(social_insurance):
    coverage = social_insurance.lookup(bhxh=AN.bhxh).coverage
    assert coverage.card_number == "GD4010123456789"
    assert coverage.valid_from.isoformat() == "2022-01-01" and coverage.valid_to.isoformat() == "2026-12-31"


def test_unknown_bhxh_number_is_none(social_insurance):
    assert social_insurance.lookup(bhxh="0000000001") is None


def test_citizen_not_enrolled_is_none_by_cccd(social_insurance):
    assert social_insurance.lookup(cccd=DUC.cccd) is None


def test_insurance_lookup_needs_a_key(social_insurance):
    with pytest.raises(ValueError):
        social_insurance.lookup()


def test_many_insurance_lookups_at_once_match_single_lookups(social_insurance):
    keys = [{"bhxh": AN.bhxh}, {"cccd": HOA.cccd}, {"bhxh": "0000000001"}, {"cccd": DUC.cccd}, {"bhxh": HUONG.bhxh}]
    assert social_insurance.lookup_many(keys) == [social_insurance.lookup(**key) for key in keys]
