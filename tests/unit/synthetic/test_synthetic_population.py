"""The synthetic Vietnamese population: determinism, identity numbers,
doses, FHIR resources, transaction bundles and noisy copies."""

from __future__ import annotations

import random
import re
import unicodedata
from collections import Counter
from datetime import date

import pytest
from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.immunization import Immunization
from fhir.resources.R4B.location import Location
from fhir.resources.R4B.organization import Organization
from fhir.resources.R4B.patient import Patient
from fhir.resources.R4B.practitioner import Practitioner

from vaxhub.fhir import synthetic as syn
from vaxhub.fhir.text import fold
from vaxhub.fhir.vaccines import BOOSTER_INTERVAL_DAYS, SECOND_BOOSTER_INTERVAL_DAYS

E164_VN_MOBILE = re.compile(r"^\+84[35789]\d{8}$")


@pytest.fixture(scope="module")
def population() -> syn.Population:
    return syn.generate_population(4000, seed=7)


def _age_on(person: syn.Person, on: date) -> int:
    born = person.birth_date or date(person.birth_year, 7, 1)
    return on.year - born.year - ((on.month, on.day) < (born.month, born.day))


# --- determinism -------------------------------------------------------------

def test_same_seed_gives_the_same_population_and_bundles():
    a = syn.generate_population(600, seed=42)
    b = syn.generate_population(600, seed=42)
    assert a.people == b.people
    assert a.sites == b.sites
    assert a.doses == b.doses
    assert list(syn.population_bundles(a, 50)) == list(syn.population_bundles(b, 50))


def test_another_seed_gives_another_population():
    a = syn.generate_population(200, seed=1)
    b = syn.generate_population(200, seed=2)
    assert [p.cccd for p in a.people] != [p.cccd for p in b.people]
    assert {p.uuid for p in a.people}.isdisjoint(p.uuid for p in b.people)


def test_generation_leaves_the_garbage_collector_as_it_found_it():
    import gc

    assert gc.isenabled()
    syn.generate_population(10, seed=0)
    assert gc.isenabled()


def test_size_is_exact(population):
    assert len(population.people) == 4000
    assert len({p.person_id for p in population.people}) == 4000


# --- people ------------------------------------------------------------------

def test_cccd_digits_agree_with_province_sex_and_birth_year(population):
    with_cccd = [p for p in population.people if p.cccd]
    assert len(with_cccd) > 0.75 * len(population.people)
    for person in with_cccd:
        cccd = person.cccd
        assert len(cccd) == 12 and cccd.isdigit()
        assert cccd[:3] == person.birth_province_code
        assert cccd[:3] in syn.PROVINCE_NAMES
        century = 0 if person.birth_year < 2000 else 2
        assert int(cccd[3]) == century + (1 if person.sex == "female" else 0)
        assert cccd[4:6] == f"{person.birth_year % 100:02d}"
    assert len({p.cccd for p in with_cccd}) == len(with_cccd)


def test_people_born_in_the_2000s_get_century_digits_2_and_3(population):
    digits = {p.cccd[3] for p in population.people if p.cccd and p.birth_year >= 2000}
    assert digits == {"2", "3"}


def test_cmnd_bhxh_and_phone_formats(population):
    people = population.people
    cmnds = [p.cmnd for p in people if p.cmnd]
    assert cmnds and all(len(c) == 9 and c.isdigit() for c in cmnds)
    assert all(p.birth_year <= 2002 for p in people if p.cmnd)
    assert len(set(cmnds)) == len(cmnds)
    bhxhs = [p for p in people if p.bhxh]
    assert all(len(p.bhxh) == 10 and p.bhxh.isdigit() for p in bhxhs)
    assert all(p.bhxh[:2] == p.province_code[1:] for p in bhxhs)
    phones = [p.phone for p in people if p.phone]
    assert phones and all(E164_VN_MOBILE.match(x) for x in phones)


def test_families_share_a_phone(population):
    shared = Counter(p.phone for p in population.people if p.phone)
    assert any(n > 1 for n in shared.values())
    for phone, n in shared.items():
        if n > 1:
            owners = {p.household_id for p in population.people if p.phone == phone}
            assert len(owners) == 1


