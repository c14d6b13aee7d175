"""The synthetic registry shared by the fakes and the simulators."""

from __future__ import annotations

import re

from vaxhub.adapters.registry_data import SAMPLE_CITIZENS, SyntheticRegistry, generate_citizens


def test_registry_round_trips_through_a_json_file(tmp_path):
    registry = SyntheticRegistry([*SAMPLE_CITIZENS, *generate_citizens(10, seed=3)])
    path = tmp_path / "people.json"
    registry.write_json_file(path)
    assert "Nguyễn Văn An" in path.read_text(encoding="utf-8")
    assert list(SyntheticRegistry.from_json_file(path)) == list(registry)


def test_registry_loads_plain_records():
    registry = SyntheticRegistry([{"cccd": "001090012345", "cmnd": "012345678", "full_name": "Nguyễn Văn An",
                                   "birth_date": "1990", "sex": "male"}])
    assert registry.by_cmnd("012345678").cccd == "001090012345"
    assert registry.by_cccd("001090012345").insurance_record() is None


def test_generated_people_have_well_formed_numbers():
    people = generate_citizens(200, seed=5)
    assert len({p.cccd for p in people}) == 200
    for person in people:
        year = int(person.birth_date[:4])
        century_and_sex = (0 if year < 2000 else 2) + (person.sex == "female")
        assert re.fullmatch(rf"0\d\d{century_and_sex}{year % 100:02d}\d{{6}}", person.cccd)
        assert person.cmnd is None or re.fullmatch(r"\d{9}", person.cmnd)
        if person.bhxh:
            assert re.fullmatch(r"\d{10}", person.bhxh)
            assert re.fullmatch(rf"[A-Z]{{2}}\d{person.bhxh[:2]}{person.bhxh}", person.coverage.card_number)
            assert person.coverage.valid_from < person.coverage.valid_to


def test_same_seed_gives_the_same_people():
    assert generate_citizens(20, seed=9) == generate_citizens(20, seed=9)
    assert generate_citizens(20, seed=9) != generate_citizens(20, seed=10)

