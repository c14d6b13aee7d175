"""What the load's sites send: people split into known and new, their next
dose, and that dose as a FHIR transaction Bundle or an HL7 v2 VXU^V04.

No I/O: the runner (which seeds the known people) and the locust users (which
send the rest) build the same split from the same synthetic population and
seed, so neither has to ship the population to the other.

People in the load are synthetic people who have a CCCD, a full birth date
and at least one dose in the synthetic history: the CCCD is the national
business identifier, so any site's conditional create finds the stored
Patient, and every one of them is in the registry simulators' data.
"""

from __future__ import annotations

import random
import uuid
from collections import deque
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

import orjson

from vaxhub.fhir import synthetic
from vaxhub.fhir.synthetic import Dose, Person, Population, Site

# A booster beyond the synthetic history comes this long after the dose before it.
BOOSTER_INTERVAL_DAYS = 120


@dataclass(frozen=True)
class LoadPeople:
    """The population and, per home site, the people seeded before the load
    (`known`, stored with their first dose) and those the load creates (`fresh`)."""

    population: Population
    known: dict[str, list[Person]]
    fresh: dict[str, list[Person]]
    # The new people not yet sent, shared by every site's `SitePeople`.
    unsent: "FreshPeople" = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "unsent", FreshPeople(self.fresh))

    @property
    def sites(self) -> tuple[Site, ...]:
        return self.population.sites

    def known_people(self) -> list[Person]:
        return [p for people in self.known.values() for p in people]

    def fresh_count(self) -> int:
        return sum(len(people) for people in self.fresh.values())


class FreshPeople:
    """New people by home site, each handed out once. A site takes its own
    first; once they are gone it takes one from the site with the most left
    (a person may be vaccinated anywhere). Users are spread over the sites
    round robin and the synthetic sites differ in size, so busy sites ran
    dry while others kept theirs, and known people had to stand in: the share
    of doses for new people, and with it the outbox work, fell below plan."""

    def __init__(self, fresh: dict[str, list[Person]]):
        self._left = {code: deque(people) for code, people in fresh.items()}

    def take(self, site_code: str) -> Person | None:
        own = self._left.get(site_code)
        if own:
            return own.popleft()
        donor = max(self._left.values(), key=len, default=None)
        return donor.pop() if donor else None

    def left(self) -> int:
        return sum(len(people) for people in self._left.values())


def eligible(population: Population, person: Person) -> bool:
    return bool(person.cccd and person.birth_date and population.doses_of(person))


def split_people(size: int, seed: int, known: int) -> LoadPeople:
    """The same split in every process that asks with the same arguments."""
    population = synthetic.generate_population(size, seed=seed)
    people = [p for p in population.people if eligible(population, p)]
    random.Random(seed).shuffle(people)
    known_by_site: dict[str, list[Person]] = {s.code: [] for s in population.sites}
    fresh_by_site: dict[str, list[Person]] = {s.code: [] for s in population.sites}
    for index, person in enumerate(people):
        (known_by_site if index < known else fresh_by_site)[person.site_code].append(person)
    return LoadPeople(population, known_by_site, fresh_by_site)


def first_dose_share(population: Population) -> float:
    """First doses among all doses of the synthetic history: the share of a
    day's doses that belong to someone the hub has not seen yet."""
    vaccinated = sum(1 for p in population.people if population.doses_of(p))
    doses = sum(len(d) for d in population.doses.values())
    return vaccinated / doses if doses else 0.0


def people_needed(rate: float, seconds: float, new_share: float, known: int, *, margin: float = 1.6) -> int:
    """Population size that leaves enough new people for `rate` Immunizations/s
    over `seconds` (about 85 % of synthetic people are eligible; the margin
    covers sites whose users draw faster than their share of the people)."""
    fresh = rate * seconds * new_share * margin
    return int((known + fresh) / 0.85) + 500


def next_dose(population: Population, person: Person, number: int, site: Site) -> Dose:
    """Dose `number` of `person`, given at `site` under a fresh business identifier.

    Doses the synthetic history holds keep their vaccine, date and lot; later
    ones are boosters of the last vaccine, `BOOSTER_INTERVAL_DAYS` apart (never
    in the future)."""
    history = population.doses_of(person)
    if number <= len(history):
        base, occurred = history[number - 1], history[number - 1].occurred
        booster, series = base.booster, base.series_doses
    else:
        base = history[-1]
        occurred = min(base.occurred + timedelta(days=BOOSTER_INTERVAL_DAYS * (number - len(history))), date.today())
        booster, series = True, number
    return base._replace(
        dose_id=uuid.uuid4().hex, uuid=str(uuid.uuid4()), number=number, series_doses=series, booster=booster,
        occurred=occurred, site=site, practitioner=site.practitioners[(number - 1) % len(site.practitioners)],
    )


def site_references(site: Site) -> dict[str, str]:
    """urn:uuid of the site's Organization, Location and vaccinators → their stored ids
    (registered once before the load, so Bundles refer to them by relative reference)."""
    return {
        entry.full_url: f"{entry.resource['resourceType']}/{entry.full_url.removeprefix('urn:uuid:')}"
        for entry in synthetic.site_entries(site)
    }


def site_resources(site: Site) -> list[dict[str, Any]]:
    """The site's resources with their ids, for PUT; Organizations first (the others refer to them)."""
    resources = [
        {**entry.resource, "id": entry.full_url.removeprefix("urn:uuid:")} for entry in synthetic.site_entries(site)
    ]
    return _rewrite_references(sorted(resources, key=lambda r: r["resourceType"] != "Organization"), site_references(site))


