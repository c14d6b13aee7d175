"""How fast this machine is, in a unit the benches share: CPU milliseconds to
validate one dose (a Patient and its Immunization, as the load test's sites
send them) with the fhir.resources models, in this process.

It is the floor of `bench/dose_cost.py` (the least any FHIR server does per
dose), and the load test measures it before it starts anything, so that runs
on machines of different speeds can be told apart. Locust's own CPU per
request was that figure once; it moves whenever the load generator's work
changes, this one only when the models or the interpreter do.
"""

from __future__ import annotations

import random
import time

import orjson

from bench.load import workload
from vaxhub.fhir.resources import MODELS


def floor_ms_per_dose(bodies: list[bytes]) -> float:
    """CPU ms per Immunization to parse and validate every resource of these Bundle bodies."""
    doses = 0
    started = time.process_time()
    for body in bodies:
        for entry in orjson.loads(body)["entry"]:
            resource = entry["resource"]
            MODELS[resource["resourceType"]].model_validate(resource)
            doses += resource["resourceType"] == "Immunization"
    if not doses:
        raise ValueError("no Immunization in the bodies")
    return (time.process_time() - started) * 1000 / doses


def machine_yardstick(people: workload.LoadPeople, *, bundles: int = 25, rounds: int = 3) -> float:
    """`floor_ms_per_dose` over `bundles` fixed Bundles of 20 doses (the same
    in every run with the same population), the best of `rounds`: the least
    disturbed by whatever else the machine is doing."""
    rng = random.Random(0)
    bodies = []
    for index in range(bundles):
        site = people.sites[index % len(people.sites)]
        known = people.known[site.code] or people.known_people()
        chosen = rng.sample(known, min(20, len(known)))
        bodies.append(workload.dose_bundle_body([(p, workload.next_dose(people.population, p, 2, site)) for p in chosen], site))
    floor_ms_per_dose(bodies)  # not counted: the models build their validators on first use
    return min(floor_ms_per_dose(bodies) for _ in range(rounds))
