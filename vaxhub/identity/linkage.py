"""Batch linkage in memory: blocking, scoring, decisions, clusters.

Used by the accuracy bench and meant for the hub's batch re-linking: give
`link_records` an iterable of (record id, `MatchKeys`) and get back each
record's cluster (one cluster, one person) and the pairs for human review.

The steps are the usual ones of probabilistic record linkage (Christen,
"Data Matching", 2012; Splink's `predict` then `cluster_pairwise_predictions_at_threshold`):

1. blocking: records are filed under their `blocking_keys`; only records
   sharing a key become candidate pairs (blocks above `max_block_size` are
   skipped and counted, so one phone number typed by a whole clinic cannot
   make a quadratic block);
2. scoring: each candidate pair's comparison levels and match weight
   (`MatchModel.pair_weight`, the same code as online scoring);
3. decisions: link at or above the link threshold, review at or above the
   review threshold, else nothing;
4. clusters: union-find over the links, strongest first, refusing any union
   that would put two different personal numbers (CCCD, or a 12-digit CMND)
   or two different BHXH numbers into one cluster: transitive links through a record without numbers must not
   merge two people the rules keep apart.

Per-record work (preparing keys, term-frequency logs) is done once; the pair
loop only compares prepared fields and adds cached per-pattern weights.
"""

from __future__ import annotations

from array import array
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from itertools import combinations
from time import perf_counter

from .comparisons import PreparedKeys, compare, prepare
from .keys import MatchKeys, blocking_keys
from .scoring import CAPPED, CERTAIN, EXCLUDED, CountingFrequencies, MatchModel, TermFrequencies

Progress = Callable[[str, int, int], None]  # (stage, done, total)
DEFAULT_MAX_BLOCK_SIZE = 200


@dataclass
class ScoredPairs:
    """Every candidate pair with its weight and rule verdict, as compact
    arrays (a million records give millions of pairs)."""

    left: array = field(default_factory=lambda: array("l"))
    right: array = field(default_factory=lambda: array("l"))
    weight: array = field(default_factory=lambda: array("d"))
    verdict: array = field(default_factory=lambda: array("b"))

    def __len__(self) -> int:
        return len(self.left)


@dataclass(frozen=True)
class ReviewPair:
    record_a: str
    record_b: str
    weight: float
    probability: float


@dataclass
class LinkageStats:
    records: int = 0
    candidate_pairs: int = 0
    skipped_blocks: int = 0
    skipped_block_records: int = 0
    links: int = 0
    seconds: dict[str, float] = field(default_factory=dict)


@dataclass
class LinkageResult:
    clusters: dict[str, str]  # record id -> cluster id (the cluster's first record id)
    review_pairs: list[ReviewPair]
    stats: LinkageStats


def _report(progress: Progress | None, stage: str, done: int, total: int) -> None:
    if progress is not None:
        progress(stage, done, total)


def candidate_pairs(
    prepared: Sequence[PreparedKeys],
    *,
    max_block_size: int = DEFAULT_MAX_BLOCK_SIZE,
    stats: LinkageStats | None = None,
    progress: Progress | None = None,
) -> list[int]:
    """Distinct candidate pairs, each encoded as `i * n + j` with i < j."""
    n = len(prepared)
    blocks: dict[str, list[int] | int] = {}
    for i, item in enumerate(prepared):
        for key in blocking_keys(item.keys):
            held = blocks.get(key)
            if held is None:
                blocks[key] = i
            elif isinstance(held, int):
                blocks[key] = [held, i]
            else:
                held.append(i)
        if i % 100_000 == 0:
            _report(progress, "blocking", i, n)
    _report(progress, "blocking", n, n)
    seen: set[int] = set()
    for members in blocks.values():
        if isinstance(members, int):
            continue
        if len(members) > max_block_size:
            if stats is not None:
                stats.skipped_blocks += 1
                stats.skipped_block_records += len(members)
            continue
        if len(members) == 2:
            seen.add(members[0] * n + members[1])
        else:
            seen.update(i * n + j for i, j in combinations(members, 2))
    return sorted(seen)


def score_pairs(
    prepared: Sequence[PreparedKeys],
    pairs: Sequence[int],
    model: MatchModel,
    tf: TermFrequencies,
    *,
    progress: Progress | None = None,
) -> ScoredPairs:
    """Weights and verdicts of the candidate pairs."""
    n = len(prepared)
    tf_logs = [model.tf_logs(p, tf) for p in prepared]
    scored = ScoredPairs()
    left, right, weights, verdicts = scored.left, scored.right, scored.weight, scored.verdict
    pair_weight = model.pair_weight
    total = len(pairs)
    for done, code in enumerate(pairs):
        i, j = divmod(code, n)
        weight, verdict = pair_weight(compare(prepared[i], prepared[j]), tf_logs[i], tf_logs[j])
        left.append(i)
        right.append(j)
        weights.append(weight)
        verdicts.append(verdict)
        if done % 200_000 == 0:
            _report(progress, "scoring", done, total)
    _report(progress, "scoring", total, total)
    return scored


