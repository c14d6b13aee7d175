"""The scoring model's parts: term frequencies, the committed weights, the
prior for a population size, and symmetry."""

from __future__ import annotations

import math

from hypothesis import given, settings
from hypothesis import strategies as st

from vaxhub.identity.comparisons import COMPARISONS
from vaxhub.identity.keys import MatchKeys
from vaxhub.identity.scoring import CountingFrequencies
from tests.unit.identity.identity_builders import keys


def test_counting_frequencies_add_remove_and_round_trip():
    an = keys("Nguyễn Văn An", "1985", phone="0912345678")
    binh = keys("Nguyễn Văn Bình", "1986")
    tf = CountingFrequencies.from_keys([an, binh, an])
    assert tf.share("family", "nguyen") == 1.0
    assert math.isclose(tf.share("given", "an"), 2 / 3)
    tf.remove(an)
    assert tf.share("given", "an") == 0.5
    assert tf.share("given", "never-seen") == tf.minimum_share
    copy = CountingFrequencies.from_document(tf.to_document())
    assert copy.share("given", "binh") == tf.share("given", "binh")
    assert copy.share("phone", "0912345678") == 0.5


def test_committed_model_has_weights_for_every_level_and_ordered_thresholds(model):
    assert 0 < model.review_threshold <= model.link_threshold < 1
    for comparison in COMPARISONS:
        assert set(model.levels[comparison.name]) == set(comparison.levels[1:])
    assert model.metadata["trained_with"]


def test_agreement_weighs_more_than_disagreement_on_every_field(model):
    for comparison in COMPARISONS:
        levels = model.levels[comparison.name]
        best = levels[comparison.levels[1]]
        worst = levels[comparison.levels[-1]]
        assert best["m"] / best["u"] > 1 > worst["m"] / worst["u"], comparison.name


def test_a_larger_index_asks_for_more_evidence(model):
    bigger = model.for_population(45_000_000)
    assert bigger.prior < model.prior
    assert bigger.link_weight > model.link_weight + 5
    assert bigger.link_threshold == model.link_threshold


_names = st.sampled_from(["Nguyễn Văn An", "Nguyen Van An", "Nguyễn Văn Anh", "Văn An Nguyễn",
                          "Trần Thị Hòa", "Tran Thi Hoa", "Trần Thị Hoà", "Trần Hòa Thị", "Khổng Lan"])
_dates = st.sampled_from([None, "1985", "1985-03-12", "1985-12-03", "1985-03-13", "1986-03-12"])
_numbers = st.sampled_from([None, "001085012345", "001085012346", "001085099999"])
_cmnds = st.sampled_from([None, "012345678", "001085012345", "012345679"])
_bhxh = st.sampled_from([None, "0101234567", "0101234568"])
_phones = st.sampled_from([None, "0912345678", "0987654321"])
_genders = st.sampled_from([None, "male", "female"])


@st.composite
def match_keys(draw) -> MatchKeys:
    return keys(draw(_names), draw(_dates), draw(_genders), cccd=draw(_numbers), cmnd=draw(_cmnds),
                bhxh=draw(_bhxh), phone=draw(_phones), province=draw(st.sampled_from([None, "Hà Nội", "Huế"])))


@settings(max_examples=300, deadline=None)
@given(match_keys(), match_keys())
def test_score_is_symmetric(model, frequencies, a, b):
    ab, ba = model.score(a, b, frequencies), model.score(b, a, frequencies)
    assert ab.weight == ba.weight
    assert ab.grade == ba.grade
