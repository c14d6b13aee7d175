"""What an export job reads: the stored JSON of current, undeleted versions,
page by page.

A type is one streamed query (a server-side cursor on PostgreSQL) read
`page_size` rows at a time, so memory stays flat however many millions of
rows it holds. It has no ORDER BY on purpose: keyset pages ordered by id
looked cheaper, but right after a bulk load (stale planner statistics)
PostgreSQL sorted the rest of the type for every page. The content is read as
text (JSONB's text form on PostgreSQL, the stored text on SQLite) and written
as it comes: it was validated when it was stored.

- system level: every resource of the type;
- Patient level: every resource in some Patient compartment (`patient_id`
  set), golden Patients of the master patient index included;
- Group level, and Patient level with `patient`: the compartments of the
  named Patients; a golden Patient brings the compartments of its linked
  site records, as `Patient/$everything` does.

Only versions written at or before the job's transactionTime are read (and
after `_since` when given): a resource changed later comes with the next
incremental export.
"""

from __future__ import annotations

from collections.abc import Iterator

from sqlalchemy import Engine, Text, cast, select

from vaxhub.fhir.search_params import parse_reference
from vaxhub.hub.bulk_export.jobs import ExportJob
from vaxhub.hub.bulk_export.request import GROUP, PATIENT
from vaxhub.hub.storage.mpi_tables import MpiRecordRow
from vaxhub.hub.storage.store import RESOURCE, FhirStore

RECORD = MpiRecordRow.__table__
MEMBER_CHUNK = 200


def group_members(group: dict) -> list[str]:
    """Patient ids of a Group's current members (`member.inactive` ones left out)."""
    ids = []
    for member in group.get("member") or []:
        if not isinstance(member, dict) or member.get("inactive") is True:
            continue
        entity = member.get("entity")
        ref = parse_reference(entity.get("reference", "")) if isinstance(entity, dict) and isinstance(entity.get("reference"), str) else None
        if ref and ref[0] == "Patient":
            ids.append(ref[1])
    return sorted(set(ids))


def compartments(engine: Engine, store: FhirStore, job: ExportJob) -> list[str] | None:
    """The patient compartments the job covers; None for every compartment."""
    named: list[str] | None = list(job.patients) if job.patients else None
    if job.level == GROUP:
        assert job.group_id is not None and job.group_version is not None
        members = group_members(store.vread("Group", job.group_id, job.group_version).content or {})
        named = [p for p in members if p in set(named)] if named is not None else members
    elif job.level != PATIENT:
        return None
    if named is None:
        return None
    reach = set(named)
    with engine.connect() as conn:
        for start in range(0, len(named), MEMBER_CHUNK):
            chunk = named[start : start + MEMBER_CHUNK]
            reach.update(conn.execute(select(RECORD.c.record_id).where(RECORD.c.person_id.in_(chunk))).scalars())
    return sorted(reach)


def pages(engine: Engine, job: ExportJob, rtype: str, page_size: int, compartment_ids: list[str] | None) -> Iterator[list[str]]:
    """The type's resources as JSON text, at most `page_size` at a time."""
    stmt = select(cast(RESOURCE.c.content, Text).label("json")).where(
        RESOURCE.c.res_type == rtype,
        RESOURCE.c.deleted.is_(False),
        RESOURCE.c.last_updated <= job.transaction_time,
    )
    if job.since is not None:
        stmt = stmt.where(RESOURCE.c.last_updated > job.since)
    if compartment_ids is not None:  # the compartment index, a bounded number of patients per query
        for start in range(0, len(compartment_ids), MEMBER_CHUNK):
            with engine.connect() as conn:
                rows = conn.execute(stmt.where(RESOURCE.c.patient_id.in_(compartment_ids[start : start + MEMBER_CHUNK]))).scalars().all()
            for first in range(0, len(rows), page_size):
                yield rows[first : first + page_size]
        return
    if job.level == PATIENT:
        stmt = stmt.where(RESOURCE.c.patient_id.is_not(None))
    # One streamed query per type (a server-side cursor on PostgreSQL), in
    # storage order: no ORDER BY, so no plan can sort the type once per page.
    with engine.connect().execution_options(stream_results=True, yield_per=page_size) as conn:
        for part in conn.execute(stmt).scalars().partitions(page_size):
            yield list(part)


def require_group(store: FhirStore, group_id: str) -> tuple[int, list[str]]:
    """The Group's current version and members, for a kick-off (404/410 as a read would answer)."""
    stored = store.read("Group", group_id)
    return stored.version, group_members(stored.content or {})
