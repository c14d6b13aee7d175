"""Comparison levels: how two records agree, field by field.

A Fellegi–Sunter model (Fellegi and Sunter, "A Theory for Record Linkage",
JASA 1969) turns each compared field into one of a few ordered *levels*
("exact", "fuzzy", "different", …); each level carries an m probability (how
often true matches land there) and a u probability (how often non-matches
do), and a pair's evidence is the sum of log2(m/u) over the fields. This
module only decides the levels; `scoring` holds the weights, `training`
estimates them. Splink organises a model the same way ("comparisons" made of
"comparison levels", the first one the null level that carries no weight),
which is what lets `training` hand these very levels to Splink.

Level 0 of every comparison is "null": one side does not know the value, and
the field then says nothing either way.

Records are compared as `PreparedKeys`, the match keys with what every
comparison needs worked out once per record (the given name with its
diacritics, the words of the name in sorted order, whether the name was
typed without diacritics at all), so the batch linker pays this once per
record, not once per pair.
"""

from __future__ import annotations

from dataclasses import dataclass

from rapidfuzz.distance import DamerauLevenshtein, JaroWinkler

from vaxhub.fhir.text import fold

from .keys import MatchKeys

# Jaro–Winkler similarity at or above which two different spellings count as
# one typo apart even when more than one edit separates them.
FUZZY_JARO_WINKLER = 0.92


@dataclass(frozen=True)
class Comparison:
    """One compared field: its levels in order, and which of them are
    term-frequency adjusted (Splink's "tf adjustments"): agreement on a
    common value is weaker evidence than agreement on a rare one."""

    name: str
    levels: tuple[str, ...]
    tf_field: str | None = None
    tf_levels: frozenset[str] = frozenset()

    def level(self, name: str) -> int:
        return self.levels.index(name)


COMPARISONS: tuple[Comparison, ...] = (
    # "reordered": the same words in another order (middle and given name
    # swapped, a given-first spelling read wrongly), and not the same here.
    Comparison("family", ("null", "exact", "fuzzy", "reordered", "else"),
               "family", frozenset({"exact"})),
    Comparison("middle", ("null", "exact", "partial", "fuzzy", "else"),
               "middle", frozenset({"exact"})),
    # "folded": same letters, one record typed without any diacritics;
    # "conflict": same letters, both with diacritics that differ (Hùng/Hưng,
    # Hoa/Hòa: different names, or a wrong mark).
    Comparison("given", ("null", "exact", "folded", "conflict", "fuzzy", "reordered", "else"),
               "given", frozenset({"exact", "folded"})),
    # "one_part": two parts equal and the third one typing slip off.
    Comparison("birth_date", ("null", "exact", "year_compatible", "transposed", "one_part", "else")),
    Comparison("gender", ("null", "same", "different")),
    # The personal number: the CCCD, or else a 12-digit CMND (a 12-digit
    # card's number is the personal number the CCCD kept). "cross": equal,
    # one of the two read from the CMND.
    Comparison("cccd", ("null", "same", "cross", "one_digit", "different")),
    Comparison("cmnd", ("null", "same", "different")),
    Comparison("bhxh", ("null", "same", "one_digit", "different")),
    Comparison("phone", ("null", "same", "different"), "phone", frozenset({"same"})),
    Comparison("province", ("null", "same", "different")),
)
COMPARISON_NAMES: tuple[str, ...] = tuple(c.name for c in COMPARISONS)
BY_NAME: dict[str, Comparison] = {c.name: c for c in COMPARISONS}
NULL = 0


class PreparedKeys:
    """`MatchKeys` with the per-record work of the comparisons done."""

    __slots__ = (
        "keys", "family", "middle", "middle_words", "given", "given_exact",
        "plain", "words", "year", "month", "day", "gender", "cccd", "cmnd", "bhxh",
        "phone", "province", "personal_number",
    )

    def __init__(self, keys: MatchKeys):
        self.keys = keys
        self.family = keys.family
        self.middle = keys.middle
        self.middle_words = frozenset(keys.middle.split())
        self.given = keys.given
        exact_words = keys.name_exact.split()
        self.given_exact = exact_words[-1] if exact_words and keys.given else ""
        # Typed without any diacritics: its letters say nothing about marks.
        self.plain = fold(keys.name_exact) == keys.name_exact
        self.words = " ".join(sorted(f"{keys.family} {keys.middle} {keys.given}".split()))
        self.year = keys.birth_year
        self.month = keys.birth_month
        self.day = keys.birth_day
        self.gender = keys.gender
        self.cccd = keys.cccd
        self.cmnd = keys.cmnd
        self.bhxh = keys.bhxh
        self.phone = keys.phone
        self.province = keys.province
        long_cmnd = keys.cmnd if keys.cmnd and len(keys.cmnd) == 12 else None
        self.personal_number = keys.cccd or long_cmnd


def prepare(keys: MatchKeys) -> PreparedKeys:
    return PreparedKeys(keys)


def _similar(a: str, b: str) -> bool:
    """One typo apart: one insertion, deletion, substitution or adjacent
    transposition, or Jaro–Winkler close (rapidfuzz)."""
    return (
        DamerauLevenshtein.distance(a, b, score_cutoff=1) <= 1
        or JaroWinkler.similarity(a, b) >= FUZZY_JARO_WINKLER
    )


