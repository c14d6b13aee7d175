"""Synthetic populations for measuring the master patient index.

True people come from `vaxhub.fhir.synthetic.generate_population`
(households sharing a phone, Nguyễn for ~38%, CCCD/CMND/BHXH numbers in
their real formats). This module adds the people who make matching hard,
then writes every person as one to four local Patient records, one per site,
each with the errors of manual entry:

- twins: same surname, birth date, phone, address and often middle name,
  another given name (sometimes one that differs only in its marks,
  Hùng/Hưng);
- namesakes: groups of people with one common full name ("Nguyễn Văn An")
  born the same year in the same province;
- per record: dropped or wrong diacritics, the modern tone placement
  (hoà/hòa), one typo, middle and given name swapped, the name written
  given-name first, no CCCD, the old 9-digit CMND instead, the CCCD filed
  as a 12-digit CMND, the chip card's CCCD and CMND pair, a wrong digit in
  a number, a year-only birth date, day and month swapped, a date one part
  off, a relative's or another phone, missing gender or province.

Everything is drawn from `random.Random(seed)`: the same seed and size give
the same records. Each `SiteRecord` carries its true person beside (never
inside) the FHIR content, for scoring the linker.
"""

from __future__ import annotations

import random
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date

from vaxhub.fhir.normalise import place_tone_marks
from vaxhub.fhir.synthetic import (
    BHXH_SYSTEM,
    CCCD_SYSTEM,
    CMND_SYSTEM,
    GIVEN_NAMES,
    PROVINCE_NAMES,
    Person,
    Population,
    Site,
    generate_population,
    site_local_patient_number,
    site_patient_system,
)
from vaxhub.fhir.text import fold

# How many local records a person has (1-4), as weights.
COPY_WEIGHTS = (40, 35, 17, 8)
_TONES = ("\u0300", "\u0301", "\u0303", "\u0309", "\u0323")
_SHAPES = ("\u0306", "\u0302", "\u031b")  # breve, circumflex, horn
_LETTERS = "abcdeghiklmnopqrstuvxy"
_COMMON_NAMES = {"male": ("Nguyễn", ("Văn",), "An"), "female": ("Nguyễn", ("Thị",), "Lan")}


@dataclass(frozen=True)
class ErrorRates:
    """Chance of each error in one site record (independent draws)."""

    drop_diacritics: float = 0.20
    wrong_diacritic: float = 0.04
    modern_tones: float = 0.15
    typo: float = 0.08
    swap_middle_given: float = 0.03
    given_first: float = 0.03
    missing_cccd: float = 0.35
    cmnd_instead: float = 0.40  # of the records without CCCD, for people who had a CMND
    chip_card_pair: float = 0.30  # CCCD and CMND both, as read from the chip card's QR
    cccd_as_cmnd: float = 0.04  # the number typed as a 12-digit CMND (the card it replaced)
    wrong_id_digit: float = 0.015
    missing_bhxh: float = 0.50
    year_only: float = 0.04
    day_month_swap: float = 0.03
    date_one_part: float = 0.01
    family_phone: float = 0.10
    missing_phone: float = 0.15
    other_phone: float = 0.03
    missing_gender: float = 0.02
    wrong_gender: float = 0.003
    missing_province: float = 0.05
    moved_province: float = 0.03  # living elsewhere when this site saw them
    twins: float = 0.02  # of households with a child, one gets a twin
    namesake_groups: float = 0.004  # groups per person


@dataclass(frozen=True, slots=True)
class SiteRecord:
    """One site's Patient record of a person; `person_id` is the truth."""

    record_id: str
    person_id: str
    patient: dict
    errors: tuple[str, ...]


@dataclass(frozen=True)
class LinkagePopulation:
    seed: int
    people: tuple[Person, ...]
    records: tuple[SiteRecord, ...]
    twins: tuple[tuple[str, str], ...] = field(default=())  # (person_id, twin's person_id)
    namesakes: tuple[tuple[str, ...], ...] = field(default=())  # person ids sharing one name


# ---------------------------------------------------------------------------
# Text errors
# ---------------------------------------------------------------------------


def _without_diacritics(text: str) -> str:
    return " ".join(word[:1].upper() + word[1:] for word in fold(text).split(" "))


