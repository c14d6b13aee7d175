"""A deterministic synthetic Vietnamese population for demos, benchmarks and tests.

Everything is drawn from one `random.Random(seed)`: the same seed and size give
the same people, sites, doses, identifiers and `urn:uuid` full URLs, byte for
byte. No real person is described; numbers follow the real formats:

- CCCD / personal ID (12 digits): ``PPP G YY RRRRRR``, birth-registration
  province code, century+sex digit (0/1 male/female born 1900s, 2/3 born
  2000s), two-digit birth year, six random digits.
- CMND (old identity card, 9 digits) for a share of people who were adults
  before the chip card; its province prefix is not modelled.
- BHXH (social insurance, 10 digits): two-digit province code then 8 digits.
- Mobile numbers in E.164 on Viet Nam's mobile prefixes; children and some
  adults give a parent's phone, so a household shares one number.

Doses run from 2021-03-08 (the programme's first day) to 2022-12-31, use the
vaccines in use at the time (`vaxhub.fhir.vaccines`), respect each vaccine's
minimum interval and the booster intervals, and are given at a site by one of
its vaccinators.

FHIR output is plain R4 JSON dicts (validated against fhir.resources R4B in
the tests), and `transaction_bundle` wraps them in a transaction Bundle of
conditional creates (FHIR R4 http.html#transaction, `ifNoneExist`).

`noisy_copy` retypes a person as another site would have (diacritics dropped,
a typo, given-first order, no CCCD, the old CMND, a relative's phone) and keeps
the truth beside it for identity-matching tests.
"""

from __future__ import annotations

import bisect
import gc
import hashlib
import random
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date
from itertools import accumulate
from typing import Any, Literal, NamedTuple

from vaxhub.fhir.text import fold
from vaxhub.fhir.vaccines import (
    BOOSTER_INTERVAL_DAYS,
    SECOND_BOOSTER_INTERVAL_DAYS,
    Vaccine,
    all_vaccines,
    vaccine_codeable_concept,
)

CCCD_SYSTEM = "https://vaxhub.vn/fhir/sid/cccd"
CMND_SYSTEM = "https://vaxhub.vn/fhir/sid/cmnd"
BHXH_SYSTEM = "https://vaxhub.vn/fhir/sid/bhxh"
SITE_SYSTEM = "https://vaxhub.vn/fhir/sid/site"
IDENTIFIER_TYPE_SYSTEM = "http://terminology.hl7.org/CodeSystem/v2-0203"
PERFORMER_FUNCTION_SYSTEM = "http://terminology.hl7.org/CodeSystem/v2-0443"
ORGANIZATION_TYPE_SYSTEM = "http://terminology.hl7.org/CodeSystem/organization-type"
SNOMED_SYSTEM = "http://snomed.info/sct"
COVID19_SNOMED = "840539006"


def site_patient_system(site_code: str) -> str:
    """System of a site's local patient numbers (MRNs)."""
    return f"https://vaxhub.vn/fhir/sid/site/{site_code}/patient"


def site_immunization_system(site_code: str) -> str:
    """System of a site's own immunization record numbers."""
    return f"https://vaxhub.vn/fhir/sid/site/{site_code}/immunization"


def site_practitioner_system(site_code: str) -> str:
    """System of a site's staff numbers."""
    return f"https://vaxhub.vn/fhir/sid/site/{site_code}/practitioner"


PROGRAMME_START = date(2021, 3, 8)
PROGRAMME_END = date(2022, 12, 31)
# Approximate national start of first boosters (adults, then 12-17) and of
# second boosters; the intervals themselves come from the vaccine table.
BOOSTERS_FROM = date(2021, 11, 20)
TEEN_BOOSTERS_FROM = date(2022, 8, 1)
SECOND_BOOSTERS_FROM = date(2022, 6, 1)
_AGE_REFERENCE_YEAR = 2021

Sex = Literal["male", "female"]

# ---------------------------------------------------------------------------
# Reference lists. Province codes are Viet Nam's administrative codes (the
# CCCD uses them zero-padded to three digits); weights are rough populations
# in hundred-thousands.
# ---------------------------------------------------------------------------

PROVINCES: tuple[tuple[str, str, int], ...] = (
    ("001", "Hà Nội", 83),
    ("079", "Hồ Chí Minh", 92),
    ("031", "Hải Phòng", 20),
    ("048", "Đà Nẵng", 12),
    ("092", "Cần Thơ", 12),
    ("022", "Quảng Ninh", 13),
    ("024", "Bắc Giang", 18),
    ("027", "Bắc Ninh", 14),
    ("030", "Hải Dương", 19),
    ("034", "Thái Bình", 19),
    ("036", "Nam Định", 18),
    ("038", "Thanh Hóa", 36),
    ("040", "Nghệ An", 33),
    ("046", "Thừa Thiên Huế", 11),
    ("052", "Bình Định", 15),
    ("056", "Khánh Hòa", 12),
    ("066", "Đắk Lắk", 19),
    ("068", "Lâm Đồng", 13),
    ("074", "Bình Dương", 25),
    ("075", "Đồng Nai", 31),
    ("080", "Long An", 17),
    ("083", "Bến Tre", 13),
    ("087", "Đồng Tháp", 16),
    ("089", "An Giang", 19),
    ("091", "Kiên Giang", 17),
)
PROVINCE_NAMES = {code: name for code, name, _ in PROVINCES}
# Where people who live away from their birth province mostly moved to.
_MIGRATION_TARGETS = ("079", "001", "074", "075", "048")

# Surname shares in per mille; Nguyễn ≈ 38%. The tail stands for the many
# rarer surnames, spread over common ones.
SURNAMES: tuple[tuple[str, int], ...] = (
    ("Nguyễn", 384), ("Trần", 110), ("Lê", 95), ("Phạm", 71), ("Hoàng", 31),
    ("Huỳnh", 20), ("Phan", 45), ("Vũ", 20), ("Võ", 19), ("Đặng", 21),
    ("Bùi", 20), ("Đỗ", 14), ("Hồ", 13), ("Ngô", 13), ("Dương", 10),
    ("Lý", 5), ("Đinh", 8), ("Trương", 7), ("Đào", 7), ("Lâm", 5),
    ("Mai", 5), ("Trịnh", 5), ("Cao", 4), ("Lương", 4), ("Hà", 4),
    ("Tạ", 3), ("Phùng", 3), ("Chu", 3), ("Tô", 3), ("Kiều", 2),
    ("Quách", 2), ("Châu", 2), ("Thái", 2), ("La", 2), ("Đoàn", 6),
    ("Vương", 2), ("Lưu", 3), ("Tăng", 1), ("Khổng", 1), ("Triệu", 2),
)

