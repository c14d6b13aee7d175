"""The batch linker: clusters, the CCCD guard, and accuracy on a small
synthetic population."""

from __future__ import annotations

import pytest

from vaxhub.identity.evaluation import WRONG_LINK_TARGET, pairwise_metrics
from vaxhub.identity.keys import match_keys
from vaxhub.identity.linkage import link_records
from vaxhub.identity.population import generate_linkage_population
from vaxhub.identity.scoring import CountingFrequencies
from tests.unit.identity.identity_builders import keys

# Measured with the committed model: 0.90 on this population (0.90-0.91 on
# seeds 5-9; the misses are mostly pairs sent to review). The floor leaves
# room for retraining, not for a broken linker.
RECALL_FLOOR = 0.88


def test_records_of_one_person_end_in_one_cluster(model, frequencies):
    records = [
        ("site-a/1", keys("Lê Văn Thắng", "1988-07-09", "male", cccd="036088012345", phone="0912345678")),
        ("site-b/7", keys("Le Van Thang", "1988-07-09", "male", phone="0912345678")),
        ("site-c/3", keys("Lê Văn Thắng", "1988", "male", cccd="036088012345")),
        ("site-c/4", keys("Lê Thị Lan", "1990-01-02", "female", phone="0912345678")),
    ]
    result = link_records(records, model, frequencies)
    assert result.clusters["site-a/1"] == result.clusters["site-b/7"] == result.clusters["site-c/3"]
    assert result.clusters["site-c/4"] != result.clusters["site-a/1"]
    assert result.clusters["site-c/4"] == "site-c/4"


def test_a_record_without_numbers_never_bridges_two_cccds(model, frequencies):
    # b links strongly to a and to c, but a and c hold different CCCDs.
    a = keys("Nguyễn Văn An", "1985-03-12", "male", cccd="001085012345", phone="0912345678")
    b = keys("Nguyễn Văn An", "1985-03-12", "male", phone="0912345678")
    c = keys("Nguyễn Văn An", "1985-03-12", "male", cccd="001085067890", phone="0912345678")
    clusters = link_records([("a", a), ("b", b), ("c", c)], model, frequencies).clusters
    assert clusters["a"] != clusters["c"]
    assert clusters["b"] in (clusters["a"], clusters["c"])


def test_twins_in_a_batch_stay_apart_and_wait_for_review(model, frequencies):
    first = keys("Đỗ Minh Phúc", "2005-09-01", "male", phone="0912345678")
    second = keys("Đỗ Minh Lộc", "2005-09-01", "male", phone="0912345678")
    result = link_records([("a", first), ("b", second)], model, frequencies)
    assert result.clusters["a"] != result.clusters["b"]
    assert [(p.record_a, p.record_b) for p in result.review_pairs] == [("a", "b")]


@pytest.fixture(scope="module")
def small_population():
    population = generate_linkage_population(3000, seed=5)
    records = [(r.record_id, match_keys(r.patient)) for r in population.records]
    return population, records


def test_small_population_links_with_few_wrong_links(small_population):
    population, records = small_population
    result = link_records(records)
    truth = [r.person_id for r in population.records]
    labels = [result.clusters[record_id] for record_id, _ in records]
    metrics = pairwise_metrics(labels, truth)
    assert metrics.wrong_link_rate <= WRONG_LINK_TARGET
    assert metrics.recall >= RECALL_FLOOR
    assert result.stats.candidate_pairs < 5 * len(records)


def test_linker_weights_are_the_online_scores(small_population, model):
    from vaxhub.identity.comparisons import prepare
    from vaxhub.identity.linkage import candidate_pairs, score_pairs

    _, records = small_population
    items = [k for _, k in records[:400]]
    prepared = [prepare(k) for k in items]
    tf = CountingFrequencies.from_keys(items)
    pairs = candidate_pairs(prepared)
    scored = score_pairs(prepared, pairs, model, tf)
    assert len(scored) > 10
    for k in range(len(scored)):
        i, j = scored.left[k], scored.right[k]
        assert scored.weight[k] == model.score(items[i], items[j], tf).weight