def _wrong_diacritic(rng: random.Random, word: str) -> str:
    """One mark changed: another tone, or a shape mark (ư, â, ă…) lost."""
    chars = list(unicodedata.normalize("NFD", word))
    tones = [i for i, ch in enumerate(chars) if ch in _TONES]
    shapes = [i for i, ch in enumerate(chars) if ch in _SHAPES]
    if tones and (not shapes or rng.random() < 0.6):
        i = rng.choice(tones)
        chars[i] = rng.choice([t for t in _TONES if t != chars[i]])
    elif shapes:
        del chars[rng.choice(shapes)]
    else:
        vowels = [i for i, ch in enumerate(chars) if ch.lower() in "aeiouy"]
        if not vowels:
            return word
        chars.insert(rng.choice(vowels) + 1, rng.choice(_TONES))
    return unicodedata.normalize("NFC", "".join(chars))


def _one_edit(rng: random.Random, word: str) -> str:
    """One typing slip: a letter replaced, dropped, doubled or two swapped."""
    if len(word) < 2:
        return word + word.lower()
    i = rng.randrange(1, len(word)) if len(word) > 2 else 1
    op = rng.randrange(4)
    if op == 0:
        return word[:i] + rng.choice(_LETTERS) + word[i + 1:]
    if op == 1 and len(word) > 2:
        return word[:i] + word[i + 1:]
    if op == 2 and i < len(word) - 1 and word[i] != word[i + 1]:
        return word[:i] + word[i + 1] + word[i] + word[i + 2:]
    return word[:i] + word[i] + word[i:]


def _digit_slip(rng: random.Random, number: str) -> str:
    i = rng.randrange(len(number))
    return number[:i] + rng.choice([d for d in "0123456789" if d != number[i]]) + number[i + 1:]


# ---------------------------------------------------------------------------
# Hard people: twins and namesakes
# ---------------------------------------------------------------------------