_TRADITIONAL_MIDDLE: dict[Sex, str] = {"male": "Văn", "female": "Thị"}
MIDDLE_NAMES: dict[Sex, tuple[str, ...]] = {
    "male": ("Đức", "Minh", "Quang", "Hữu", "Công", "Thành", "Xuân", "Ngọc",
             "Hoàng", "Anh", "Tuấn", "Duy", "Gia", "Bảo", "Thanh", "Trọng",
             "Đình", "Quốc", "Mạnh", "Hải"),
    "female": ("Ngọc", "Thu", "Thanh", "Minh", "Hồng", "Mai", "Kim", "Phương",
               "Bảo", "Khánh", "Quỳnh", "Hoài", "Thùy", "Diệu", "Bích", "Lan",
               "Hải", "Tuyết", "Như", "Cẩm"),
}
# "Hòa"/"Hoà" and "Thủy"/"Thuỷ" are both in use: each spelling appears.
GIVEN_NAMES: dict[Sex, tuple[str, ...]] = {
    "male": ("An", "Anh", "Bảo", "Bình", "Cường", "Dũng", "Duy", "Đạt", "Đức",
             "Dương", "Hải", "Hiếu", "Hoàng", "Hùng", "Huy", "Khang", "Khánh",
             "Khoa", "Kiên", "Lâm", "Long", "Lộc", "Minh", "Nam", "Nghĩa",
             "Phong", "Phúc", "Quân", "Quang", "Sơn", "Tài", "Thắng", "Thành",
             "Thịnh", "Toàn", "Trung", "Tuấn", "Tùng", "Việt", "Vinh", "Hòa",
             "Hoà", "Tâm", "Thiện", "Trí", "Hưng", "Hậu", "Lợi", "Tú", "Vĩnh"),
    "female": ("Anh", "Chi", "Dung", "Duyên", "Giang", "Hà", "Hằng", "Hạnh",
               "Hiền", "Hoa", "Hòa", "Hoà", "Hồng", "Huyền", "Hương", "Lan",
               "Linh", "Loan", "Ly", "Mai", "My", "Nga", "Ngân", "Ngọc",
               "Nhung", "Oanh", "Phương", "Quỳnh", "Tâm", "Thảo", "Thu",
               "Thủy", "Thuỷ", "Trang", "Trinh", "Tuyết", "Vân", "Vy", "Xuân",
               "Yến", "Hậu", "Nhi", "Thư", "Uyên", "Diệp"),
}

# Mobile prefixes after +84 (Viettel 3x/86/96-98, MobiFone 70/76-79/89/90/93,
# VinaPhone 81-85/88/91/94, Vietnamobile 56/58/92, Gmobile 59/99).
MOBILE_PREFIXES: tuple[str, ...] = (
    "32", "33", "34", "35", "36", "37", "38", "39", "86", "96", "97", "98",
    "70", "76", "77", "78", "79", "89", "90", "93",
    "81", "82", "83", "84", "85", "88", "91", "94",
    "56", "58", "92", "59", "99",
)

_WARDS: dict[str, tuple[str, ...]] = {
    "001": ("Phúc Xá", "Trúc Bạch", "Hàng Bạc", "Hàng Trống", "Tràng Tiền",
            "Văn Miếu", "Quốc Tử Giám", "Láng Hạ", "Dịch Vọng", "Nghĩa Đô",
            "Mai Dịch", "Kim Liên", "Khương Mai", "Yên Hòa", "Bồ Đề"),
    "079": ("Bến Nghé", "Bến Thành", "Đa Kao", "Tân Định", "Cầu Kho",
            "Thảo Điền", "An Phú", "Tân Phong", "Bình Thọ", "Linh Trung",
            "Hiệp Bình Chánh", "Phạm Ngũ Lão", "Cô Giang"),
    "048": ("Hải Châu I", "Thạch Thang", "Thanh Bình", "Hòa Cường Bắc",
            "An Hải Bắc", "Mỹ An", "Hòa Khánh Bắc"),
    "031": ("Máy Tơ", "Lạch Tray", "Đằng Giang", "Cầu Đất", "Lê Lợi"),
    "092": ("Tân An", "An Hòa", "Xuân Khánh", "An Khánh", "Hưng Lợi"),
}
_COMMUNES: tuple[str, ...] = (
    "An Bình", "Tân Phú", "Hòa Phước", "Phú Mỹ", "Bình Minh", "Tân Lập",
    "Thanh Xuân", "Đông Hòa", "Quảng Phú", "Nghĩa Hưng", "Yên Lạc", "Hưng Đạo",
    "Tiên Phong", "Quang Trung", "Trung Hòa", "Phước Thạnh", "Long Hưng",
    "Mỹ Thạnh", "Vĩnh Lộc", "Đại Đồng", "Hồng Phong", "Xuân Sơn", "Tân Thành",
    "Kim Sơn", "Thạnh Phú", "An Thạnh", "Hòa Bình", "Cẩm Thạch",
)
_HOSPITALS: dict[str, tuple[str, ...]] = {
    "001": ("Bệnh viện Bạch Mai", "Bệnh viện Hữu nghị Việt Đức",
            "Bệnh viện Đa khoa Đức Giang", "Bệnh viện Thanh Nhàn"),
    "079": ("Bệnh viện Chợ Rẫy", "Bệnh viện Thống Nhất",
            "Bệnh viện Nhân dân 115", "Bệnh viện Nhi Đồng 1"),
    "048": ("Bệnh viện Đà Nẵng", "Bệnh viện C Đà Nẵng"),
    "031": ("Bệnh viện Hữu nghị Việt Tiệp",),
    "092": ("Bệnh viện Đa khoa Trung ương Cần Thơ",),
    "046": ("Bệnh viện Trung ương Huế",),
}
_DISTRICTS: dict[str, tuple[str, ...]] = {
    "001": ("quận Hoàn Kiếm", "quận Ba Đình", "quận Đống Đa", "quận Cầu Giấy",
            "quận Hai Bà Trưng", "huyện Gia Lâm", "huyện Đông Anh"),
    "079": ("Quận 1", "Quận 3", "Quận 7", "quận Bình Thạnh", "quận Gò Vấp",
            "thành phố Thủ Đức", "huyện Củ Chi"),
}

