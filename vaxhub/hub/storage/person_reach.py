"""Which patient compartments a person's data spans, as SQL the searches embed.

A person of the master patient index has a golden Patient (whose id is the
person id) and the site Patients linked to it in `mpi_record`. Two questions
need the answer inside the search SQL, so that it is always as current as the
links and costs no extra round trip:

- `golden_reach(id)`: the compartments `Immunization?patient=id` and
  `Patient/id/$everything` cover. For a golden Patient, itself and every
  linked record; for a site Patient, only itself (no record's person is a
  site Patient's id), so plain-patient behaviour is unchanged.
- `person_compartment(id)`: what a citizen bound to site Patient `id` may
  read: every record of the same person and the golden Patient; only `id`
  while the record is not linked yet.
"""

from __future__ import annotations

from sqlalchemy import BindParameter, Connection, Select, String, bindparam, func, literal, select, union

from vaxhub.hub.storage.mpi_tables import MpiRecordRow

RECORD = MpiRecordRow.__table__


def golden_reach(patient_id: str | BindParameter) -> Select:
    """Ids of the compartments a reference to `patient_id` (a value, or a
    parameter of a statement built once) reaches."""
    first = patient_id if isinstance(patient_id, BindParameter) else literal(patient_id, String)
    return union(
        select(first.label("id")),
        select(RECORD.c.record_id).where(RECORD.c.person_id == patient_id),
    )


def person_compartment(patient_id: str | BindParameter) -> Select:
    """Ids of the compartments of the person that `patient_id` (a value, or a
    parameter of a statement built once) belongs to."""
    first = patient_id if isinstance(patient_id, BindParameter) else literal(patient_id, String)
    persons = union(
        select(first.label("id")),
        select(RECORD.c.person_id).where(RECORD.c.record_id == patient_id, RECORD.c.person_id.is_not(None)),
    ).subquery()
    return union(
        select(persons.c.id),
        select(RECORD.c.record_id).where(RECORD.c.person_id.in_(select(persons.c.id))),
    )


# Built once: a citizen's every request and certificate download asks them.
_PERSON_COMPARTMENT = person_compartment(bindparam("record_id", type_=String))
_PERSON_OF = func.coalesce(select(RECORD.c.person_id).where(RECORD.c.record_id == bindparam("record_id", type_=String)).scalar_subquery(),
                           bindparam("record_id", type_=String))
_PERSON_RECORDS = select(RECORD.c.record_id).where(RECORD.c.person_id == _PERSON_OF)


def person_compartment_ids(conn: Connection, patient_id: str) -> frozenset[str]:
    return frozenset(conn.execute(_PERSON_COMPARTMENT, {"record_id": patient_id}).scalars())


def linked_record_ids(conn: Connection, patient_id: str) -> list[str]:
    """The site Patients of the person `patient_id` belongs to (or is, for a
    golden id), `patient_id` first when it is one of them: what a certificate
    counts the doses of. One statement: the person, then its records."""
    records = sorted(conn.execute(_PERSON_RECORDS, {"record_id": patient_id}).scalars())
    if patient_id in records:
        records.remove(patient_id)
        return [patient_id, *records]
    return records or [patient_id]
