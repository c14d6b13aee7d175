"""Everything a golden Patient reaches: its own compartment and those of its linked records."""

from __future__ import annotations

from sqlalchemy import String, bindparam

from vaxhub.hub.storage.person_reach import golden_reach
from vaxhub.hub.storage.store import RESOURCE, FhirStore, Stored, compartments_statement

# Built once: `$everything` is among the app's most frequent reads.
_IN_REACH = compartments_statement(RESOURCE.c.patient_id.in_(golden_reach(bindparam("reach_id", type_=String))))


def compartments_in_reach(store: FhirStore, patient_id: str) -> list[Stored]:
    """`Patient/{id}/$everything`: for a site Patient its own compartment; for a
    golden Patient every linked record's as well, in one query."""
    return store.compartments_by(_IN_REACH, {"reach_id": patient_id})