# Share of each vaccine among first doses in the programme (weights); the
# paediatric Comirnaty is the only choice at 5-11, so it needs no weight here.
_PRIMARY_WEIGHTS: dict[str, float] = {
    "VAXZEVRIA": 25, "COVISHIELD": 1, "COMIRNATY": 25, "COMIRNATY-PAED": 1,
    "SPIKEVAX": 8, "SPUTNIK-V": 0.5, "BBIBP-CORV": 30, "HAYAT-VAX": 0.5,
    "ABDALA": 4, "JANSSEN": 0.3,
}
_BOOSTER_WEIGHTS: dict[str, float] = {"COMIRNATY": 50, "SPIKEVAX": 30, "VAXZEVRIA": 20}

# Imitations of each maker's lot-number layout: "#" a digit, "@" a letter,
# "{yyyymm}"/"{yy}" the lot's release month.
_LOT_TEMPLATES: dict[str, tuple[str, ...]] = {
    "VAXZEVRIA": ("ABV####", "ABW####", "CTMAV5##"),
    "COVISHIELD": ("4121Z0##", "4120Z0##"),
    "COMIRNATY": ("FE####", "FF####", "FG####", "FJ####", "FK####", "FL####"),
    "COMIRNATY-PAED": ("FN####", "FP####", "FR####", "FT####"),
    "SPIKEVAX": ("000###A", "300####", "0##@{yy}A"),
    "SPUTNIK-V": ("I-####{yy}", "II-####{yy}"),
    "BBIBP-CORV": ("{yyyymm}B####",),
    "HAYAT-VAX": ("HV{yyyymm}###",),
    "ABDALA": ("N{yy}0###",),
    "JANSSEN": ("XD###", "180####"),
}
_LOT_LETTERS = "ABCDEFGHJKLMNPRSTUVWXYZ"

# Household head's age bands (years in 2021) and their weights.
_HEAD_AGE_BANDS: tuple[tuple[int, int, int], ...] = (
    (22, 29, 15), (30, 39, 25), (40, 49, 22), (50, 59, 18),
    (60, 69, 12), (70, 79, 6), (80, 95, 2),
)
# Total doses by 2022-12-31 by age group, as weights for 0, 1, 2, 3, 4 doses.
_DOSE_COUNT_WEIGHTS: dict[str, tuple[int, ...]] = {
    "adult": (4, 4, 30, 47, 15),
    "teen": (8, 5, 50, 37, 0),
    "child": (40, 20, 40, 0, 0),
}
# First-dose windows by age group: (from, to, weight).
_FIRST_DOSE_WINDOWS: dict[str, tuple[tuple[date, date, int], ...]] = {
    "adult": (
        (PROGRAMME_START, date(2021, 6, 30), 6),
        (date(2021, 7, 1), date(2021, 9, 30), 45),
        (date(2021, 10, 1), date(2021, 12, 31), 38),
        (date(2022, 1, 1), date(2022, 9, 30), 11),
    ),
    "teen": (
        (date(2021, 10, 15), date(2021, 12, 31), 60),
        (date(2022, 1, 1), date(2022, 6, 30), 40),
    ),
    "child": (
        (date(2022, 4, 14), date(2022, 6, 30), 70),
        (date(2022, 7, 1), date(2022, 11, 30), 30),
    ),
}


# ---------------------------------------------------------------------------
# The population
# ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Practitioner:
    """A vaccinator working at one site."""

    practitioner_id: str
    site_code: str
    family: str
    middle: tuple[str, ...]
    given: str
    sex: Sex
    uuid: str


@dataclass(frozen=True, slots=True)
class Site:
    """A vaccination site: one Organization and its one Location."""

    code: str
    name: str
    kind: Literal["commune", "district", "hospital"]
    province_code: str
    organization_uuid: str
    location_uuid: str
    practitioners: tuple[Practitioner, ...]

    @property
    def province(self) -> str:
        return PROVINCE_NAMES[self.province_code]


class Person(NamedTuple):
    """One synthetic person. `birth_date` is `None` when only the year is
    known, as in paper backlogs; `birth_year` is always set. (Named tuples,
    not frozen dataclasses, for Person and Dose: a frozen dataclass is six
    times slower to build, and there are hundreds of thousands of them.)"""

    person_id: str
    uuid: str
    family: str
    middle: tuple[str, ...]
    given: str
    sex: Sex
    birth_year: int
    birth_date: date | None
    birth_province_code: str
    province_code: str
    cccd: str | None
    cmnd: str | None
    bhxh: str | None
    phone: str | None
    household_id: int
    site_code: str

    @property
    def full_name(self) -> str:
        return " ".join((self.family, *self.middle, self.given))

    @property
    def birth_date_text(self) -> str:
        """FHIR `date`: full date, or the year alone."""
        return self.birth_date.isoformat() if self.birth_date else f"{self.birth_year:04d}"

    @property
    def province(self) -> str:
        return PROVINCE_NAMES[self.province_code]


class Dose(NamedTuple):
    """One COVID-19 vaccination given to a person at a site.

    `series_doses` is the primary-series length for primary doses and, for
    boosters, the dose number itself (3/3, 4/4), as the EU DCC guidelines
    count them."""

    dose_id: str
    uuid: str
    person_id: str
    number: int
    series_doses: int
    booster: bool
    vaccine: Vaccine
    occurred: date
    lot_number: str
    site: Site
    practitioner: Practitioner


