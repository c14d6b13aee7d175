"""Fixtures for the matching tests: the committed model and term
frequencies counted from a synthetic population."""

from __future__ import annotations

import pytest

from vaxhub.identity.keys import match_keys
from vaxhub.identity.population import generate_linkage_population
from vaxhub.identity.scoring import CountingFrequencies, MatchModel


@pytest.fixture(scope="session")
def model() -> MatchModel:
    return MatchModel.default()


@pytest.fixture(scope="session")
def frequencies() -> CountingFrequencies:
    """Name and phone shares of a 3,000-record synthetic population
    (Nguyễn ≈ 38%, as in the country)."""
    population = generate_linkage_population(3000, seed=11)
    return CountingFrequencies.from_keys(match_keys(r.patient) for r in population.records)
