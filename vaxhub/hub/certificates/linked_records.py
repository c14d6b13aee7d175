"""The Patient records that belong to one person.

A person vaccinated at several sites has a Patient record at each; their
certificate must count every dose. The master patient index links those
records to one golden person (`mpi_record`); this function is the one place
issuance asks, so a certificate covers the doses of every linked record.
"""

from __future__ import annotations

from vaxhub.hub.storage.person_reach import linked_record_ids
from vaxhub.hub.storage.store import FhirStore


def linked_patient_ids(store: FhirStore, patient_id: str) -> list[str]:
    """Every site Patient id of the person `patient_id` belongs to (or is, for a
    golden Patient), `patient_id` first when it is one of them; a record not
    linked yet stands alone."""
    with store.reads.connect() as conn:
        return linked_record_ids(conn, patient_id)
