"""The quick validity check (vaxhub.fhir.quick_check) never vouches for a
resource the fhir.resources models refuse, and it does vouch for what sites
and the hub's own translators send, so the models are rarely asked."""

from __future__ import annotations

import copy
import json
import random
from pathlib import Path

import pytest
from pydantic import ValidationError

from vaxhub.fhir import synthetic
from vaxhub.fhir.quick_check import quick_accepts
from vaxhub.fhir.resources import MODELS

SHARED_EXAMPLES = Path(__file__).resolve().parents[4] / "shared" / "data" / "fhir-r4-examples"

# Values a mutation writes in place of another: wrong types, empty and blank
# values, impossible dates, a leap second, nulls in lists, nested objects.
ODD_VALUES = [
    None, "", " ", "  padded ", 0, -3, 12, 1.5, True, False, "true", "yes", [], {}, [None], [1], ["a", None],
    {"x": 1}, {"resourceType": "Patient"}, "2021-02-30", "2021-13-01", "2021-06-30T25:00:00+07:00",
    "2021-06-30T09:00:00", "2016-12-31T23:59:60Z", "2021-06-30T09:00:00+07:00", "2021", "21-06-30", "abc def",
    "urn:uuid:not-a-uuid", "Patient/", "http://example.org/a b", "\u0000", "x" * 300, {"reference": "Patient/1"},
    {"coding": [{"system": "http://snomed.info/sct", "code": "840539006"}]}, [{"url": "http://e.org/x", "valueString": "v"}],
    [{"valueString": "no url"}], [{"url": "http://e.org/x", "valueString": "a", "valueBoolean": True}],
]
# Keys a mutation may add: choice-group members (two of one group is invalid),
# primitive-extension siblings, contained resources, unknown names.
EXTRA_KEYS = [
    "occurrenceString", "occurrenceDateTime", "deceasedBoolean", "deceasedDateTime", "multipleBirthBoolean",
    "multipleBirthInteger", "doseNumberString", "doseNumberPositiveInt", "seriesDosesString", "valueString",
    "valueBoolean", "_birthDate", "_status", "id", "contained", "extension", "modifierExtension", "text",
    "resourceType", "fhir_comments", "unknownElement", "birthdate", "status",
]


def _corpus() -> list[dict]:
    population = synthetic.generate_population(400, seed=11)
    resources = []
    for bundle in population_bundles_of(population):
        resources += [entry["resource"] for entry in bundle["entry"]]
    return resources


def population_bundles_of(population) -> list[dict]:
    return list(synthetic.population_bundles(population, entries_per_bundle=200))


def _nodes(node, found: list) -> list:
    if isinstance(node, dict):
        found.append(node)
        for value in node.values():
            _nodes(value, found)
    elif isinstance(node, list):
        for item in node:
            _nodes(item, found)
    return found


def _mutate(resource: dict, rng: random.Random) -> dict:
    changed = copy.deepcopy(resource)
    node = rng.choice(_nodes(changed, []))
    action = rng.random()
    keys = [k for k in node if k != "resourceType"]
    if action < 0.25 and keys:
        del node[rng.choice(keys)]
    elif action < 0.65 and keys:
        key = rng.choice(keys)
        value = node[key]
        roll = rng.random()
        if roll < 0.15 and isinstance(value, list) and value:
            node[key] = value[0]  # a single value where FHIR has an array
        elif roll < 0.3 and not isinstance(value, list):
            node[key] = [value]  # an array where FHIR has a single value
        else:
            node[key] = copy.deepcopy(rng.choice(ODD_VALUES))
    else:
        source = rng.choice(_nodes(copy.deepcopy(resource), []))
        borrowed = [v for k, v in source.items() if k != "resourceType"]
        pool = borrowed + ODD_VALUES if borrowed else ODD_VALUES
        node[rng.choice(EXTRA_KEYS)] = copy.deepcopy(rng.choice(pool))
    return changed


def _model_accepts(resource: dict) -> bool:
    try:
        MODELS[resource["resourceType"]].model_validate(resource)
        return True
    except (ValidationError, ValueError, TypeError):
        return False


def test_the_hubs_own_resources_pass_quickly():
    corpus = _corpus()
    kinds = {r["resourceType"] for r in corpus}
    assert {"Patient", "Immunization", "Organization", "Location", "Practitioner"} <= kinds
    declined = [r for r in corpus if not quick_accepts(MODELS[r["resourceType"]], r)]
    assert declined == []
    assert all(_model_accepts(r) for r in corpus[:200])  # and the models agree they are valid


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_never_vouches_for_what_the_models_refuse(seed):
    rng = random.Random(seed)
    corpus = [r for r in _corpus() if r["resourceType"] in ("Patient", "Immunization", "Location", "Practitioner")]
    vouched = refused_by_model = 0
    for _ in range(1500):
        resource = rng.choice(corpus)
        for _ in range(rng.choice((1, 1, 2, 3))):
            resource = _mutate(resource, rng)
        if not isinstance(resource.get("resourceType"), str) or resource["resourceType"] not in MODELS:
            continue
        quick = quick_accepts(MODELS[resource["resourceType"]], resource)
        model = _model_accepts(resource)
        if quick:
            vouched += 1
            assert model, f"quick check vouched for a resource the model refuses: {json.dumps(resource, ensure_ascii=False)}"
        refused_by_model += not model
    # The mutations produce both kinds, so the comparison above means something.
    assert vouched > 150 and refused_by_model > 500


def test_declines_what_it_does_not_cover():
    patient = synthetic.patient_resource(*_person_and_site())
    model = MODELS["Patient"]
    assert quick_accepts(model, patient)
    for changed in (
        {**patient, "_gender": {"extension": [{"url": "http://e.org/x", "valueString": "why"}]}},  # primitive extension
        {**patient, "contained": [{"resourceType": "Organization", "name": "A"}]},  # contained resource
        {**patient, "gender": None},  # explicit null
        {**patient, "telecom": []},  # empty array
        {**patient, "resourceType": "Immunization"},
        "not an object",
    ):
        assert not quick_accepts(model, changed)


def _person_and_site():
    population = synthetic.generate_population(50, seed=3)
    person = population.people[0]
    site = next(s for s in population.sites if s.code == person.site_code)
    return person, site


def test_the_published_examples_agree_with_the_models():
    if not SHARED_EXAMPLES.is_dir():
        pytest.skip(f"{SHARED_EXAMPLES} is absent (the shared test corpora are not beside this clone)")
    seen = 0
    for path in sorted(SHARED_EXAMPLES.glob("*.json")):
        resource = json.loads(path.read_text(encoding="utf-8"))
        if resource.get("resourceType") not in MODELS:
            continue
        seen += 1
        if quick_accepts(MODELS[resource["resourceType"]], resource):
            assert _model_accepts(resource), path.name
    assert seen >= 5