def test_surnames_follow_vietnamese_frequencies(population):
    counts = Counter(p.family for p in population.people)
    share = {name: counts[name] / len(population.people) for name in counts}
    assert 0.33 < share["Nguyễn"] < 0.43
    assert 0.07 < share["Trần"] < 0.15
    assert counts.most_common(1)[0][0] == "Nguyễn"


def test_names_are_nfc_with_middle_names_by_sex(population):
    for person in population.people:
        for part in (person.family, *person.middle, person.given):
            assert part == unicodedata.normalize("NFC", part)
        if person.sex == "male":
            assert "Thị" not in person.middle
        else:
            assert "Văn" not in person.middle
    assert any(fold(p.full_name) != p.full_name.lower() for p in population.people)


def test_some_birth_dates_are_year_only(population):
    year_only = [p for p in population.people if p.birth_date is None]
    assert year_only
    assert all(re.fullmatch(r"\d{4}", p.birth_date_text) for p in year_only)


def test_a_household_lives_in_one_province(population):
    for members in {population.household(p) for p in population.people}:
        assert len({m.province_code for m in members}) == 1


# --- doses -------------------------------------------------------------------

def test_doses_fall_in_the_programme_and_respect_availability_and_age(population):
    doses = list(population.all_doses())
    assert len(doses) > len(population.people)
    people = {p.person_id: p for p in population.people}
    for dose in doses:
        assert syn.PROGRAMME_START <= dose.occurred <= syn.PROGRAMME_END
        assert dose.vaccine.in_use_from <= dose.occurred
        # A series is chosen for the age at its first dose (a child who turns
        # 12 between doses completes the paediatric series); boosters for the
        # age on the day.
        person = people[dose.person_id]
        chosen_on = dose.occurred if dose.booster else population.doses_of(person)[0].occurred
        assert dose.vaccine.suits_age(_age_on(person, chosen_on))
        assert dose.practitioner in dose.site.practitioners
        assert dose.lot_number


def test_dose_sequences_respect_intervals(population):
    for person in population.people:
        doses = population.doses_of(person)
        if not doses:
            continue
        primary = doses[0].vaccine
        assert [d.number for d in doses] == list(range(1, len(doses) + 1))
        assert len(doses) <= 4
        for earlier, later in zip(doses, doses[1:]):
            gap = (later.occurred - earlier.occurred).days
            if not later.booster:
                assert later.vaccine == primary
                assert gap >= primary.min_interval_days
            elif later.number == primary.primary_doses + 1:
                assert gap >= BOOSTER_INTERVAL_DAYS
                assert later.vaccine.used_as_booster
            else:
                assert gap >= SECOND_BOOSTER_INTERVAL_DAYS
        for dose in doses:
            if dose.booster:
                assert dose.series_doses == dose.number
            else:
                assert dose.series_doses == primary.primary_doses


def test_young_children_get_no_doses_and_5_to_11_get_the_paediatric_vaccine(population):
    for person in population.people:
        doses = population.doses_of(person)
        if 2022 - person.birth_year < 5:
            assert not doses
        elif 2022 - person.birth_year <= 10:
            assert all(d.vaccine.code == "COMIRNATY-PAED" for d in doses)


def test_lot_numbers_look_like_their_makers(population):
    lots = {d.vaccine.code: d.lot_number for d in population.all_doses()}
    assert re.fullmatch(r"F[EFGJKL]\d{4}", lots["COMIRNATY"])
    assert re.fullmatch(r"20(21|22)\d{2}B\d{4}", lots["BBIBP-CORV"])


# --- FHIR resources ----------------------------------------------------------

def test_patient_resource_validates_and_carries_identifiers(population):
    people = population.people[:300]
    for person in people:
        site = population.home_site(person)
        resource = syn.patient_resource(person, site)
        Patient.model_validate(resource)
        systems = [i["system"] for i in resource["identifier"]]
        assert systems[-1] == syn.site_patient_system(site.code)
        assert (syn.CCCD_SYSTEM in systems) == (person.cccd is not None)
        assert (syn.CMND_SYSTEM in systems) == (person.cmnd is not None)
        assert (syn.BHXH_SYSTEM in systems) == (person.bhxh is not None)
        name = resource["name"][0]
        assert name["use"] == "official"
        assert name["family"] == person.family
        assert name["given"] == [*person.middle, person.given]
        assert resource["gender"] == person.sex
        assert resource["birthDate"] == person.birth_date_text


