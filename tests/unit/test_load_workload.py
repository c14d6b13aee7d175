"""The load test's workload: the same split in every process, doses that the
hub's own translators accept, and a mix that offers the rate asked for."""

from __future__ import annotations

import random

import orjson
import pytest

from bench.load import mix
from bench.load.workload import SitePeople, dose_bundle, dose_bundle_body, site_references, split_people, vxu_message
from vaxhub.fhir.hl7v2 import translate_vxu
from vaxhub.fhir.synthetic import CCCD_SYSTEM, patient_resource, site_immunization_system
from vaxhub.identity.keys import match_keys


@pytest.fixture
def people():
    # One per test: the split holds the pool of new people not yet sent, which picking uses up.
    return split_people(3000, 7, 800)


def test_the_split_is_the_same_in_every_process(people):
    again = split_people(3000, 7, 800)
    assert [p.person_id for p in again.known_people()] == [p.person_id for p in people.known_people()]
    assert len(people.known_people()) == 800 and people.fresh_count() > 0
    assert all(p.cccd and p.birth_date for p in people.known_people())


def test_new_people_are_never_sent_twice_and_known_doses_count_up(people):
    site = people.sites[0]
    site_people = SitePeople(people, site, 0.5, random.Random(1))
    picks = [site_people.pick() for _ in range(400)]
    new = [person.person_id for person, _dose, is_new in picks if is_new]
    assert len(new) == len(set(new))
    assert all(dose.number == 1 for _p, dose, is_new in picks if is_new)
    numbers: dict[str, list[int]] = {}
    for person, dose, is_new in picks:
        if not is_new:
            numbers.setdefault(person.person_id, []).append(dose.number)
    assert numbers and all(n == list(range(2, 2 + len(n))) for n in numbers.values())


def test_a_busy_site_takes_new_people_left_at_other_sites_and_none_is_sent_twice():
    people = split_people(1500, 11, 300)
    busy, quiet = people.sites[0], people.sites[1]
    own = len(people.fresh[busy.code])
    busy_picker, quiet_picker = SitePeople(people, busy, 1.0, random.Random(1)), SitePeople(people, quiet, 1.0, random.Random(2))
    busy_new = [p.person_id for p, _d, new in (busy_picker.pick() for _ in range(own * 3)) if new]
    quiet_new = [p.person_id for p, _d, new in (quiet_picker.pick() for _ in range(20)) if new]
    assert len(busy_new) == own * 3 and busy_picker.fresh_exhausted == 0  # the busy site never ran dry
    assert len(quiet_new) == 20 and quiet_picker.fresh_exhausted == 0
    assert len(set(busy_new) | set(quiet_new)) == len(busy_new) + len(quiet_new)
    assert people.unsent.left() == people.fresh_count() - len(busy_new) - len(quiet_new)


def test_a_bundle_is_conditional_creates_of_patients_and_their_doses_at_the_site(people):
    site = people.sites[1]
    doses = SitePeople(people, site, 0.4, random.Random(2)).pick_distinct(20)
    bundle = dose_bundle([(p, d) for p, d, _new in doses], site)
    entries = bundle["entry"]
    assert bundle["type"] == "transaction" and len(entries) == 40
    assert [e["resource"]["resourceType"] for e in entries[:2]] == ["Patient", "Immunization"]
    assert entries[0]["request"]["ifNoneExist"].startswith(f"identifier={CCCD_SYSTEM}|")
    assert entries[1]["resource"]["identifier"][0]["system"] == site_immunization_system(site.code)
    assert entries[1]["resource"]["patient"]["reference"] == entries[0]["fullUrl"]
    assert not any("urn:uuid" in str(e["resource"].get("location", "")) for e in entries)  # the site's stored Location


def _references(node) -> list[str]:
    if isinstance(node, dict):
        return [v for k, v in node.items() if k == "reference"] + [r for v in node.values() for r in _references(v)]
    if isinstance(node, list):
        return [r for v in node for r in _references(v)]
    return []


def test_a_bundle_body_refers_to_the_sites_stored_resources_and_to_its_own_patients(people):
    site = people.sites[2]
    doses = [(p, d) for p, d, _new in SitePeople(people, site, 0.4, random.Random(3)).pick_distinct(20)]
    body = dose_bundle_body(doses, site)
    stored = site_references(site)
    assert not any(urn.encode() in body for urn in stored)  # no site urn left anywhere
    bundle = orjson.loads(body)
    own = {e["fullUrl"] for e in bundle["entry"]}
    references = _references(bundle)
    assert references and all(r in own or r in stored.values() for r in references)
    immunizations = [e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == "Immunization"]
    assert all(i["location"]["reference"] in stored.values() and i["patient"]["reference"] in own for i in immunizations)
    assert all(p["actor"]["reference"] in stored.values() for i in immunizations for p in i.get("performer", []))
    assert bundle == dose_bundle(doses, site)


def test_a_vxu_translates_to_the_same_person_and_dose(people):
    site = people.sites[2]
    person, dose, _new = SitePeople(people, site, 1.0, random.Random(3)).pick()
    received = translate_vxu(vxu_message(person, dose, "LOAD-1"))
    patient, immunization = (e["resource"] for e in received.translation.bundle["entry"])
    assert any(i["system"] == CCCD_SYSTEM and i["value"] == person.cccd for i in patient["identifier"])
    assert patient["gender"] == person.sex
    assert immunization["identifier"][0] == {"use": "official", "system": site_immunization_system(site.code), "value": dose.dose_id}


def test_each_vxu_carries_its_own_persons_phone_and_province(people):
    """As the Bundle's Patient does: one phone for every VXU patient made one
    block of thousands of records in the master patient index."""
    site = people.sites[2]
    picker = SitePeople(people, site, 1.0, random.Random(5))
    seen_phones = set()
    for n in range(40):
        person, dose, _new = picker.pick()
        patient = translate_vxu(vxu_message(person, dose, f"LOAD-{n}")).translation.bundle["entry"][0]["resource"]
        from_vxu, from_bundle = match_keys(patient), match_keys(patient_resource(person, site))
        assert (from_vxu.phone, from_vxu.province) == (from_bundle.phone, from_bundle.province)
        seen_phones.add(from_vxu.phone)
    assert len(seen_phones) > 30


def test_the_mix_offers_the_rate_asked_for():
    offered = mix.offered_load(500, 160)
    assert sum(offered.users.values()) == 160
    doses = offered.rates["SiteBundleUser"] * mix.DOSES_PER_BUNDLE + offered.rates["VxuSenderUser"]
    assert doses == pytest.approx(500)
    assert all(rate > 0 for rate in offered.pacing().values())


def test_by_default_each_kind_has_the_users_to_send_its_rate_through_slow_answers():
    offered = mix.offered_load(500)
    for kind, rate in offered.rates.items():
        # Each user sends at most one request per answer: at the plan's pace
        # every user of the kind may wait ANSWER_SECONDS for each answer.
        assert offered.users[kind] / mix.ANSWER_SECONDS >= rate
        assert offered.pacing()[kind] <= 1 / mix.ANSWER_SECONDS
    assert offered.users["HealthBookUser"] == 300
