"""Fellegi–Sunter match scoring with term-frequency adjustment and hard rules.

The match weight of a pair is the sum over the comparisons of log2(m/u) for
the level the pair lands on (`comparisons`): the log2 Bayes factor that the
two records are one person. Added to the prior's log-odds it gives the
posterior probability (Fellegi and Sunter 1969; Splink's "match weight" and
"match probability" are the same quantities).

Term-frequency adjustment: for agreement on a name (or phone), u is not the
level's average but the share of records holding that very value, so
agreeing on Nguyễn (~38% of people) counts for little and agreeing on a rare
surname for much (as Splink does,
https://moj-analytical-services.github.io/splink/topic_guides/comparisons/term-frequency.html),
with u floored at `tf_minimum_u` so that one unseen spelling cannot outweigh
everything else.

Hard rules keep the worst error, one health record for two people, away
whatever the weights say:

- two different CCCDs (a 12-digit CMND counts as the personal number it
  became), or two different BHXH numbers, are two people (grade
  "no-match", probability 0);
- a CCCD or BHXH number one digit off, or a given name that is not the
  same name (twins and siblings share surname, birth date, phone and
  address) can at most go to review, unless, for the given name, a number
  agrees and the names are only one typo or one diacritic apart;
- with no number in agreement, the birth date must agree in full (or with
  day and month swapped); a year-only or one-part agreement needs the phone
  too (namesakes born the same year in one province are common), and the
  genders must not differ;
- "certain" needs agreement on a national number (CCCD, or the CMND) and on
  family name, given name and birth date.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from typing import Any, Literal, Protocol

from .comparisons import COMPARISONS, NULL, PreparedKeys, compare, prepare
from .keys import MatchKeys

Grade = Literal["certain", "probable", "possible", "no-match"]
Decision = Literal["link", "review", "new"]

TF_FIELDS: tuple[str, ...] = ("family", "middle", "given", "phone")
DEFAULT_TF_MINIMUM_U = 1e-4


class TermFrequencies(Protocol):
    """How common a value is among the records (the hub keeps these counts
    in its database; `CountingFrequencies` is the in-memory one)."""

    def share(self, field: str, value: str) -> float:
        """Fraction of records with `value` in `field` ("family", "middle",
        "given", "phone"); a small positive floor for unseen values."""
        ...


class CountingFrequencies:
    """Term frequencies counted in memory from match keys."""

    def __init__(self, minimum_share: float = 1e-6):
        self.minimum_share = minimum_share
        self.total = 0
        self.counts: dict[str, Counter[str]] = {field: Counter() for field in TF_FIELDS}

    @staticmethod
    def _values(keys: MatchKeys) -> Iterable[tuple[str, str]]:
        for field in TF_FIELDS:
            value = getattr(keys, field)
            if value:
                yield field, value

    def add(self, keys: MatchKeys) -> None:
        self.total += 1
        for field, value in self._values(keys):
            self.counts[field][value] += 1

    def remove(self, keys: MatchKeys) -> None:
        self.total -= 1
        for field, value in self._values(keys):
            counter = self.counts[field]
            counter[value] -= 1
            if counter[value] <= 0:
                del counter[value]

    @classmethod
    def from_keys(cls, keys: Iterable[MatchKeys], minimum_share: float = 1e-6) -> CountingFrequencies:
        frequencies = cls(minimum_share)
        for item in keys:
            frequencies.add(item)
        return frequencies

    def share(self, field: str, value: str) -> float:
        count = self.counts.get(field, {}).get(value, 0)
        if count <= 0 or self.total <= 0:
            return self.minimum_share
        return max(count / self.total, self.minimum_share)

    def to_document(self) -> dict[str, Any]:
        return {
            "total": self.total,
            "minimum_share": self.minimum_share,
            "counts": {field: dict(counter) for field, counter in self.counts.items()},
        }

    @classmethod
    def from_document(cls, doc: dict[str, Any]) -> CountingFrequencies:
        frequencies = cls(doc.get("minimum_share", 1e-6))
        frequencies.total = int(doc["total"])
        for field, counts in doc.get("counts", {}).items():
            frequencies.counts[field] = Counter({k: int(v) for k, v in counts.items()})
        return frequencies


@dataclass(frozen=True)
class MatchScore:
    weight: float  # total log2 Bayes factor (match weight)
    probability: float  # 0..1 posterior with the model's prior
    grade: Grade
    reasons: tuple[str, ...]  # per-comparison contributions, for operators


# What the hard rules say of a comparison pattern.
OPEN, CAPPED, EXCLUDED, CERTAIN = 0, 1, 2, 3

_L = {c.name: {name: i for i, name in enumerate(c.levels)} for c in COMPARISONS}
_I = {c.name: i for i, c in enumerate(COMPARISONS)}
_TF_SLOT = {field: i for i, field in enumerate(TF_FIELDS)}


def rule_verdict(levels: tuple[int, ...]) -> int:
    """OPEN, CAPPED (review at most), EXCLUDED (never a match) or CERTAIN."""
    cccd, bhxh = levels[_I["cccd"]], levels[_I["bhxh"]]
    if cccd == _L["cccd"]["different"] or bhxh == _L["bhxh"]["different"]:
        return EXCLUDED
    national = cccd in (_L["cccd"]["same"], _L["cccd"]["cross"]) or levels[_I["cmnd"]] == 1
    any_number = national or bhxh == _L["bhxh"]["same"]
    given = levels[_I["given"]]
    date = levels[_I["birth_date"]]
    g = _L["given"]
    if cccd == _L["cccd"]["one_digit"] or bhxh == _L["bhxh"]["one_digit"]:
        return CAPPED
    if given not in (g["exact"], g["folded"], g["reordered"]):
        if not (any_number and given in (g["fuzzy"], g["conflict"])):
            return CAPPED
    if not any_number:
        d = _L["birth_date"]
        if date not in (d["exact"], d["transposed"], d["year_compatible"], d["one_part"]):
            return CAPPED
        if date in (d["year_compatible"], d["one_part"]) and levels[_I["phone"]] != 1:
            return CAPPED
        if levels[_I["gender"]] == 2:
            return CAPPED
    if (
        national
        and levels[_I["family"]] == _L["family"]["exact"]
        and given in (g["exact"], g["folded"])
        and date in (_L["birth_date"]["exact"], _L["birth_date"]["year_compatible"])
    ):
        return CERTAIN
    return OPEN


_CAP_REASONS = {
    "cccd": "CCCD one digit off: a typo or another person, review",
    "bhxh": "BHXH number one digit off: a typo or another person, review",
    "given": "given names are not the same name (twins, siblings): review at most",
    "birth_date": "no number agrees and the birth dates do not agree fully "
                  "(a year-only or one-part agreement needs the phone too): review at most",
    "gender": "genders differ and no number agrees: review at most",
}


class _Pattern:
    """What a comparison pattern contributes, worked out once per pattern:
    the weight of its plain levels, the term-frequency adjusted levels as
    (slot, log2 m), and the rule verdict."""

    __slots__ = ("base", "tf", "verdict")

    def __init__(self, base: float, tf: tuple[tuple[int, float], ...], verdict: int):
        self.base = base
        self.tf = tf
        self.verdict = verdict


class MatchModel:
    """Fellegi–Sunter weights per comparison level, the prior, and the two
    decision thresholds (probabilities)."""

    def __init__(
        self,
        levels: dict[str, dict[str, dict[str, float]]],
        *,
        prior: float,
        link_threshold: float,
        review_threshold: float,
        tf_minimum_u: float = DEFAULT_TF_MINIMUM_U,
        prior_records: int | None = None,
        metadata: dict[str, Any] | None = None,
    ):
        if not 0 < prior < 1:
            raise ValueError("prior must be between 0 and 1")
        if not 0 < review_threshold <= link_threshold < 1:
            raise ValueError("thresholds must satisfy 0 < review <= link < 1")
        self.levels = levels
        self.prior = prior
        self.link_threshold = link_threshold
        self.review_threshold = review_threshold
        self.tf_minimum_u = tf_minimum_u
        self.prior_records = prior_records
        self.metadata = metadata or {}
        self.prior_weight = math.log2(prior / (1 - prior))
        self.link_weight = self.weight_for(link_threshold)
        self.review_weight = self.weight_for(review_threshold)
        self._weights: list[list[float]] = []
        self._log_m: list[list[float]] = []
        for comparison in COMPARISONS:
            given = levels.get(comparison.name, {})
            weights, log_m = [], []
            for i, level in enumerate(comparison.levels):
                if i == NULL:
                    weights.append(0.0)
                    log_m.append(0.0)
                    continue
                if level not in given:
                    raise ValueError(f"model has no m/u for {comparison.name} level {level!r}")
                m, u = given[level]["m"], given[level]["u"]
                weights.append(math.log2(m / u))
                log_m.append(math.log2(m))
            self._weights.append(weights)
            self._log_m.append(log_m)
        self._tf_levels = [
            {c.level(name) for name in c.tf_levels} if c.tf_field else set() for c in COMPARISONS
        ]
        self._patterns: dict[tuple[int, ...], _Pattern] = {}

    # -- persistence --------------------------------------------------------

    @classmethod
    def from_document(cls, doc: dict[str, Any]) -> MatchModel:
        return cls(
            doc["comparisons"],
            prior=doc["prior"],
            link_threshold=doc["link_threshold"],
            review_threshold=doc["review_threshold"],
            tf_minimum_u=doc.get("tf_minimum_u", DEFAULT_TF_MINIMUM_U),
            prior_records=doc.get("prior_records"),
            metadata=doc.get("metadata"),
        )

    def to_document(self) -> dict[str, Any]:
        return {
            "prior": self.prior,
            "link_threshold": self.link_threshold,
            "review_threshold": self.review_threshold,
            "tf_minimum_u": self.tf_minimum_u,
            "prior_records": self.prior_records,
            "comparisons": self.levels,
            "metadata": self.metadata,
        }

    @classmethod
    def default(cls) -> MatchModel:
        """The committed model, `vaxhub/identity/data/match_model.json`."""
        return _default_model()

    def with_thresholds(self, link: float, review: float) -> MatchModel:
        doc = self.to_document()
        doc["link_threshold"], doc["review_threshold"] = link, review
        return MatchModel.from_document(doc)

    def for_population(self, records: int) -> MatchModel:
        """The model for an index of `records` records. The prior was
        measured on `prior_records`; a person has about as many records
        whatever the size, so matching pairs grow with n and all pairs with
        n², and the prior falls as 1/n. The thresholds stay probabilities,
        so a larger index asks for more evidence (log2 of the size ratio
        more bits) before it links: more namesakes share every name."""
        if not self.prior_records or records <= 1:
            return self
        doc = self.to_document()
        doc["prior"] = min(0.5, self.prior * (self.prior_records - 1) / (records - 1))
        doc["prior_records"] = records
        return MatchModel.from_document(doc)

    # -- scoring -------------------------------------------------------------

    def weight_for(self, probability: float) -> float:
        return math.log2(probability / (1 - probability)) - self.prior_weight

    def probability(self, weight: float) -> float:
        odds = weight + self.prior_weight
        if odds > 60:
            return 1.0
        return 1.0 / (1.0 + 2.0 ** -odds)

    def pattern(self, levels: tuple[int, ...]) -> _Pattern:
        found = self._patterns.get(levels)
        if found is None:
            base = 0.0
            tf: list[tuple[int, float]] = []
            for i, (comparison, level) in enumerate(zip(COMPARISONS, levels)):
                if level in self._tf_levels[i]:
                    tf.append((_TF_SLOT[comparison.tf_field], self._log_m[i][level]))  # type: ignore[index]
                else:
                    base += self._weights[i][level]
            found = self._patterns[levels] = _Pattern(base, tuple(tf), rule_verdict(levels))
        return found

    def tf_logs(self, keys: MatchKeys | PreparedKeys, tf: TermFrequencies) -> tuple[float, ...]:
        """log2 of each term-frequency u (the value's share, floored) of one
        record, in `TF_FIELDS` order; 0.0 where the record has no value."""
        source = keys.keys if isinstance(keys, PreparedKeys) else keys
        logs = []
        for field in TF_FIELDS:
            value = getattr(source, field)
            logs.append(math.log2(max(tf.share(field, value), self.tf_minimum_u)) if value else 0.0)
        return tuple(logs)

    def pair_weight(
        self, levels: tuple[int, ...], tf_a: tuple[float, ...], tf_b: tuple[float, ...]
    ) -> tuple[float, int]:
        """(match weight, rule verdict) of a compared pair: the batch
        linker's fast path, without the operator's reasons."""
        pattern = self.pattern(levels)
        weight = pattern.base
        for slot, log_m in pattern.tf:
            weight += log_m - (tf_a[slot] + tf_b[slot]) / 2
        return weight, pattern.verdict

    def grade(self, weight: float, verdict: int) -> Grade:
        if verdict == EXCLUDED:
            return "no-match"
        if verdict == CERTAIN:
            return "certain"
        if weight >= self.link_weight and verdict != CAPPED:
            return "probable"
        if weight >= self.review_weight or (verdict == CAPPED and weight >= self.link_weight):
            return "possible"
        return "no-match"

    def score(self, incoming: MatchKeys, candidate: MatchKeys, tf: TermFrequencies) -> MatchScore:
        """The score of one pair, with the reasons an operator reads."""
        a, b = prepare(incoming), prepare(candidate)
        levels = compare(a, b)
        tf_a, tf_b = self.tf_logs(incoming, tf), self.tf_logs(candidate, tf)
        weight, verdict = self.pair_weight(levels, tf_a, tf_b)
        grade = self.grade(weight, verdict)
        probability = 0.0 if verdict == EXCLUDED else self.probability(weight)
        return MatchScore(weight, probability, grade, self._reasons(levels, tf_a, tf_b, verdict))

    def decide(self, score: MatchScore) -> Decision:
        if score.grade in ("certain", "probable"):
            return "link"
        return "review" if score.grade == "possible" else "new"

    # -- explanation -----------------------------------------------------------

    def _reasons(
        self, levels: tuple[int, ...], tf_a: tuple[float, ...], tf_b: tuple[float, ...], verdict: int
    ) -> tuple[str, ...]:
        reasons = []
        for i, (comparison, level) in enumerate(zip(COMPARISONS, levels)):
            name = comparison.levels[level]
            if level == NULL:
                reasons.append(f"{comparison.name}: not compared (missing) +0.0")
                continue
            if level in self._tf_levels[i]:
                slot = _TF_SLOT[comparison.tf_field]  # type: ignore[index]
                share = 2 ** ((tf_a[slot] + tf_b[slot]) / 2)
                weight = self._log_m[i][level] - math.log2(share)
                reasons.append(
                    f"{comparison.name}: {name} {weight:+.1f} (value held by {share:.3%} of records)"
                )
            else:
                reasons.append(f"{comparison.name}: {name} {self._weights[i][level]:+.1f}")
        if verdict == EXCLUDED:
            which = "CCCD" if levels[_I["cccd"]] == _L["cccd"]["different"] else "BHXH numbers"
            reasons.append(f"rule: different {which}: never the same person")
        elif verdict == CAPPED:
            reasons.append(f"rule: {self._cap_reason(levels)}")
        elif verdict == CERTAIN:
            reasons.append("rule: national number, name and birth date agree: certain")
        return tuple(reasons)

    @staticmethod
    def _cap_reason(levels: tuple[int, ...]) -> str:
        if levels[_I["cccd"]] == _L["cccd"]["one_digit"]:
            return _CAP_REASONS["cccd"]
        if levels[_I["bhxh"]] == _L["bhxh"]["one_digit"]:
            return _CAP_REASONS["bhxh"]
        g = _L["given"]
        if levels[_I["given"]] not in (g["exact"], g["folded"], g["reordered"]):
            return _CAP_REASONS["given"]
        if levels[_I["gender"]] == 2:
            return _CAP_REASONS["gender"]
        return _CAP_REASONS["birth_date"]


MODEL_RESOURCE = ("vaxhub.identity", "data/match_model.json")


@lru_cache(maxsize=1)
def _default_model() -> MatchModel:
    text = resources.files(MODEL_RESOURCE[0]).joinpath(MODEL_RESOURCE[1]).read_text("utf-8")
    return MatchModel.from_document(json.loads(text))
