"""Everything a golden Patient reaches: its own compartment and those of its linked records."""

from __future__ import annotations

from vaxhub.hub.storage.person_reach import golden_reach_ids
from vaxhub.hub.storage.store import FhirStore, Stored


def compartments_in_reach(store: FhirStore, patient_id: str) -> list[Stored]:
    """`Patient/{id}/$everything`: for a site Patient its own compartment; for a
    golden Patient every linked record's as well (one query per record)."""
    with store.engine.connect() as conn:
        ids = golden_reach_ids(conn, patient_id)
    found: list[Stored] = []
    for compartment in ids:
        found += store.compartment(compartment)
    return found
