"""An in-memory synthetic registry of citizens.

The in-memory fakes and both registry simulators read the same store, so a
test can put a person in one place and find them through every adapter.
Records load from a list of dicts or `Citizen`s, or from a JSON file (a list
of objects with the `Citizen` field names; dates as ISO strings).

`generate_citizens` makes a small, deterministic population for tests and the
demo: CCCD numbers follow the `PPP G YY RRRRRR` layout (province of birth
registration, century-and-sex digit, two-digit year, six random digits),
people born before 2000 also hold a 9-digit CMND, BHXH numbers have 10
digits and health insurance cards 15 characters (group code, benefit level,
province, BHXH number). `SAMPLE_CITIZENS` are four hand-made people whose
details tests and demos can quote.
"""

from __future__ import annotations

import datetime as dt
import json
import random
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from vaxhub.adapters.ports import Coverage, InsuranceRecord


@dataclass(frozen=True)
class Citizen:
    """One person as the national registries hold them."""

    cccd: str
    full_name: str
    birth_date: str
    sex: str
    cmnd: str | None = None
    bhxh: str | None = None
    coverage: Coverage | None = None

    def insurance_record(self) -> InsuranceRecord | None:
        if self.bhxh is None:
            return None
        return InsuranceRecord(
            bhxh=self.bhxh,
            cccd=self.cccd,
            full_name=self.full_name,
            birth_date=self.birth_date,
            sex=self.sex,
            coverage=self.coverage,
        )

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        if self.coverage is not None:
            data["coverage"] = {
                "card_number": self.coverage.card_number,
                "valid_from": self.coverage.valid_from.isoformat(),
                "valid_to": self.coverage.valid_to.isoformat(),
            }
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Citizen:
        coverage = data.get("coverage")
        if isinstance(coverage, Mapping):
            coverage = Coverage(
                card_number=coverage["card_number"],
                valid_from=dt.date.fromisoformat(coverage["valid_from"]),
                valid_to=dt.date.fromisoformat(coverage["valid_to"]),
            )
        return cls(
            cccd=data["cccd"],
            full_name=data["full_name"],
            birth_date=data["birth_date"],
            sex=data["sex"],
            cmnd=data.get("cmnd"),
            bhxh=data.get("bhxh"),
            coverage=coverage,
        )


class SyntheticRegistry:
    """Citizens indexed by CCCD, old CMND and BHXH number."""

    def __init__(self, citizens: Iterable[Citizen | Mapping[str, Any]] = ()):
        self._by_cccd: dict[str, Citizen] = {}
        self._by_cmnd: dict[str, Citizen] = {}
        self._by_bhxh: dict[str, Citizen] = {}
        for citizen in citizens:
            self.add(citizen if isinstance(citizen, Citizen) else Citizen.from_json(citizen))

    @classmethod
    def from_json_file(cls, path: str | Path) -> SyntheticRegistry:
        return cls(json.loads(Path(path).read_text(encoding="utf-8")))

    @classmethod
    def generated(cls, count: int = 20, *, seed: int = 0, with_samples: bool = False) -> SyntheticRegistry:
        """`count` generated people, plus the `SAMPLE_CITIZENS` when asked."""
        return cls([*generate_citizens(count, seed=seed), *(SAMPLE_CITIZENS if with_samples else ())])

    def write_json_file(self, path: str | Path) -> None:
        records = [citizen.to_json() for citizen in self]
        Path(path).write_text(json.dumps(records, ensure_ascii=False, indent=2), encoding="utf-8")

    def add(self, citizen: Citizen) -> None:
        """Add or replace the citizen holding `citizen.cccd`."""
        previous = self._by_cccd.get(citizen.cccd)
        if previous is not None:
            self._by_cmnd.pop(previous.cmnd or "", None)
            self._by_bhxh.pop(previous.bhxh or "", None)
        self._by_cccd[citizen.cccd] = citizen
        if citizen.cmnd:
            self._by_cmnd[citizen.cmnd] = citizen
        if citizen.bhxh:
            self._by_bhxh[citizen.bhxh] = citizen

    def by_cccd(self, cccd: str) -> Citizen | None:
        return self._by_cccd.get(cccd)

    def by_cmnd(self, cmnd: str) -> Citizen | None:
        return self._by_cmnd.get(cmnd)

    def by_bhxh(self, bhxh: str) -> Citizen | None:
        return self._by_bhxh.get(bhxh)

    def __iter__(self) -> Iterator[Citizen]:
        return iter(list(self._by_cccd.values()))

    def __len__(self) -> int:
        return len(self._by_cccd)