def is_link(model: MatchModel, weight: float, verdict: int, link_weight: float | None = None) -> bool:
    """Whether a scored pair auto-links (grade certain or probable)."""
    if verdict == CERTAIN:
        return True
    limit = model.link_weight if link_weight is None else link_weight
    return verdict not in (EXCLUDED, CAPPED) and weight >= limit


def cluster(
    prepared: Sequence[PreparedKeys],
    scored: ScoredPairs,
    model: MatchModel,
    *,
    link_weight: float | None = None,
) -> list[int]:
    """Cluster label (index of the cluster's first record) of each record:
    union-find over the links, strongest first, never joining clusters
    that hold different CCCDs or different BHXH numbers."""
    n = len(prepared)
    parent = list(range(n))
    cccd: list[str | None] = [p.personal_number for p in prepared]
    bhxh: list[str | None] = [p.bhxh for p in prepared]

    def find(x: int) -> int:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    links = [
        k for k in range(len(scored))
        if is_link(model, scored.weight[k], scored.verdict[k], link_weight)
    ]
    # Certain links first, then by weight: a weak link must not take a
    # record into a cluster that a strong one would have refused.
    links.sort(key=lambda k: (scored.verdict[k] != CERTAIN, -scored.weight[k]))
    for k in links:
        a, b = find(scored.left[k]), find(scored.right[k])
        if a == b:
            continue
        if cccd[a] and cccd[b] and cccd[a] != cccd[b]:
            continue
        if bhxh[a] and bhxh[b] and bhxh[a] != bhxh[b]:
            continue
        root, child = (a, b) if a < b else (b, a)
        parent[child] = root
        cccd[root] = cccd[root] or cccd[child]
        bhxh[root] = bhxh[root] or bhxh[child]
    return [find(i) for i in range(n)]


def review_pairs(
    record_ids: Sequence[str],
    scored: ScoredPairs,
    labels: Sequence[int],
    model: MatchModel,
    *,
    link_weight: float | None = None,
    review_weight: float | None = None,
) -> list[ReviewPair]:
    """Pairs graded "possible" whose records ended in different clusters."""
    link_limit = model.link_weight if link_weight is None else link_weight
    review_limit = model.review_weight if review_weight is None else review_weight
    found = []
    for k in range(len(scored)):
        verdict, weight = scored.verdict[k], scored.weight[k]
        if verdict in (EXCLUDED, CERTAIN) or weight < review_limit:
            continue
        if verdict != CAPPED and weight >= link_limit:
            continue
        i, j = scored.left[k], scored.right[k]
        if labels[i] != labels[j]:
            found.append(ReviewPair(record_ids[i], record_ids[j], weight, model.probability(weight)))
    return found


def link_records(
    records: Iterable[tuple[str, MatchKeys]],
    model: MatchModel | None = None,
    tf: TermFrequencies | None = None,
    *,
    max_block_size: int = DEFAULT_MAX_BLOCK_SIZE,
    progress: Progress | None = None,
) -> LinkageResult:
    """Link a batch: record id -> cluster id, plus the review pairs. Term
    frequencies default to those of the batch itself, and the model to the
    committed one with its prior set for the batch's size."""
    stats = LinkageStats()
    started = perf_counter()
    ids: list[str] = []
    keys: list[MatchKeys] = []
    for record_id, item in records:
        ids.append(record_id)
        keys.append(item)
    prepared = [prepare(k) for k in keys]
    model = model or MatchModel.default().for_population(len(keys))
    tf = tf or CountingFrequencies.from_keys(keys)
    stats.records = len(ids)
    stats.seconds["prepare"] = perf_counter() - started

    mark = perf_counter()
    pairs = candidate_pairs(prepared, max_block_size=max_block_size, stats=stats, progress=progress)
    stats.candidate_pairs = len(pairs)
    stats.seconds["blocking"] = perf_counter() - mark

    mark = perf_counter()
    scored = score_pairs(prepared, pairs, model, tf, progress=progress)
    del pairs
    stats.seconds["scoring"] = perf_counter() - mark

    mark = perf_counter()
    labels = cluster(prepared, scored, model)
    stats.links = sum(
        1 for k in range(len(scored)) if is_link(model, scored.weight[k], scored.verdict[k])
    )
    clusters = {record_id: ids[label] for record_id, label in zip(ids, labels)}
    reviews = review_pairs(ids, scored, labels, model)
    stats.seconds["clustering"] = perf_counter() - mark
    stats.seconds["total"] = perf_counter() - started
    return LinkageResult(clusters, reviews, stats)