def _one_digit(a: str, b: str) -> bool:
    """Same length and one digit wrong or two neighbours swapped."""
    return len(a) == len(b) and DamerauLevenshtein.distance(a, b, score_cutoff=1) <= 1


# Level numbers, spelled out once for the hot path below.
_FAMILY = {name: i for i, name in enumerate(COMPARISONS[0].levels)}
_MIDDLE = {name: i for i, name in enumerate(COMPARISONS[1].levels)}
_GIVEN = {name: i for i, name in enumerate(COMPARISONS[2].levels)}
_DATE = {name: i for i, name in enumerate(COMPARISONS[3].levels)}
_CCCD = {name: i for i, name in enumerate(COMPARISONS[5].levels)}
_BHXH = {name: i for i, name in enumerate(COMPARISONS[7].levels)}


def _family(a: PreparedKeys, b: PreparedKeys) -> int:
    if not a.family or not b.family:
        return NULL
    if a.family == b.family:
        return _FAMILY["exact"]
    if _similar(a.family, b.family):
        return _FAMILY["fuzzy"]
    if a.words == b.words:
        return _FAMILY["reordered"]
    return _FAMILY["else"]


def _middle(a: PreparedKeys, b: PreparedKeys) -> int:
    if not a.middle or not b.middle:
        return NULL
    if a.middle == b.middle:
        return _MIDDLE["exact"]
    if a.middle_words <= b.middle_words or b.middle_words <= a.middle_words:
        return _MIDDLE["partial"]
    if _similar(a.middle, b.middle):
        return _MIDDLE["fuzzy"]
    return _MIDDLE["else"]


def _given(a: PreparedKeys, b: PreparedKeys) -> int:
    if not a.given or not b.given:
        return NULL
    if a.given == b.given:
        if a.given_exact == b.given_exact:
            return _GIVEN["exact"]
        return _GIVEN["folded"] if a.plain or b.plain else _GIVEN["conflict"]
    if a.words == b.words:
        return _GIVEN["reordered"]
    if _similar(a.given, b.given):
        return _GIVEN["fuzzy"]
    return _GIVEN["else"]


def _birth_date(a: PreparedKeys, b: PreparedKeys) -> int:
    if a.year is None or b.year is None:
        return NULL
    if a.day is None or b.day is None:
        if a.year == b.year and (a.month is None or b.month is None or a.month == b.month):
            return _DATE["year_compatible"]
        return _DATE["else"]
    same = (a.year == b.year) + (a.month == b.month) + (a.day == b.day)
    if same == 3:
        return _DATE["exact"]
    if a.year == b.year and a.month == b.day and a.day == b.month:
        return _DATE["transposed"]
    if same == 2 and (
        _slip(a.year, b.year, 4) and _slip(a.month, b.month, 2) and _slip(a.day, b.day, 2)
    ):
        return _DATE["one_part"]
    return _DATE["else"]


def _slip(x: int, y: int, width: int) -> bool:
    """Equal, one apart, or one digit apart (1987/1997, 03/08): a typing
    slip, not another person's date (a mother's birthday and a daughter's
    twelve years later are not one part off)."""
    if abs(x - y) <= 1:
        return True
    return sum(p != q for p, q in zip(f"{x:0{width}d}", f"{y:0{width}d}")) == 1


def _cccd(a: PreparedKeys, b: PreparedKeys) -> int:
    if a.cccd and b.cccd:
        x, y = a.cccd, b.cccd
        if x == y:
            return _CCCD["same"]
    else:
        x, y = a.personal_number, b.personal_number
        if not x or not y:
            return NULL
        if x == y:
            return _CCCD["cross"]
    return _CCCD["one_digit"] if _one_digit(x, y) else _CCCD["different"]


def _simple(x: str | None, y: str | None) -> int:
    if x is None or y is None:
        return NULL
    return 1 if x == y else 2


def _bhxh(a: PreparedKeys, b: PreparedKeys) -> int:
    if not a.bhxh or not b.bhxh:
        return NULL
    if a.bhxh == b.bhxh:
        return _BHXH["same"]
    return _BHXH["one_digit"] if _one_digit(a.bhxh, b.bhxh) else _BHXH["different"]


def compare(a: PreparedKeys, b: PreparedKeys) -> tuple[int, ...]:
    """The level of each comparison, in `COMPARISONS` order. Symmetric:
    `compare(a, b) == compare(b, a)`."""
    return (
        _family(a, b),
        _middle(a, b),
        _given(a, b),
        _birth_date(a, b),
        _simple(a.gender, b.gender),
        _cccd(a, b),
        _simple(a.cmnd, b.cmnd),
        _bhxh(a, b),
        _simple(a.phone, b.phone),
        _simple(a.province, b.province),
    )


def level_names(levels: tuple[int, ...]) -> dict[str, str]:
    """{"given": "exact", …} for a tuple from `compare`."""
    return {c.name: c.levels[level] for c, level in zip(COMPARISONS, levels)}