#: Holds a 9-digit CMND, a BHXH number and a health insurance card.
_AN = Citizen(
    cccd="001090012345",
    cmnd="012345678",
    full_name="Nguyễn Văn An",
    birth_date="1990-03-04",
    sex="male",
    bhxh="0123456789",
    coverage=Coverage("GD4010123456789", dt.date(2022, 1, 1), dt.date(2026, 12, 31)),
)
#: Born before 1960 with a year-only birth date on record.
_HOA = Citizen(
    cccd="079158654321",
    cmnd="025123456",
    full_name="Trần Thị Hoà",
    birth_date="1958",
    sex="female",
    bhxh="7912345678",
    coverage=Coverage("HT3797912345678", dt.date(2021, 7, 1), dt.date(2025, 6, 30)),
)
#: A 12-digit CMND (2012–2016) kept its number as the CCCD.
_HUONG = Citizen(
    cccd="001185000111",
    cmnd="001185000111",
    full_name="Phạm Thu Hương",
    birth_date="1985-11-20",
    sex="female",
    bhxh="0198765432",
    coverage=None,
)
#: Born in 2003: no old CMND, not enrolled in social insurance.
_DUC = Citizen(cccd="031203111222", full_name="Lê Minh Đức", birth_date="2003-08-15", sex="male")


#: Four hand-made people covering the cases tests and demos need: a 9-digit
#: CMND holder with a card, a year-only birth date, a 12-digit CMND that
#: became the CCCD, and a young person with neither CMND nor BHXH.
SAMPLE_CITIZENS: tuple[Citizen, ...] = (_AN, _HOA, _HUONG, _DUC)


_FAMILY_NAMES = ("Nguyễn", "Trần", "Lê", "Phạm", "Hoàng", "Huỳnh", "Phan", "Vũ", "Đặng", "Bùi", "Đỗ", "Ngô")
_MIDDLE_NAMES = {"male": ("Văn", "Đức", "Minh", "Quốc", "Hữu"), "female": ("Thị", "Ngọc", "Thu", "Thanh", "Mai")}
_GIVEN_NAMES = {
    "male": ("An", "Bình", "Cường", "Dũng", "Hùng", "Khoa", "Long", "Nam", "Phúc", "Quang", "Sơn", "Tuấn"),
    "female": ("Anh", "Chi", "Dung", "Hà", "Hoa", "Hương", "Lan", "Linh", "Ngân", "Phương", "Thảo", "Yến"),
}
#: (CCCD province code, BHYT card province code): Hà Nội, TP Hồ Chí Minh,
#: Hải Phòng, Đà Nẵng, Cần Thơ, Nghệ An, Thanh Hóa.
_PROVINCES = (("001", "01"), ("079", "79"), ("031", "31"), ("048", "48"), ("092", "92"), ("040", "40"), ("038", "38"))
_CARD_GROUPS = ("GD", "DN", "HC", "HT", "TE", "SV")


def generate_citizens(count: int, *, seed: int = 0) -> list[Citizen]:
    """`count` distinct, plausible citizens; the same seed gives the same people."""
    rng = random.Random(seed)
    citizens: list[Citizen] = []
    used: set[str] = set()
    while len(citizens) < count:
        sex = rng.choice(("male", "female"))
        year = rng.randint(1940, 2015)
        birth = dt.date(year, 1, 1) + dt.timedelta(days=rng.randrange(365))
        birth_date = str(year) if year < 1960 and rng.random() < 0.3 else birth.isoformat()
        province, card_province = rng.choice(_PROVINCES)
        century_digit = (0 if year < 2000 else 2) + (1 if sex == "female" else 0)
        cccd = f"{province}{century_digit}{year % 100:02d}{rng.randrange(10**6):06d}"
        if cccd in used:
            continue
        used.add(cccd)
        cmnd = f"{rng.randrange(10**8, 10**9)}" if year < 2000 else None
        full_name = " ".join(
            (rng.choice(_FAMILY_NAMES), rng.choice(_MIDDLE_NAMES[sex]), rng.choice(_GIVEN_NAMES[sex]))
        )
        bhxh = coverage = None
        if rng.random() < 0.85:
            bhxh = f"{card_province}{rng.randrange(10**8):08d}"
            valid_from = dt.date(2021, 1, 1) + dt.timedelta(days=rng.randrange(365))
            coverage = Coverage(
                card_number=f"{rng.choice(_CARD_GROUPS)}{rng.randint(1, 5)}{card_province}{bhxh}",
                valid_from=valid_from,
                valid_to=valid_from + dt.timedelta(days=365 * rng.randint(1, 5) - 1),
            )
        citizens.append(Citizen(cccd, full_name, birth_date, sex, cmnd=cmnd, bhxh=bhxh, coverage=coverage))
    return citizens
