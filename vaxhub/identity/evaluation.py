"""Accuracy of a linkage against the truth of a synthetic population.

Pairwise measures (Christen, "Data Matching", §7.3), counted over record
pairs rather than over clusters, since one wrong merge of two large
clusters joins many pairs of records of different people:

- linked pairs: record pairs placed in one cluster (one health record);
- true pairs: record pairs of one true person;
- precision = correct linked pairs / linked pairs;
- recall = correct linked pairs / true pairs;
- **wrong-link rate** = linked pairs whose two records belong to different
  true people / linked pairs, i.e. 1 − precision: the share of the links the
  index made that join two people.

`sweep` re-clusters the same scored pairs at other link thresholds, which is
how the committed thresholds are chosen (`calibrate`).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from .comparisons import PreparedKeys
from .linkage import ScoredPairs, cluster, review_pairs
from .scoring import MatchModel

WRONG_LINK_TARGET = 0.001


def _pairs(count: int) -> int:
    return count * (count - 1) // 2


@dataclass(frozen=True)
class PairwiseMetrics:
    true_pairs: int
    linked_pairs: int
    correct_pairs: int
    clusters: int
    people: int
    merged_clusters: int  # clusters holding records of more than one person

    @property
    def wrong_pairs(self) -> int:
        return self.linked_pairs - self.correct_pairs

    @property
    def precision(self) -> float:
        return self.correct_pairs / self.linked_pairs if self.linked_pairs else 1.0

    @property
    def recall(self) -> float:
        return self.correct_pairs / self.true_pairs if self.true_pairs else 1.0

    @property
    def f1(self) -> float:
        p, r = self.precision, self.recall
        return 2 * p * r / (p + r) if p + r else 0.0

    @property
    def wrong_link_rate(self) -> float:
        return self.wrong_pairs / self.linked_pairs if self.linked_pairs else 0.0


def pairwise_metrics(labels: Sequence[object], truth: Sequence[str]) -> PairwiseMetrics:
    """Metrics of a clustering (`labels[i]` the cluster of record i) against
    the true person of each record."""
    by_cluster = Counter(labels)
    by_person = Counter(truth)
    cells = Counter(zip(labels, truth))
    people_in_cluster = Counter(label for label, _ in cells)
    return PairwiseMetrics(
        true_pairs=sum(_pairs(c) for c in by_person.values()),
        linked_pairs=sum(_pairs(c) for c in by_cluster.values()),
        correct_pairs=sum(_pairs(c) for c in cells.values()),
        clusters=len(by_cluster),
        people=len(by_person),
        merged_clusters=sum(1 for c in people_in_cluster.values() if c > 1),
    )


@dataclass(frozen=True)
class ThresholdPoint:
    link_threshold: float
    metrics: PairwiseMetrics


def sweep(
    prepared: Sequence[PreparedKeys],
    scored: ScoredPairs,
    truth: Sequence[str],
    model: MatchModel,
    link_thresholds: Sequence[float],
) -> list[ThresholdPoint]:
    """Metrics at each link threshold (a probability), same scored pairs."""
    points = []
    for threshold in link_thresholds:
        labels = cluster(prepared, scored, model, link_weight=model.weight_for(threshold))
        points.append(ThresholdPoint(threshold, pairwise_metrics(labels, truth)))
    return points


@dataclass(frozen=True)
class ReviewPoint:
    review_threshold: float
    queue: int  # review pairs between different clusters
    true_in_queue: int  # of them, pairs of one true person


def review_sweep(
    prepared: Sequence[PreparedKeys],
    scored: ScoredPairs,
    truth: Sequence[str],
    model: MatchModel,
    review_thresholds: Sequence[float],
) -> list[ReviewPoint]:
    """Review-queue size and how many of its pairs are true matches, at the
    model's link threshold and each review threshold."""
    labels = cluster(prepared, scored, model)
    ids = [str(i) for i in range(len(prepared))]
    points = []
    for threshold in review_thresholds:
        if threshold > model.link_threshold:
            continue
        queue = review_pairs(ids, scored, labels, model, review_weight=model.weight_for(threshold))
        true = sum(1 for p in queue if truth[int(p.record_a)] == truth[int(p.record_b)])
        points.append(ReviewPoint(threshold, len(queue), true))
    return points


# A link must at least be more likely than not: 0.5 … 0.9999999999.
DEFAULT_LINK_GRID: tuple[float, ...] = (0.5, 0.6, 0.7, 0.8) + tuple(
    1 - 10 ** -(x / 4) for x in range(4, 41)
)


RECALL_TOLERANCE = 0.001


def best_link_threshold(
    points: Sequence[ThresholdPoint], target: float = WRONG_LINK_TARGET
) -> ThresholdPoint | None:
    """The highest link threshold whose wrong-link rate is within `target`
    and whose recall is within `RECALL_TOLERANCE` of the best such recall:
    where the rules already keep wrong links away, a stricter threshold
    that costs (almost) no recall is the safer one."""
    allowed = [p for p in points if p.metrics.wrong_link_rate <= target]
    if not allowed:
        return None
    best = max(p.metrics.recall for p in allowed)
    return max(
        (p for p in allowed if p.metrics.recall >= best - RECALL_TOLERANCE),
        key=lambda p: p.link_threshold,
    )