def _rewrite_references(node: Any, mapping: dict[str, str]) -> Any:
    if isinstance(node, dict):
        return {k: (mapping.get(v, v) if k == "reference" else _rewrite_references(v, mapping)) for k, v in node.items()}
    if isinstance(node, list):
        return [_rewrite_references(v, mapping) for v in node]
    return node


def dose_bundle(doses: list[tuple[Person, Dose]], site: Site) -> dict[str, Any]:
    """A transaction Bundle from `site`: each person's Patient as the site
    records them, then their dose, every entry a conditional create on its
    business identifier (CCCD for the Patient, the site's number for the dose)."""
    return orjson.loads(dose_bundle_body(doses, site))


def dose_bundle_body(doses: list[tuple[Person, Dose]], site: Site) -> bytes:
    """`dose_bundle` as the JSON a site sends. Built as text, the site's
    references replaced in it: walking the Bundle's dicts to rewrite them cost
    the load generator more CPU than the rest of building it."""
    entries = []
    for person, dose in doses:
        patient_url = f"urn:uuid:{person.uuid}"
        entries.append(synthetic.BundleEntry(patient_url, synthetic.patient_resource(person, site)))
        entries.append(synthetic.BundleEntry(f"urn:uuid:{dose.uuid}", synthetic.immunization_resource(dose, patient_url)))
    body = orjson.dumps(synthetic.transaction_bundle(entries))
    for sent, stored in _reference_texts(site):
        body = body.replace(sent, stored)
    return body


_REFERENCE_TEXTS: dict[str, tuple[tuple[bytes, bytes], ...]] = {}


def _reference_texts(site: Site) -> tuple[tuple[bytes, bytes], ...]:
    """The site's `"reference":"urn:uuid:…"` members as orjson writes them, each with its stored form."""
    found = _REFERENCE_TEXTS.get(site.code)
    if found is None:
        found = _REFERENCE_TEXTS[site.code] = tuple(
            (orjson.dumps({"reference": urn})[1:-1], orjson.dumps({"reference": stored})[1:-1])
            for urn, stored in site_references(site).items()
        )
    return found


def vxu_message(person: Person, dose: Dose, control_id: str) -> str:
    """One VXU^V04 (CDC IG 2.5.1 layout, the project's message builder) for one dose."""
    from tests.hl7v2_messages import _set_field, new_dose, vxu

    vaccine = dose.vaccine
    rxa5 = f"{vaccine.cvx}^{vaccine.cvx_display}^CVX" if vaccine.cvx else f"^{vaccine.display}^"
    order = new_dose(order=dose.dose_id, date=dose.occurred.strftime("%Y%m%d") + "090000", vaccine=rxa5, lot=dose.lot_number)
    text = vxu(
        control_id, site=dose.site.code, cccd=person.cccd, mrn=synthetic.site_local_patient_number(dose.site, person),
        name=f"{person.family}^{person.given}^{' '.join(person.middle)}", birth=person.birth_date.strftime("%Y%m%d"),
        orders=[order],
    )
    # The builder's sex, address and phone are one person's; each message carries
    # this person's own (one phone shared by every VXU patient made a single
    # block of thousands of records in the master patient index).
    pid = {8: "F" if person.sex == "female" else "M", 11: f"^^^{person.province}^^VNM^H", 13: person.phone or ""}

    def own(segment: str) -> str:
        if not segment.startswith("PID|"):
            return segment
        for position, value in pid.items():
            segment = _set_field(segment, position, value)
        return segment

    return "\r".join(own(s) for s in text.split("\r"))


class SitePeople:
    """People to vaccinate at one site, shared by every user sending for it:
    a new person with the given share, else the next known person (round
    robin), each with their next dose number. Shared, so that two users never
    create the same new person or give one person the same dose number.

    New people come from the pool every site shares (`FreshPeople`); when it
    runs out, known people stand in (counted, so the report can say the
    population was too small)."""

    def __init__(self, people: LoadPeople, site: Site, new_share: float, rng: random.Random):
        self.population = people.population
        self.site = site
        self.new_share = new_share
        self.rng = rng
        self._fresh = people.unsent
        self._known = people.known[site.code] or people.known_people()
        self._known_at = rng.randrange(len(self._known)) if self._known else 0
        self._next_number: dict[str, int] = {}
        self.fresh_exhausted = 0

    def pick(self) -> tuple[Person, Dose, bool]:
        """(person, their next dose at this site, whether the person is new)."""
        if self.rng.random() < self.new_share:
            person = self._fresh.take(self.site.code)
            if person is not None:
                self._next_number[person.person_id] = 2
                return person, next_dose(self.population, person, 1, self.site), True
            self.fresh_exhausted += 1
        person = self._known[self._known_at % len(self._known)]
        self._known_at += 1
        number = self._next_number.get(person.person_id, 2)
        self._next_number[person.person_id] = number + 1
        return person, next_dose(self.population, person, number, self.site), False

    def pick_distinct(self, count: int) -> list[tuple[Person, Dose, bool]]:
        """`count` doses of different people (one Bundle never holds two doses of one person)."""
        chosen: list[tuple[Person, Dose, bool]] = []
        seen: set[str] = set()
        for _ in range(count * 3):
            if len(chosen) == count:
                break
            person, dose, new = self.pick()
            if person.person_id in seen:
                self._next_number[person.person_id] -= 1  # not sent: the number stays free
                continue
            seen.add(person.person_id)
            chosen.append((person, dose, new))
        return chosen