@dataclass(frozen=True)
class Population:
    """People, sites and doses drawn from one seed."""

    seed: int
    people: tuple[Person, ...]
    sites: tuple[Site, ...]
    doses: dict[str, tuple[Dose, ...]]
    _sites_by_code: dict[str, Site] = field(init=False, repr=False, compare=False)
    _households: dict[int, tuple[Person, ...]] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        households: dict[int, list[Person]] = {}
        for person in self.people:
            households.setdefault(person.household_id, []).append(person)
        # Indexes over the frozen fields, built once.
        object.__setattr__(self, "_sites_by_code", {s.code: s for s in self.sites})
        object.__setattr__(self, "_households", {k: tuple(v) for k, v in households.items()})

    def site(self, code: str) -> Site:
        return self._sites_by_code[code]

    def home_site(self, person: Person) -> Site:
        """The site where the person was first registered."""
        return self.site(person.site_code)

    def doses_of(self, person: Person) -> tuple[Dose, ...]:
        return self.doses.get(person.person_id, ())

    def household(self, person: Person) -> tuple[Person, ...]:
        """Everyone in the person's household, the person included."""
        return self._households[person.household_id]

    def all_doses(self) -> Iterator[Dose]:
        for person in self.people:
            yield from self.doses_of(person)


class _Weighted:
    """Fast repeated weighted choice (bisect on cumulative weights)."""

    __slots__ = ("items", "cum", "total")

    def __init__(self, pairs: Iterable[tuple[Any, float]]):
        items, weights = zip(*pairs)
        self.items = items
        self.cum = list(accumulate(weights))
        self.total = self.cum[-1]

    def pick(self, rng: random.Random) -> Any:
        return self.items[bisect.bisect_right(self.cum, rng.random() * self.total)]


_UUID_CLEAR = ~((0xF << 76) | (0x3 << 62))
_UUID_V4 = (0x4 << 76) | (0x2 << 62)


def _uuid(rng: random.Random) -> str:
    """A version-4 UUID string drawn from `rng` (what `uuid.UUID(int=…,
    version=4)` gives, formatted without building the object)."""
    h = f"{(rng.getrandbits(128) & _UUID_CLEAR) | _UUID_V4:032x}"
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


class _UuidSequence:
    """Distinct version-4 UUIDs for one kind of entity: a random 76-bit stem
    drawn once from the seed, then a counter. Far cheaper than drawing 122
    bits per entity, and still unique within a population and, with
    overwhelming probability, across seeds."""

    __slots__ = ("stem", "count")

    def __init__(self, rng: random.Random):
        h = _uuid(rng)
        self.stem = h[:24]
        self.count = 0

    def next(self) -> str:
        self.count += 1
        return f"{self.stem}{self.count:012x}"


class _Draws(random.Random):
    """`random.Random` with cheap draws for the generator's hot loops: one
    `random()` call each instead of rejection sampling on bits (the bias is
    below 1e-8 for the ranges used)."""

    def below(self, n: int) -> int:
        return int(self.random() * n)

    def between(self, a: int, b: int) -> int:
        return a + int(self.random() * (b - a + 1))

    def pick(self, seq: Sequence[Any]) -> Any:
        return seq[int(self.random() * len(seq))]