def test_site_local_patient_numbers_differ_between_sites(population):
    person = population.people[0]
    a, b = population.sites[:2]
    assert syn.site_local_patient_number(a, person) != syn.site_local_patient_number(b, person)
    assert syn.site_local_patient_number(a, person) == syn.site_local_patient_number(a, person)


def test_immunization_resource_validates(population):
    doses = list(population.all_doses())[:500]
    for dose in doses:
        resource = syn.immunization_resource(dose, "urn:uuid:" + population.people[0].uuid)
        Immunization.model_validate(resource)
        assert resource["status"] == "completed"
        assert resource["identifier"][0]["system"] == syn.site_immunization_system(dose.site.code)
        applied = resource["protocolApplied"][0]
        assert applied["doseNumberPositiveInt"] == dose.number
        assert applied["seriesDosesPositiveInt"] == dose.series_doses
        assert resource["lotNumber"] == dose.lot_number


def test_site_resources_validate(population):
    for site in population.sites:
        Organization.model_validate(syn.organization_resource(site))
        Location.model_validate(syn.location_resource(site))
        assert 2 <= len(site.practitioners) <= 5
        for practitioner in site.practitioners:
            Practitioner.model_validate(syn.practitioner_resource(practitioner))
    names = [s.name for s in population.sites]
    assert len(names) == len(set(names))
    assert all(n.startswith(("Trạm Y tế", "Trung tâm Y tế", "Bệnh viện")) for n in names)


# --- transaction bundles -----------------------------------------------------

def _references(value):
    if isinstance(value, dict):
        for key, item in value.items():
            if key == "reference":
                yield item
            else:
                yield from _references(item)
    elif isinstance(value, list):
        for item in value:
            yield from _references(item)


def test_bundles_are_self_contained_transactions(population):
    bundles = list(syn.population_bundles(population, 60))
    assert len(bundles) > 1
    for bundle in bundles[:5]:
        Bundle.model_validate(bundle)
    for bundle in bundles:
        assert bundle["type"] == "transaction"
        full_urls = [e["fullUrl"] for e in bundle["entry"]]
        assert len(full_urls) == len(set(full_urls))
        assert all(u.startswith("urn:uuid:") for u in full_urls)
        kinds = {e["fullUrl"]: e["resource"]["resourceType"] for e in bundle["entry"]}
        for entry in bundle["entry"]:
            for reference in _references(entry["resource"]):
                assert reference in kinds, reference
            if entry["resource"]["resourceType"] == "Immunization":
                assert kinds[entry["resource"]["patient"]["reference"]] == "Patient"


def test_bundle_entries_are_conditional_creates_on_business_identifiers(population):
    bundle = next(syn.population_bundles(population, 80))
    for entry in bundle["entry"]:
        resource, request = entry["resource"], entry["request"]
        assert request["method"] == "POST"
        assert request["url"] == resource["resourceType"]
        first = resource["identifier"][0]
        assert request["ifNoneExist"] == f"identifier={first['system']}|{first['value']}"
    patients = [e for e in bundle["entry"] if e["resource"]["resourceType"] == "Patient"]
    with_cccd = [e for e in patients if e["resource"]["identifier"][0]["system"] == syn.CCCD_SYSTEM]
    assert with_cccd


def test_bundles_cover_everyone_once_and_keep_a_person_with_their_doses(population):
    seen: Counter[str] = Counter()
    immunizations = 0
    for bundle in syn.population_bundles(population, 60):
        assert len(bundle["entry"]) <= 60
        for entry in bundle["entry"]:
            kind = entry["resource"]["resourceType"]
            if kind == "Patient":
                seen[entry["fullUrl"]] += 1
            elif kind == "Immunization":
                immunizations += 1
    assert len(seen) == len(population.people)
    assert set(seen.values()) == {1}
    assert immunizations == sum(1 for _ in population.all_doses())


