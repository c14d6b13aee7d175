"""The machine yardstick the benches and the load test report: it really
validates every resource it is given, and counts per Immunization."""

from __future__ import annotations

import orjson
import pytest
from pydantic import ValidationError

from bench.load.workload import dose_bundle_body, next_dose, split_people
from bench.yardstick import floor_ms_per_dose, machine_yardstick


@pytest.fixture(scope="module")
def people():
    return split_people(1500, 7, 400)


def _body(people) -> bytes:
    site = people.sites[0]
    return dose_bundle_body([(p, next_dose(people.population, p, 2, site)) for p in people.known[site.code][:5]], site)


def test_an_invalid_resource_fails_the_floor_instead_of_being_timed(people):
    bundle = orjson.loads(_body(people))
    bundle["entry"][1]["resource"]["occurrenceDateTime"] = "not a date"
    with pytest.raises(ValidationError):
        floor_ms_per_dose([orjson.dumps(bundle)])


def test_bodies_without_a_dose_have_no_floor(people):
    bundle = orjson.loads(_body(people))
    bundle["entry"] = [e for e in bundle["entry"] if e["resource"]["resourceType"] != "Immunization"]
    with pytest.raises(ValueError, match="no Immunization"):
        floor_ms_per_dose([orjson.dumps(bundle)])


def test_the_yardstick_is_a_positive_cpu_time_per_dose(people):
    assert floor_ms_per_dose([_body(people)]) > 0
    assert machine_yardstick(people, bundles=2, rounds=1) > 0