class _Generator:
    def __init__(self, seed: int):
        self.rng = _Draws(seed)
        self.surnames = _Weighted(SURNAMES)
        self.provinces = _Weighted((code, w) for code, _, w in PROVINCES)
        self.head_ages = _Weighted(((lo, hi), w) for lo, hi, w in _HEAD_AGE_BANDS)
        self.dose_counts = {
            group: _Weighted(enumerate(weights)) for group, weights in _DOSE_COUNT_WEIGHTS.items()
        }
        self.windows = {
            group: _Weighted(((a.toordinal(), b.toordinal()), w) for a, b, w in rows)
            for group, rows in _FIRST_DOSE_WINDOWS.items()
        }
        self.vaccines = all_vaccines()
        self.entry_days = sorted({v.in_use_from.toordinal() for v in self.vaccines})
        self.options: dict[tuple[int, int, int], _Weighted | None] = {}
        self.used_cccd: set[str] = set()
        self.used_cmnd: set[str] = set()
        self.used_bhxh: set[str] = set()
        self.used_phones: set[str] = set()
        self.person_count = 0
        self.dose_count = 0
        self.person_uuids = _UuidSequence(self.rng)
        self.dose_uuids = _UuidSequence(self.rng)
        self.lots = {v.code: self._lot_pool(v) for v in self.vaccines}

    # -- names and numbers -------------------------------------------------

    def name(self, sex: Sex, birth_year: int, family: str | None = None):
        rng = self.rng
        family = family or self.surnames.pick(rng)
        # "Văn"/"Thị" were near-universal for older generations, rarer now.
        traditional = 0.75 if birth_year < 1970 else 0.5 if birth_year < 1990 else 0.25
        if rng.random() < traditional:
            middle = [_TRADITIONAL_MIDDLE[sex]]
        else:
            middle = [rng.pick(MIDDLE_NAMES[sex])]
        if rng.random() < 0.08:
            middle.append(rng.pick(MIDDLE_NAMES[sex]))
        given = rng.pick(GIVEN_NAMES[sex])
        return family, tuple(middle), given

    def _unique_digits(self, used: set[str], prefix: str, width: int) -> str:
        while True:
            value = prefix + f"{self.rng.below(10**width):0{width}d}"
            if value not in used:
                used.add(value)
                return value

    def cccd(self, province_code: str, sex: Sex, birth_year: int) -> str:
        century = (birth_year // 100 - 19) * 2 + (1 if sex == "female" else 0)
        prefix = f"{province_code}{century}{birth_year % 100:02d}"
        return self._unique_digits(self.used_cccd, prefix, 6)

    def cmnd(self) -> str:
        return self._unique_digits(self.used_cmnd, str(self.rng.below(4)), 8)

    def bhxh(self, province_code: str) -> str:
        return self._unique_digits(self.used_bhxh, province_code[1:], 8)

    def phone(self) -> str:
        return self._unique_digits(self.used_phones, "+84" + self.rng.pick(MOBILE_PREFIXES), 7)

    def birth_date(self, birth_year: int) -> date | None:
        """A day in `birth_year`, or `None` for a year-only record."""
        rng = self.rng
        year_only = rng.random() < (0.2 if birth_year < 1960 else 0.03)
        start = date(birth_year, 1, 1).toordinal()
        born = date.fromordinal(start + rng.below(date(birth_year, 12, 31).toordinal() - start + 1))
        return None if year_only else born

    # -- lots --------------------------------------------------------------

    def _lot_pool(self, vaccine: Vaccine) -> list[str]:
        rng = self.rng
        first = vaccine.in_use_from
        months = (PROGRAMME_END.year - first.year) * 12 + PROGRAMME_END.month - first.month + 1
        pool = []
        for i in range(2 * months):
            # Released a month or two before use.
            m = first.year * 12 + first.month - 1 + i // 2 - 1 - (i % 2)
            year, month = divmod(m, 12)
            text = rng.pick(_LOT_TEMPLATES[vaccine.code])
            text = text.replace("{yyyymm}", f"{year:04d}{month + 1:02d}").replace("{yy}", f"{year % 100:02d}")
            pool.append("".join(
                str(rng.below(10)) if ch == "#" else rng.pick(_LOT_LETTERS) if ch == "@" else ch
                for ch in text
            ))
        return pool

    def lot(self, vaccine: Vaccine, on: date) -> str:
        pool = self.lots[vaccine.code]
        since = (on.year - vaccine.in_use_from.year) * 12 + on.month - vaccine.in_use_from.month
        return pool[min(max(2 * since + self.rng.below(2), 0), len(pool) - 1)]

    # -- sites -------------------------------------------------------------

    def sites(self, count: int) -> list[Site]:
        rng = self.rng
        kinds = _Weighted((("commune", 80), ("district", 12), ("hospital", 8)))
        used_names: set[str] = set()
        sequence: dict[str, int] = {}
        sites = []
        # Every province gets at least one site when there are enough.
        provinces = [code for code, _, _ in PROVINCES][:count]
        provinces += [self.provinces.pick(rng) for _ in range(count - len(provinces))]
        for province_code in provinces:
            kind = kinds.pick(rng)
            name = self._site_name(kind, province_code, used_names)
            used_names.add(name)
            sequence[province_code] = sequence.get(province_code, 0) + 1
            code = f"VX{province_code}{sequence[province_code]:04d}"
            staff = tuple(
                self._practitioner(code, n) for n in range(1, rng.between(2, 5) + 1)
            )
            sites.append(Site(code, name, kind, province_code, _uuid(rng), _uuid(rng), staff))
        return sites

    def _site_name(self, kind: str, province_code: str, used: set[str]) -> str:
        rng = self.rng
        province = PROVINCE_NAMES[province_code]
        if kind == "hospital":
            options = [n for n in _HOSPITALS.get(province_code, ()) if n not in used]
            generic = f"Bệnh viện Đa khoa tỉnh {province}"
            if options:
                return rng.pick(options)
            if generic not in used:
                return generic
            kind = "district"
        if kind == "district":
            options = [
                f"Trung tâm Y tế {d}" for d in _DISTRICTS.get(province_code, ())
                if f"Trung tâm Y tế {d}" not in used
            ]
            if options:
                return rng.pick(options)
            kind = "commune"
        city = province_code in _WARDS
        pool = _WARDS[province_code] if city else _COMMUNES
        unit = "phường" if city else "xã"
        options = [f"Trạm Y tế {unit} {w}" for w in pool if f"Trạm Y tế {unit} {w}" not in used]
        if options:
            return rng.pick(options)
        n = 1
        while f"Trạm Y tế Phường {n} ({province})" in used:
            n += 1
        return f"Trạm Y tế Phường {n} ({province})"

    def _practitioner(self, site_code: str, n: int) -> Practitioner:
        rng = self.rng
        sex: Sex = "female" if rng.random() < 0.7 else "male"
        birth_year = rng.between(1965, 1998)
        family, middle, given = self.name(sex, birth_year)
        return Practitioner(f"{site_code}-NV{n:02d}", site_code, family, middle, given, sex, _uuid(rng))

    # -- people ------------------------------------------------------------

    def people(self, size: int, sites: list[Site]) -> list[Person]:
        rng = self.rng
        by_province: dict[str, list[Site]] = {}
        for site in sites:
            by_province.setdefault(site.province_code, []).append(site)
        people: list[Person] = []
        household_id = 0
        while len(people) < size:
            household_id += 1
            province = self.provinces.pick(rng)
            local = by_province.get(province)
            if local is None:
                # No site in that province: the household lives where one is.
                site = rng.pick(sites)
                province = site.province_code
                local = by_province[province]
            members = self._household(province, household_id, local)
            people.extend(members[: size - len(people)])
        return people

    def _household(self, province: str, household_id: int, local: list[Site]) -> list[Person]:
        """A head, often a spouse, children and sometimes a parent of the
        head: children carry the father's surname, wives keep their own."""
        rng = self.rng
        lo, hi = self.head_ages.pick(rng)
        head_age = rng.between(lo, hi)
        head_sex: Sex = "male" if rng.random() < 0.7 else "female"
        head_surname = self.surnames.pick(rng)
        plan: list[tuple[Sex, int, str | None]] = [(head_sex, head_age, head_surname)]
        father_surname = head_surname if head_sex == "male" else None
        mother_age = head_age if head_sex == "female" else None
        if head_age >= 24 and rng.random() < 0.75:
            spouse_sex: Sex = "female" if head_sex == "male" else "male"
            spouse_age = max(20, head_age + rng.between(-6, 4))
            spouse_surname = self.surnames.pick(rng)
            plan.append((spouse_sex, spouse_age, spouse_surname))
            if spouse_sex == "male":
                father_surname = spouse_surname
            else:
                mother_age = spouse_age
        parent_age = mother_age if mother_age is not None else head_age
        for _ in range(rng.pick((0, 1, 1, 2, 2, 2, 3))):
            child_age = parent_age - rng.between(20, 38)
            if child_age < 0:
                continue
            sex: Sex = "male" if rng.random() < 0.51 else "female"
            plan.append((sex, child_age, father_surname or head_surname))
        if head_age <= 60 and rng.random() < 0.15:
            elder_age = min(100, head_age + rng.between(20, 35))
            elder_sex: Sex = "male" if rng.random() < 0.4 else "female"
            # The head's father shares the head's surname when the head is a son.
            same = elder_sex == "male" and head_sex == "male"
            plan.append((elder_sex, elder_age, head_surname if same else None))

        home_site = rng.pick(local)
        members: list[Person] = []
        household_phone: str | None = None
        for sex, age, surname in plan:
            birth_year = _AGE_REFERENCE_YEAR - age
            family, middle, given = self.name(sex, birth_year, surname)
            birth_date = self.birth_date(birth_year)
            birth_province = province if rng.random() < 0.8 else self.provinces.pick(rng)
            if birth_province == province and rng.random() < 0.15:
                birth_province = rng.pick(_MIGRATION_TARGETS)
            adult = age >= 18
            cccd = None
            if rng.random() < (0.92 if age >= 14 else 0.6):
                cccd = self.cccd(birth_province, sex, birth_year)
            cmnd = None
            if age >= 19 and rng.random() < (0.45 if birth_year < 1990 else 0.25):
                cmnd = self.cmnd()
            bhxh = self.bhxh(province) if rng.random() < 0.85 else None
            phone: str | None
            if household_phone is None and adult and rng.random() < 0.9:
                phone = household_phone = self.phone()
            elif adult and 18 <= age < 75 and rng.random() < 0.55:
                phone = self.phone()
            else:
                phone = household_phone
            self.person_count += 1
            person_id = f"P{self.person_count:07d}"
            members.append(Person(
                person_id, self.person_uuids.next(), family, middle, given, sex, birth_year, birth_date,
                birth_province, province, cccd, cmnd, bhxh, phone, household_id,
                home_site.code,
            ))
        return members

    # -- doses -------------------------------------------------------------

    def doses(self, people: list[Person], sites: list[Site]) -> dict[str, tuple[Dose, ...]]:
        rng = self.rng
        end = PROGRAMME_END.toordinal()
        by_code = {s.code: s for s in sites}
        by_province: dict[str, list[Site]] = {}
        for site in sites:
            by_province.setdefault(site.province_code, []).append(site)
        result: dict[str, tuple[Dose, ...]] = {}
        for person in people:
            age_2022 = 2022 - person.birth_year
            if age_2022 < 5:
                continue
            group = "adult" if age_2022 >= 18 else "teen" if age_2022 >= 12 else "child"
            target = self.dose_counts[group].pick(rng)
            if target == 0:
                continue
            # A year-only birth date counts as mid-year.
            born = person.birth_date or date(person.birth_year, 7, 1)
            lo, hi = self.windows[group].pick(rng)
            day = rng.between(lo, hi)
            primary = self._primary_vaccine(day, born)
            if primary is None:
                continue
            # The primary vaccine is chosen for the age at the first dose and
            # kept for the series. Boosters: none for children, one for 12-17, up to two for adults.
            max_doses = primary.primary_doses + (0 if group == "child" else 1 if group == "teen" else 2)
            home = by_code[person.site_code]
            local = by_province[person.province_code]
            doses: list[Dose] = []
            vaccine: Vaccine | None = primary
            for number in range(1, min(target, max_doses) + 1):
                booster = number > primary.primary_doses
                if number > 1 and not booster:
                    day += rng.between(primary.min_interval_days or 0, (primary.interval_days or 0) + 21)
                elif booster:
                    first_booster = number == primary.primary_doses + 1
                    if first_booster:
                        wait = BOOSTER_INTERVAL_DAYS
                        opens = BOOSTERS_FROM if group == "adult" else TEEN_BOOSTERS_FROM
                    else:
                        wait, opens = SECOND_BOOSTER_INTERVAL_DAYS, SECOND_BOOSTERS_FROM
                    day = max(day + wait, opens.toordinal()) + rng.between(0, 120)
                    vaccine = self._booster_vaccine(day, born)
                if day > end or vaccine is None:
                    break
                on = date.fromordinal(day)
                site = home if rng.random() < 0.85 else rng.pick(local)
                self.dose_count += 1
                doses.append(Dose(
                    f"{self.dose_count:08d}", self.dose_uuids.next(), person.person_id, number,
                    number if booster else primary.primary_doses, booster, vaccine, on,
                    self.lot(vaccine, on), site, rng.pick(site.practitioners),
                ))
            if doses:
                result[person.person_id] = tuple(doses)
        return result

    def _choice_of(self, weights: dict[str, float], day: int, born: date) -> Vaccine | None:
        """A vaccine in use on `day` that suits the age, drawn by `weights`.
        Options change only when a vaccine enters use or an age bound is
        crossed, so they are built once per (weights, period, age) and kept."""
        on = date.fromordinal(day)
        age = min(on.year - born.year - ((on.month, on.day) < (born.month, born.day)), 19)
        period = bisect.bisect_right(self.entry_days, day)
        key = (id(weights), period, age)
        options = self.options.get(key, False)
        if options is False:
            pairs = [
                (v, weights[v.code]) for v in self.vaccines
                if v.code in weights and v.in_use_from <= on and v.suits_age(age)
            ]
            options = self.options[key] = _Weighted(pairs) if pairs else None
        return options.pick(self.rng) if options is not None else None

    def _primary_vaccine(self, day: int, born: date) -> Vaccine | None:
        return self._choice_of(_PRIMARY_WEIGHTS, day, born)

    def _booster_vaccine(self, day: int, born: date) -> Vaccine | None:
        return self._choice_of(_BOOSTER_WEIGHTS, day, born)


def generate_population(size: int, *, seed: int = 0, site_count: int | None = None) -> Population:
    """`size` people with their households, sites and doses, all from `seed`.

    Without `site_count`, one site per ~2,250 people (Viet Nam: ~20,000 sites
    for 45 million people), at least 5."""
    if size < 0:
        raise ValueError("size must not be negative")
    with _cyclic_gc_paused():
        generator = _Generator(seed)
        sites = generator.sites(site_count if site_count is not None else max(5, size // 2250))
        people = generator.people(size, sites)
        doses = generator.doses(people, sites)
        return Population(seed, tuple(people), tuple(sites), doses)


@contextmanager
def _cyclic_gc_paused() -> Iterator[None]:
    """The generator makes no reference cycles, but the cyclic collector would
    rescan the growing heap again and again while a million objects are
    created (a third of the run time); pause it, then restore its state."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


# ---------------------------------------------------------------------------
# FHIR R4 resources
# ---------------------------------------------------------------------------


def _identifier(system: str, value: str, type_code: str, use: str = "official") -> dict[str, Any]:
    return {
        "use": use,
        "type": {"coding": [{"system": IDENTIFIER_TYPE_SYSTEM, "code": type_code}]},
        "system": system,
        "value": value,
    }


def _human_name(family: str, middle: Sequence[str], given: str) -> dict[str, Any]:
    return {
        "use": "official",
        "text": " ".join((family, *middle, given)),
        "family": family,
        "given": [*middle, given],
    }


def _address(province: str) -> dict[str, Any]:
    return {"use": "home", "text": f"{province}, Việt Nam", "state": province, "country": "VN"}


def _urn(value: str) -> str:
    return f"urn:uuid:{value}"


def site_local_patient_number(site: Site, person: Person) -> str:
    """The number `site` gives `person` in its own records: stable for the
    pair, different from site to site, and never shared by two people at one
    site (a hash alone collides once a site has thousands of patients).

    The person's serial is scrambled by an odd multiplier coprime to 10**10
    plus a per-site offset: a bijection on ten-digit numbers for each site."""
    offset = int.from_bytes(hashlib.blake2b(site.code.encode(), digest_size=8).digest(), "big")
    serial = int("".join(ch for ch in person.person_id if ch.isdigit()) or "0")
    return f"{(serial * 7_919_123 + offset) % 10**10:010d}"


def patient_resource(person: Person, site: Site) -> dict[str, Any]:
    """FHIR R4 Patient as `site` records `person`. Identifiers come in order
    CCCD, CMND, BHXH, site MRN; the first is the business identifier."""
    identifiers = []
    if person.cccd:
        identifiers.append(_identifier(CCCD_SYSTEM, person.cccd, "NI"))
    if person.cmnd:
        identifiers.append(_identifier(CMND_SYSTEM, person.cmnd, "NI", "old" if person.cccd else "official"))
    if person.bhxh:
        identifiers.append(_identifier(BHXH_SYSTEM, person.bhxh, "SS", "secondary"))
    identifiers.append(_identifier(
        site_patient_system(site.code), site_local_patient_number(site, person), "MR", "usual"
    ))
    resource: dict[str, Any] = {
        "resourceType": "Patient",
        "identifier": identifiers,
        "name": [_human_name(person.family, person.middle, person.given)],
        "gender": person.sex,
        "birthDate": person.birth_date_text,
        "address": [_address(person.province)],
        "managingOrganization": {"reference": _urn(site.organization_uuid), "display": site.name},
    }
    if person.phone:
        resource["telecom"] = [{"system": "phone", "value": person.phone, "use": "mobile"}]
    return resource


def immunization_resource(dose: Dose, patient_reference: str) -> dict[str, Any]:
    """FHIR R4 Immunization for `dose`; `patient_reference` is a reference
    string (`urn:uuid:…` inside a transaction, `Patient/…` otherwise)."""
    site = dose.site
    return {
        "resourceType": "Immunization",
        "identifier": [{
            "use": "official",
            "system": site_immunization_system(site.code),
            "value": dose.dose_id,
        }],
        "status": "completed",
        "vaccineCode": vaccine_codeable_concept(dose.vaccine),
        "patient": {"reference": patient_reference},
        "occurrenceDateTime": dose.occurred.isoformat(),
        "primarySource": True,
        "lotNumber": dose.lot_number,
        "location": {"reference": _urn(site.location_uuid), "display": site.name},
        "performer": [
            {
                "function": {"coding": [{"system": PERFORMER_FUNCTION_SYSTEM, "code": "AP",
                                         "display": "Administering Provider"}]},
                "actor": {"reference": _urn(dose.practitioner.uuid)},
            },
            {"actor": {"reference": _urn(site.organization_uuid), "display": site.name}},
        ],
        "protocolApplied": [{
            "series": "Booster" if dose.booster else "Primary series",
            "targetDisease": [{"coding": [{"system": SNOMED_SYSTEM, "code": COVID19_SNOMED,
                                           "display": "COVID-19"}]}],
            "doseNumberPositiveInt": dose.number,
            "seriesDosesPositiveInt": dose.series_doses,
        }],
    }


def organization_resource(site: Site) -> dict[str, Any]:
    return {
        "resourceType": "Organization",
        "identifier": [{"use": "official", "system": SITE_SYSTEM, "value": site.code}],
        "active": True,
        "type": [{"coding": [{"system": ORGANIZATION_TYPE_SYSTEM, "code": "prov",
                              "display": "Healthcare Provider"}]}],
        "name": site.name,
        "address": [{"text": f"{site.province}, Việt Nam", "state": site.province, "country": "VN"}],
    }


def location_resource(site: Site) -> dict[str, Any]:
    return {
        "resourceType": "Location",
        "identifier": [{"use": "official", "system": SITE_SYSTEM, "value": site.code}],
        "status": "active",
        "name": site.name,
        "mode": "instance",
        "address": {"text": f"{site.province}, Việt Nam", "state": site.province, "country": "VN"},
        "managingOrganization": {"reference": _urn(site.organization_uuid), "display": site.name},
    }


def practitioner_resource(practitioner: Practitioner) -> dict[str, Any]:
    return {
        "resourceType": "Practitioner",
        "identifier": [{
            "use": "official",
            "system": site_practitioner_system(practitioner.site_code),
            "value": practitioner.practitioner_id,
        }],
        "active": True,
        "name": [_human_name(practitioner.family, practitioner.middle, practitioner.given)],
        "gender": practitioner.sex,
    }


# ---------------------------------------------------------------------------
# Transaction bundles
# ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class BundleEntry:
    full_url: str
    resource: dict[str, Any]


def site_entries(site: Site) -> list[BundleEntry]:
    """The site's Organization, Location and vaccinators."""
    return [
        BundleEntry(_urn(site.organization_uuid), organization_resource(site)),
        BundleEntry(_urn(site.location_uuid), location_resource(site)),
        *(BundleEntry(_urn(p.uuid), practitioner_resource(p)) for p in site.practitioners),
    ]


def person_entries(population: Population, person: Person, site: Site | None = None) -> list[BundleEntry]:
    """The person's Patient (as `site`, by default the home site, records
    them) followed by their Immunizations, which reference the Patient by its
    `urn:uuid`."""
    site = site or population.home_site(person)
    patient_url = _urn(person.uuid)
    entries = [BundleEntry(patient_url, patient_resource(person, site))]
    entries += [
        BundleEntry(_urn(dose.uuid), immunization_resource(dose, patient_url))
        for dose in population.doses_of(person)
    ]
    return entries


def _if_none_exist(resource: dict[str, Any]) -> str:
    first = resource["identifier"][0]
    return f"identifier={first['system']}|{first['value']}"


def transaction_bundle(entries: Iterable[BundleEntry]) -> dict[str, Any]:
    """A FHIR R4 transaction Bundle: each entry a conditional create (POST
    with `ifNoneExist` on the resource's first, business identifier), so
    sending it twice creates nothing the second time."""
    return {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {
                "fullUrl": entry.full_url,
                "resource": entry.resource,
                "request": {
                    "method": "POST",
                    "url": entry.resource["resourceType"],
                    "ifNoneExist": _if_none_exist(entry.resource),
                },
            }
            for entry in entries
        ],
    }


def population_bundles(population: Population, entries_per_bundle: int = 100) -> Iterator[dict[str, Any]]:
    """Transaction bundles of at most `entries_per_bundle` entries covering the
    whole population. A person's Patient and Immunizations stay in one bundle,
    with every site resource they reference, so each bundle is self-contained
    (a person whose group alone is larger gets a bundle of their own)."""
    if entries_per_bundle < 1:
        raise ValueError("entries_per_bundle must be at least 1")
    by_site: dict[str, list[BundleEntry]] = {}
    current: list[BundleEntry] = []
    sites_in_current: set[str] = set()
    for person in population.people:
        group = person_entries(population, person)
        sites = dict.fromkeys(
            [person.site_code, *(d.site.code for d in population.doses_of(person))]
        )
        missing = [code for code in sites if code not in sites_in_current]
        site_count = sum(len(population.site(code).practitioners) + 2 for code in missing)
        if current and len(current) + site_count + len(group) > entries_per_bundle:
            yield transaction_bundle(current)
            current, sites_in_current = [], set()
            missing = list(sites)
        for code in missing:
            if code not in by_site:
                by_site[code] = site_entries(population.site(code))
            current += by_site[code]
            sites_in_current.add(code)
        current += group
    if current:
        yield transaction_bundle(current)


# ---------------------------------------------------------------------------
# Noisy copies for identity matching
# ---------------------------------------------------------------------------

NOISE_KINDS = (
    "drop_diacritics",
    "typo",
    "given_first",
    "missing_cccd",
    "cmnd_instead",
    "family_phone",
    "day_month_swapped",
)


@dataclass(frozen=True, slots=True)
class NoisyRecord:
    """`record` is `truth` as `site` typed it; `changes` names what differs."""

    record: Person
    truth: Person
    site: Site
    changes: tuple[str, ...]


def _without_diacritics(text: str) -> str:
    return " ".join(word[:1].upper() + word[1:] for word in fold(text).split(" "))


def _typo(rng: random.Random, word: str) -> str:
    if len(word) < 2:
        return word + word
    i = rng.randrange(len(word) - 1)
    op = rng.randrange(3)
    if op == 0 and len(word) > 2:
        return word[:i] + word[i + 1:]
    if op == 1 and word[i] != word[i + 1]:
        return word[:i] + word[i + 1] + word[i] + word[i + 2:]
    return word[:i + 1] + word[i] + word[i + 1:]


def _applicable(population: Population, person: Person, kind: str) -> bool:
    if kind == "missing_cccd":
        return person.cccd is not None
    if kind == "cmnd_instead":
        return person.cccd is not None and person.cmnd is not None
    if kind == "family_phone":
        return any(m.phone and m.phone != person.phone for m in population.household(person))
    if kind == "day_month_swapped":
        d = person.birth_date
        return d is not None and d.day <= 12 and d.day != d.month
    return True


def noisy_copy(
    population: Population,
    person: Person,
    rng: random.Random,
    *,
    kinds: Sequence[str] | None = None,
) -> NoisyRecord:
    """`person` as another site would have typed it.

    With `kinds`, applies those changes (each must apply to this person);
    without, one to three that apply, chosen by `rng`. The copy gets its own
    `uuid` (another site's record) and keeps `person_id` so tests can tell the
    truth."""
    if kinds is None:
        options = [k for k in NOISE_KINDS if _applicable(population, person, k)]
        kinds = rng.sample(options, rng.randint(1, min(3, len(options))))
    else:
        for kind in kinds:
            if kind not in NOISE_KINDS:
                raise ValueError(f"unknown noise kind {kind!r}; known: {', '.join(NOISE_KINDS)}")
            if not _applicable(population, person, kind):
                raise ValueError(f"noise {kind!r} does not apply to {person.person_id}")
    home = person.site_code
    others = [s for s in population.sites if s.code != home] or list(population.sites)
    site = rng.choice(others)

    family, middle, given = person.family, person.middle, person.given
    changes: dict[str, Any] = {}
    # Order matters: a typo lands in the name as typed, and the given-first
    # reading reorders whatever was typed.
    for kind in sorted(kinds, key=NOISE_KINDS.index):
        if kind == "drop_diacritics":
            family = _without_diacritics(family)
            middle = tuple(_without_diacritics(m) for m in middle)
            given = _without_diacritics(given)
        elif kind == "typo":
            if rng.random() < 0.7:
                given = _typo(rng, given)
            else:
                family = _typo(rng, family)
        elif kind == "given_first":
            # Written "middle given family" and read back by the Vietnamese
            # rule (first word family, last word given).
            words = [*middle, given, family]
            family, middle, given = words[0], tuple(words[1:-1]), words[-1]
        elif kind == "missing_cccd":
            changes["cccd"] = None
        elif kind == "cmnd_instead":
            changes["cccd"] = None
        elif kind == "family_phone":
            phones = sorted({m.phone for m in population.household(person)
                             if m.phone and m.phone != person.phone})
            changes["phone"] = rng.choice(phones)
        elif kind == "day_month_swapped":
            d = person.birth_date
            assert d is not None
            changes["birth_date"] = date(d.year, d.day, d.month)
    record = person._replace(
        uuid=_uuid(rng), family=family, middle=middle, given=given, site_code=site.code,
        **changes,
    )
    return NoisyRecord(record, person, site, tuple(sorted(kinds, key=NOISE_KINDS.index)))


def noisy_copies(population: Population, count: int, *, seed: int = 0) -> list[NoisyRecord]:
    """`count` noisy copies of people drawn from the population by `seed`."""
    rng = random.Random(seed)
    return [noisy_copy(population, rng.choice(population.people), rng) for _ in range(count)]
