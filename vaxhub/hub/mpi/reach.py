"""Everything a golden Patient reaches: its own compartment and those of its linked records."""

from __future__ import annotations

from vaxhub.hub.storage.person_reach import golden_reach
from vaxhub.hub.storage.store import FhirStore, Stored


def compartments_in_reach(store: FhirStore, patient_id: str) -> list[Stored]:
    """`Patient/{id}/$everything`: for a site Patient its own compartment; for a
    golden Patient every linked record's as well, in one query."""
    return store.compartments(golden_reach(patient_id))