def test_transaction_bundle_of_explicit_entries(population):
    person = next(p for p in population.people if population.doses_of(p))
    entries = syn.site_entries(population.home_site(person))
    entries += [e for d in population.doses_of(person) if d.site.code != person.site_code
                for e in syn.site_entries(d.site)]
    entries += syn.person_entries(population, person)
    unique = list({e.full_url: e for e in entries}.values())
    bundle = syn.transaction_bundle(unique)
    Bundle.model_validate(bundle)
    assert bundle["entry"][-1]["resource"]["patient"]["reference"] == f"urn:uuid:{person.uuid}"


# --- noisy copies ------------------------------------------------------------

def _person_with(population, predicate):
    return next(p for p in population.people if predicate(p))


def test_noise_drop_diacritics(population):
    person = _person_with(population, lambda p: p.family == "Nguyễn")
    noisy = syn.noisy_copy(population, person, random.Random(1), kinds=["drop_diacritics"])
    assert noisy.record.family == "Nguyen"
    assert noisy.record.full_name == " ".join(w.capitalize() for w in fold(person.full_name).split())
    assert noisy.truth is person
    assert noisy.record.uuid != person.uuid
    assert noisy.site.code != person.site_code == noisy.truth.site_code
    assert noisy.record.site_code == noisy.site.code


def test_noise_typo_changes_one_name_part(population):
    person = population.people[3]
    noisy = syn.noisy_copy(population, person, random.Random(2), kinds=["typo"])
    before = (person.family, person.given)
    after = (noisy.record.family, noisy.record.given)
    assert sum(a != b for a, b in zip(before, after)) == 1
    assert noisy.record.cccd == person.cccd


def test_noise_given_first_reads_the_name_back_in_the_wrong_order(population):
    person = _person_with(population, lambda p: len(p.middle) == 1)
    noisy = syn.noisy_copy(population, person, random.Random(3), kinds=["given_first"])
    assert noisy.record.family == person.middle[0]
    assert noisy.record.given == person.family
    assert noisy.record.middle == (person.given,)


def test_noise_identifiers_and_phone(population):
    person = _person_with(population, lambda p: p.cccd and p.cmnd)
    missing = syn.noisy_copy(population, person, random.Random(4), kinds=["missing_cccd"])
    assert missing.record.cccd is None and missing.record.cmnd == person.cmnd
    old = syn.noisy_copy(population, person, random.Random(4), kinds=["cmnd_instead"])
    patient = syn.patient_resource(old.record, old.site)
    assert patient["identifier"][0]["system"] == syn.CMND_SYSTEM
    relative = _person_with(
        population,
        lambda p: any(m.phone and m.phone != p.phone for m in population.household(p)),
    )
    phone = syn.noisy_copy(population, relative, random.Random(5), kinds=["family_phone"])
    assert phone.record.phone != relative.phone
    assert phone.record.phone in {m.phone for m in population.household(relative)}


def test_noise_that_does_not_apply_is_refused(population):
    person = _person_with(population, lambda p: p.cmnd is None)
    with pytest.raises(ValueError):
        syn.noisy_copy(population, person, random.Random(0), kinds=["cmnd_instead"])
    with pytest.raises(ValueError):
        syn.noisy_copy(population, person, random.Random(0), kinds=["bogus"])


def test_noisy_copies_are_deterministic_and_validate(population):
    a = syn.noisy_copies(population, 200, seed=9)
    b = syn.noisy_copies(population, 200, seed=9)
    assert a == b
    kinds = Counter(k for record in a for k in record.changes)
    assert set(kinds) == set(syn.NOISE_KINDS)
    for record in a:
        assert 1 <= len(record.changes) <= 3
        assert record.record.person_id == record.truth.person_id
        assert record.record != record.truth
        Patient.model_validate(syn.patient_resource(record.record, record.site))


def test_site_local_patient_numbers_never_collide_within_a_site():
    big = syn.generate_population(20000, seed=11, site_count=2)
    for site in big.sites:
        numbers = [syn.site_local_patient_number(site, p) for p in big.people]
        assert len(set(numbers)) == len(numbers)