class _People:
    """The base population plus twins and namesakes."""

    def __init__(self, base: Population, rng: random.Random, rates: ErrorRates):
        self.rng = rng
        self.people: list[Person] = list(base.people)
        self.used_cccd = {p.cccd for p in self.people if p.cccd}
        self.twins: list[tuple[str, str]] = []
        self.namesakes: list[tuple[str, ...]] = []
        self._add_twins(rates.twins)
        self._add_namesakes(rates.namesake_groups)
        self.households: dict[int, list[Person]] = {}
        for person in self.people:
            self.households.setdefault(person.household_id, []).append(person)

    def _add_twins(self, rate: float) -> None:
        """A twin is placed right after their sibling, so that a population
        cut to a number of records keeps both."""
        rng = self.rng
        by_household: dict[int, list[Person]] = {}
        for person in self.people:
            by_household.setdefault(person.household_id, []).append(person)
        twin_after: dict[str, Person] = {}
        for members in by_household.values():
            children = [p for p in members[1:] if p.birth_year >= 1990 and p.birth_date]
            if not children or rng.random() >= rate:
                continue
            sibling = rng.choice(children)
            twin = self._twin_of(sibling, len(self.people) + len(twin_after) + 1)
            twin_after[sibling.person_id] = twin
            self.twins.append((sibling.person_id, twin.person_id))
        people: list[Person] = []
        for person in self.people:
            people.append(person)
            if person.person_id in twin_after:
                people.append(twin_after[person.person_id])
        self.people = people

    def _twin_of(self, sibling: Person, n: int) -> Person:
        rng = self.rng
        sex = sibling.sex if rng.random() < 0.6 else ("female" if sibling.sex == "male" else "male")
        names = [g for g in GIVEN_NAMES[sex] if g != sibling.given]
        # Some twins' names differ only in their marks (Hùng/Hưng, Hoa/Hòa).
        alike = [g for g in names if fold(g) == fold(sibling.given)]
        given = rng.choice(alike) if alike and rng.random() < 0.5 else rng.choice(names)
        middle = sibling.middle if sex == sibling.sex else (("Thị",) if sex == "female" else ("Văn",))
        cccd = None
        if sibling.cccd:
            prefix = sibling.cccd[:3] + str(int(sibling.cccd[3]) // 2 * 2 + (sex == "female")) + sibling.cccd[4:6]
            while cccd is None or cccd in self.used_cccd:
                cccd = prefix + f"{rng.randrange(10**6):06d}"
            self.used_cccd.add(cccd)
        bhxh = sibling.bhxh[:2] + f"{rng.randrange(10**8):08d}" if sibling.bhxh else None
        return sibling._replace(
            person_id=f"P{n:07d}", uuid=f"{sibling.uuid[:-12]}{0xF00000000000 + n:012x}",
            given=given, middle=middle, sex=sex, cccd=cccd, cmnd=None, bhxh=bhxh,
        )

    def _add_namesakes(self, rate: float) -> None:
        rng = self.rng
        twins = {t for pair in self.twins for t in pair}
        cohorts: dict[tuple[str, int, str], list[int]] = {}
        for i, person in enumerate(self.people):
            if person.person_id not in twins:
                cohorts.setdefault((person.province_code, person.birth_year, person.sex), []).append(i)
        crowded = [c for c in cohorts.values() if len(c) >= 3]
        taken: set[int] = set()
        for _ in range(int(len(self.people) * rate)):
            if not crowded:
                break
            cohort = rng.choice(crowded)
            chosen = [i for i in rng.sample(cohort, min(len(cohort), rng.randint(2, 4))) if i not in taken]
            if len(chosen) < 2:
                continue
            taken.update(chosen)
            for i in chosen:
                family, middle, given = _COMMON_NAMES[self.people[i].sex]
                self.people[i] = self.people[i]._replace(family=family, middle=middle, given=given)
            self.namesakes.append(tuple(self.people[i].person_id for i in chosen))


# ---------------------------------------------------------------------------
# Site records
# ---------------------------------------------------------------------------


def _identifier(system: str, value: str, use: str = "official") -> dict:
    return {"use": use, "system": system, "value": value}


def _phone_text(rng: random.Random, e164: str) -> str:
    national = "0" + e164[3:]
    style = rng.randrange(4)
    if style == 0:
        return e164
    if style == 1:
        return f"{national[:4]} {national[4:7]} {national[7:]}"
    if style == 2:
        return "84" + e164[3:]
    return national


class _RecordWriter:
    def __init__(self, people: _People, sites: Sequence[Site], rng: random.Random, rates: ErrorRates):
        self.people = people
        self.sites = list(sites)
        self.rng = rng
        self.rates = rates
        self.province_names = sorted(PROVINCE_NAMES.values())

    def records_of(self, person: Person, copies: int) -> list[SiteRecord]:
        home = next((s for s in self.sites if s.code == person.site_code), self.sites[0])
        others = self.rng.sample(self.sites, min(len(self.sites), copies + 1))
        chosen = [home] + [s for s in others if s.code != home.code][: copies - 1]
        return [self._record(person, site) for site in chosen]

    def _record(self, person: Person, site: Site) -> SiteRecord:
        rng, rates = self.rng, self.rates
        errors: list[str] = []

        def happens(name: str) -> bool:
            hit = rng.random() < getattr(rates, name)
            if hit:
                errors.append(name)
            return hit

        family, middle, given = person.family, list(person.middle), person.given
        if happens("typo"):
            part = rng.random()
            if part < 0.6:
                given = _one_edit(rng, given)
            elif part < 0.8 or not middle:
                family = _one_edit(rng, family)
            else:
                middle[-1] = _one_edit(rng, middle[-1])
        if happens("wrong_diacritic"):
            given = _wrong_diacritic(rng, given)
        if middle and happens("swap_middle_given"):
            middle[-1], given = given, middle[-1]
        name_text = " ".join([family, *middle, given])
        if happens("modern_tones"):
            name_text = place_tone_marks(name_text, "modern")
        if happens("drop_diacritics"):
            name_text = _without_diacritics(name_text)
        words = name_text.split(" ")
        if happens("given_first"):
            name = {"use": "official", "text": " ".join([words[-1], *words[1:-1], words[0]])}
        else:
            name = {"use": "official", "text": name_text, "family": words[0], "given": words[1:]}

        identifiers = self._identifiers(person, happens)
        resource: dict = {"resourceType": "Patient", "identifier": identifiers, "name": [name]}
        if not happens("missing_gender"):
            wrong = happens("wrong_gender")
            resource["gender"] = ("female" if person.sex == "male" else "male") if wrong else person.sex
        resource["birthDate"] = self._birth_date(person, happens)
        if not happens("missing_province"):
            province = person.province
            if happens("moved_province"):
                province = rng.choice([n for n in self.province_names if n != province])
            resource["address"] = [{"use": "home", "text": f"{province}, Việt Nam",
                                    "state": province, "country": "VN"}]
        phone = self._phone(person, happens)
        if phone:
            resource["telecom"] = [{"system": "phone", "value": _phone_text(rng, phone), "use": "mobile"}]
        mrn = site_local_patient_number(site, person)
        identifiers.append(_identifier(site_patient_system(site.code), mrn, "usual"))
        resource["managingOrganization"] = {"display": site.name}
        return SiteRecord(f"{site.code}/{mrn}", person.person_id, resource, tuple(errors))

    def _identifiers(self, person: Person, happens) -> list[dict]:
        rng = self.rng
        cccd, cmnd, bhxh = person.cccd, None, person.bhxh
        if cccd and happens("missing_cccd"):
            cccd = None
        if person.cmnd:
            if cccd is None and happens("cmnd_instead"):
                cmnd = person.cmnd
            elif cccd is not None and happens("chip_card_pair"):
                cmnd = person.cmnd
        if cccd and cmnd is None and happens("cccd_as_cmnd"):
            cccd, cmnd = None, cccd
        if bhxh and happens("missing_bhxh"):
            bhxh = None
        numbers = [n for n in (cccd, cmnd, bhxh) if n]
        if numbers and happens("wrong_id_digit"):
            wrong = rng.choice(numbers)
            cccd = _digit_slip(rng, cccd) if wrong == cccd else cccd
            cmnd = _digit_slip(rng, cmnd) if wrong == cmnd else cmnd
            bhxh = _digit_slip(rng, bhxh) if wrong == bhxh else bhxh
        found = []
        if cccd:
            found.append(_identifier(CCCD_SYSTEM, cccd))
        if cmnd:
            found.append(_identifier(CMND_SYSTEM, cmnd, "old" if cccd else "official"))
        if bhxh:
            found.append(_identifier(BHXH_SYSTEM, bhxh, "secondary"))
        return found

    def _birth_date(self, person: Person, happens) -> str:
        rng = self.rng
        born = person.birth_date
        if born is None or happens("year_only"):
            return f"{person.birth_year:04d}"
        if born.day <= 12 and born.day != born.month and happens("day_month_swap"):
            return date(born.year, born.day, born.month).isoformat()
        if happens("date_one_part"):
            if rng.random() < 0.5:
                return date(born.year + rng.choice((-1, 1)), born.month, min(born.day, 28)).isoformat()
            return date(born.year, born.month, born.day % 28 + 1).isoformat()
        return born.isoformat()

    def _phone(self, person: Person, happens) -> str | None:
        rng = self.rng
        if happens("missing_phone"):
            return None
        household = self.people.households.get(person.household_id, [])
        relatives = sorted({m.phone for m in household if m.phone and m.phone != person.phone})
        if relatives and happens("family_phone"):
            return rng.choice(relatives)
        if happens("other_phone"):
            return "+849" + f"{rng.randrange(10**8):08d}"
        return person.phone


def generate_linkage_population(
    records: int, *, seed: int = 0, rates: ErrorRates | None = None
) -> LinkagePopulation:
    """About `records` site records (exactly that many, unless the people
    run out) of people drawn from `seed`, with their truth."""
    if records < 1:
        raise ValueError("records must be at least 1")
    rates = rates or ErrorRates()
    rng = random.Random(seed)
    mean_copies = sum((i + 1) * w for i, w in enumerate(COPY_WEIGHTS)) / sum(COPY_WEIGHTS)
    base = generate_population(max(1, int(records / mean_copies) + 1), seed=seed)
    people = _People(base, rng, rates)
    writer = _RecordWriter(people, base.sites, rng, rates)
    out: list[SiteRecord] = []
    for person in people.people:
        copies = rng.choices(range(1, len(COPY_WEIGHTS) + 1), COPY_WEIGHTS)[0]
        out.extend(writer.records_of(person, copies))
        if len(out) >= records:
            break
    out = out[:records]
    kept = {r.person_id for r in out}
    return LinkagePopulation(
        seed,
        tuple(p for p in people.people if p.person_id in kept),
        tuple(out),
        tuple(t for t in people.twins if t[0] in kept and t[1] in kept),
        tuple(g for g in people.namesakes if sum(p in kept for p in g) >= 2),
    )
