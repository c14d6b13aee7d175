"""The link worker scores with term counts read for exactly the values in play:
a value counted under one field is never taken for the same text under another."""

from __future__ import annotations

from tests.unit.identity.identity_builders import keys
from vaxhub.hub.mpi.frequencies import count_terms, load_frequencies
from vaxhub.identity.scoring import _default_model


def test_counts_are_read_per_field_and_value_and_the_total_with_them(engine):
    lan_given = [keys("Nguyễn Thị Lan", phone="0912345678") for _ in range(3)]
    lan_family = [keys("Lan Văn Minh", phone="0912345678")]
    others = [keys("Trần Văn Hùng", phone="0987654321") for _ in range(5)]
    with engine.begin() as conn:
        count_terms(conn, added=[*lan_given, *lan_family, *others])
        count_terms(conn, removed=others[:1])

    asked = keys("Lan Thị Hoa", phone="0912345678")  # "lan" as a family name only
    with engine.connect() as conn:
        found = load_frequencies(conn, [asked], _default_model())

    assert found.total == 8
    assert found.counts["family"] == {"lan": 1}  # not the 3 given names "lan"
    assert found.counts["middle"] == {"thi": 3}
    assert found.counts["given"] == {}  # "hoa" was never counted
    assert found.counts["phone"] == {"0912345678": 4}
    # Values of the stored records that no asked record holds are not loaded.
    assert "nguyen" not in found.counts["family"] and "tran" not in found.counts["family"]
