"""A name is indexed once: words held under family or given are not repeated under name."""

from __future__ import annotations

from vaxhub.hub.storage.indexer import index_rows


def test_patient_name_words_are_not_indexed_twice():
    patient = {"resourceType": "Patient", "name": [{"family": "Trần", "given": ["Mai", "Hồng", "Hiền"]}]}
    rows = index_rows("Patient", "p1", patient).string
    by_param: dict[str, set[str]] = {}
    for row in rows:
        by_param.setdefault(row["param"], set()).add(row["value_exact"])
    assert by_param["family"] == {"Trần"}
    assert by_param["given"] == {"Mai", "Hồng", "Hiền", "Mai Hồng Hiền"}
    # What only `name` holds: the full name, which no narrower parameter has.
    assert by_param["name"] == {"Trần Mai Hồng Hiền"}
    assert not by_param["name"] & (by_param["family"] | by_param["given"])
