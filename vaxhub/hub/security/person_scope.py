"""A citizen's token reaches their person, not only the record it was issued for.

The token names one site Patient (the record the citizen logged in with);
the health book must show the doses of every record the master patient
index linked to the same person, and nothing else. The set is looked up once
per request (one indexed query), so an unlink takes effect on the next
request, token or no token.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields

from sqlalchemy import Engine

from vaxhub.hub.security.principal import PATIENT, Principal
from vaxhub.hub.storage.engine import reader
from vaxhub.hub.storage.person_reach import person_compartment_ids


@dataclass(frozen=True)
class PersonScopedPrincipal(Principal):
    """A citizen principal with the patient ids of their person's compartment."""

    person_records: frozenset[str] = field(default=frozenset())


def scoped_to_person(who: Principal, engine: Engine) -> Principal:
    if who.kind != PATIENT or not who.patient_id:
        return who
    with reader(engine).connect() as conn:
        records = person_compartment_ids(conn, who.patient_id)
    carried = {f.name: getattr(who, f.name) for f in fields(who)}
    return PersonScopedPrincipal(**carried, person_records=records)
