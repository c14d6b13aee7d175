"""Reactions after vaccination (FHIR AdverseEvent) counted for the dashboard.

Counted in SQL from the search index: `sp_token` for the seriousness,
`sp_date` for when the reaction began, `sp_reference` for the person; the
person's province is their Patient's first address's state, grouped in SQL
and mapped to a province code afterwards (a few hundred distinct spellings,
not one row per reaction).
"""

from __future__ import annotations

import datetime as dt
from collections import Counter

from sqlalchemy import Connection, and_, func, select

from vaxhub.hub.healthbook.citizen_reports import SERIOUSNESS_CODES, SERIOUSNESS_SYSTEM
from vaxhub.hub.healthbook.provinces import patient_state, province_code, wanted_province
from vaxhub.hub.storage.tables import DateIndexRow, ReferenceIndexRow, ResourceRow, TokenIndexRow

LOCAL_OFFSET = dt.timedelta(hours=7)  # Viet Nam, no daylight saving


def _utc(day: dt.date) -> dt.datetime:
    return dt.datetime.combine(day, dt.time()) - LOCAL_OFFSET


def reaction_counts(
    conn: Connection,
    province: str | None = None,
    since: dt.date | None = None,
    until: dt.date | None = None,
) -> dict[str, int]:
    """Reported reactions by seriousness (`serious`, `non-serious`) and their `total`.

    `province` is a two-digit historical province code (or a name) of the
    person; `since` and `until` are local days, both inclusive, of the reaction.
    """
    code = wanted_province(province)
    seriousness = TokenIndexRow.__table__.alias("seriousness")
    subject = ReferenceIndexRow.__table__.alias("subject")
    stmt = select(seriousness.c.value, func.count().label("n")).where(
        seriousness.c.res_type == "AdverseEvent",
        seriousness.c.param == "seriousness",
        seriousness.c.system == SERIOUSNESS_SYSTEM,
    )
    if since is not None or until is not None:
        when = DateIndexRow.__table__.alias("when")
        stmt = stmt.join(when, and_(when.c.res_type == "AdverseEvent", when.c.res_id == seriousness.c.res_id, when.c.param == "date"))
        if since is not None:
            stmt = stmt.where(when.c.start >= _utc(since))
        if until is not None:
            stmt = stmt.where(when.c.start < _utc(until + dt.timedelta(days=1)))
    if code is None:
        rows = conn.execute(stmt.group_by(seriousness.c.value)).all()
        counts = Counter({r.value: r.n for r in rows})
    else:
        patient = ResourceRow.__table__.alias("patient")
        state = patient_state(patient).label("state")
        stmt = (
            stmt.add_columns(state)
            .join(subject, and_(subject.c.res_type == "AdverseEvent", subject.c.res_id == seriousness.c.res_id,
                                subject.c.param == "subject", subject.c.target_type == "Patient"))
            .join(patient, and_(patient.c.res_type == "Patient", patient.c.res_id == subject.c.target_id))
            .group_by(seriousness.c.value, state)
        )
        counts = Counter()
        for row in conn.execute(stmt):
            if province_code(row.state) == code:
                counts[row.value] += row.n
    result = {name: counts.get(name, 0) for name in SERIOUSNESS_CODES}
    result["total"] = sum(result.values())
    return result
