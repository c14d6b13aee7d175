"""The operator dashboard's figures: aggregates only, computed in SQL.

Every figure comes from the tables the hub already keeps, through their
indexes: doses from the search index (`sp_date` for the Immunization date,
`sp_token` for its status, `sp_reference` for its patient and performer),
people from `resource` (a Patient's province is its first address's `state`,
read from the stored content and mapped to one of the 63 provinces the
programme ran with), verification results from `verification_job`, the
identity review backlog from `mpi_review`. A person is counted once: site
records the master patient index linked count as their person, and golden
Patients are not counted as people of their own.

Corrections (FHIR Task) and reactions (AdverseEvent) are counted by one
function each over whatever the store holds of those types: 0 until they are
recorded.

Filters: province (of the person), a date range (of the dose; of the check
for verification results; coverage counts doses up to the end date) and,
for an operator bound to a site, that site (doses it gave, people it manages,
Patients it wrote or manages for verification).
"""

from __future__ import annotations

import datetime as dt
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, Engine, and_, case, func, literal, literal_column, or_, select
from sqlalchemy.sql.elements import ColumnElement

from vaxhub.fhir.normalise.provinces import historical_province_by_code
from vaxhub.hub.healthbook.provinces import UNKNOWN_PROVINCE, province_code
from vaxhub.hub.storage.mpi_tables import MpiPersonRow, MpiRecordRow, MpiReviewRow
from vaxhub.hub.storage.outbox_tables import VerificationJobRow
from vaxhub.hub.storage.tables import DateIndexRow, IdentifierClaimRow, ReferenceIndexRow, ResourceRow, TokenIndexRow

RESOURCE = ResourceRow.__table__
SP_DATE = DateIndexRow.__table__
SP_TOKEN = TokenIndexRow.__table__
SP_REFERENCE = ReferenceIndexRow.__table__
CLAIM = IdentifierClaimRow.__table__
JOB = VerificationJobRow.__table__
MPI_RECORD = MpiRecordRow.__table__
MPI_PERSON = MpiPersonRow.__table__
MPI_REVIEW = MpiReviewRow.__table__

LOCAL_OFFSET = dt.timedelta(hours=7)  # Viet Nam, no daylight saving
OPEN_TASK_STATUSES = ("draft", "requested", "received", "accepted", "ready", "in-progress", "on-hold")
DOSE_LEVELS = (1, 2, 3)
POPULATION_REGISTRY = "population-registry"
SOCIAL_INSURANCE = "social-insurance"
CHECKED = ("verified", "mismatch", "not_found", "unverifiable")


@dataclass(frozen=True)
class DashboardFilter:
    province: str | None = None  # two-digit historical province code
    since: dt.date | None = None
    until: dt.date | None = None  # inclusive
    site_code: str | None = None  # an operator bound to a site sees only it


@dataclass
class Scope:
    """The filter resolved against the data: raw `state` spellings of the
    province and the Organization ids of the site."""

    filter: DashboardFilter
    states: list[str] | None = None
    site_orgs: list[str] | None = None
    provinces: dict[str, str] = field(default_factory=dict)  # state as stored -> province code


def _utc(day: dt.date) -> dt.datetime:
    return dt.datetime.combine(day, dt.time()) - LOCAL_OFFSET


def _state(table: Any) -> ColumnElement:
    """A Patient row's first address's state (province), as stored."""
    return table.c.content[("address", 0, "state")].as_string()


def _local_day(column: Any, dialect: str) -> ColumnElement:
    if dialect == "postgresql":
        return func.to_char(column + literal_column("interval '7 hours'"), "YYYY-MM-DD")
    return func.strftime("%Y-%m-%d", column, "+7 hours")


def province_name(code: str) -> str | None:
    if code == UNKNOWN_PROVINCE:
        return None
    return historical_province_by_code(code).name


def resolve(conn: Connection, wanted: DashboardFilter) -> Scope:
    pat = RESOURCE.alias("pat")
    state = _state(pat)
    stored = conn.execute(
        select(state).where(pat.c.res_type == "Patient", pat.c.deleted.is_(False)).group_by(state)
    ).scalars()
    scope = Scope(wanted, provinces={s: province_code(s) for s in stored if s is not None})
    if wanted.province:
        scope.states = [s for s, code in scope.provinces.items() if code == wanted.province]
    if wanted.site_code:
        scope.site_orgs = list(
            conn.execute(
                select(CLAIM.c.res_id).where(CLAIM.c.res_type == "Organization", CLAIM.c.value == wanted.site_code)
            ).scalars()
        )
    return scope


def _patient_conditions(pat: Any, scope: Scope, *, site: bool = True) -> list[ColumnElement]:
    conditions: list[ColumnElement] = [
        pat.c.res_type == "Patient",
        pat.c.deleted.is_(False),
        pat.c.res_id.not_in(select(MPI_PERSON.c.person_id)),  # golden Patients are not more people
    ]
    if scope.states is not None:
        conditions.append(_state(pat).in_(scope.states or [""]))
    if site and scope.site_orgs is not None:
        managing = pat.c.content[("managingOrganization", "reference")].as_string()
        conditions.append(managing.in_([f"Organization/{o}" for o in scope.site_orgs] or [""]))
    return conditions


def _completed(dose_table: Any) -> Any:
    status = SP_TOKEN.alias("status")
    return status, and_(
        status.c.res_type == "Immunization", status.c.res_id == dose_table.c.res_id,
        status.c.param == "status", status.c.value == "completed",
    )


def doses_per_day(conn: Connection, scope: Scope) -> list[dict[str, Any]]:
    """Completed doses per local day within the date range."""
    when = SP_DATE.alias("when")
    day = _local_day(when.c.start, conn.dialect.name).label("day")
    status, completed = _completed(when)
    stmt = select(day, func.count().label("doses")).select_from(when).join(status, completed).where(
        when.c.res_type == "Immunization", when.c.param == "date"
    )
    f = scope.filter
    if f.since:
        stmt = stmt.where(when.c.start >= _utc(f.since))
    if f.until:
        stmt = stmt.where(when.c.start < _utc(f.until + dt.timedelta(days=1)))
    if scope.states is not None:
        ref = SP_REFERENCE.alias("ref")
        pat = RESOURCE.alias("pat")
        stmt = stmt.join(ref, and_(ref.c.res_type == "Immunization", ref.c.res_id == when.c.res_id, ref.c.param == "patient")).join(
            pat, and_(pat.c.res_type == "Patient", pat.c.res_id == ref.c.target_id)
        ).where(*_patient_conditions(pat, scope, site=False))
    if scope.site_orgs is not None:
        performer = SP_REFERENCE.alias("performer")
        stmt = stmt.where(
            select(performer.c.res_id).where(
                performer.c.res_type == "Immunization", performer.c.res_id == when.c.res_id, performer.c.param == "performer",
                performer.c.target_type == "Organization", performer.c.target_id.in_(scope.site_orgs or [""]),
            ).exists()
        )
    rows = conn.execute(stmt.group_by(day).order_by(day)).all()
    return [{"day": str(r.day), "doses": r.doses} for r in rows]


def coverage(conn: Connection, scope: Scope) -> dict[str, Any]:
    """People with at least 1, 2 and 3 completed doses (up to the end date), by province."""
    ref = SP_REFERENCE.alias("ref")
    status, completed = _completed(ref)
    linked = MPI_RECORD.alias("linked")
    person = func.coalesce(linked.c.person_id, ref.c.target_id)
    doses = (
        select(person.label("person"), func.count().label("n"))
        .select_from(ref)
        .join(status, completed)
        .outerjoin(linked, linked.c.record_id == ref.c.target_id)
        .where(ref.c.res_type == "Immunization", ref.c.param == "patient")
    )
    if scope.filter.until:
        when = SP_DATE.alias("when")
        doses = doses.join(when, and_(when.c.res_type == "Immunization", when.c.res_id == ref.c.res_id, when.c.param == "date")).where(
            when.c.start < _utc(scope.filter.until + dt.timedelta(days=1))
        )
    doses = doses.group_by(person).subquery("doses")
    pat = RESOURCE.alias("pat")
    member = MPI_RECORD.alias("member")
    person_of_patient = func.coalesce(member.c.person_id, pat.c.res_id)
    people = (
        select(person_of_patient.label("person"), func.min(_state(pat)).label("state"))
        .select_from(pat)
        .outerjoin(member, member.c.record_id == pat.c.res_id)
        .where(*_patient_conditions(pat, scope))
        .group_by(person_of_patient)
        .subquery("people")
    )
    levels = [func.sum(case((doses.c.n >= level, 1), else_=0)).label(f"dose{level}") for level in DOSE_LEVELS]
    rows = conn.execute(
        select(people.c.state, func.count().label("people"), *levels)
        .select_from(people.outerjoin(doses, doses.c.person == people.c.person))
        .group_by(people.c.state)
    ).all()
    by_code: dict[str, Counter[str]] = defaultdict(Counter)
    for row in rows:
        counts = by_code[province_code(row.state)]
        counts["people"] += row.people
        for level in DOSE_LEVELS:
            counts[f"dose{level}"] += int(getattr(row, f"dose{level}") or 0)
    provinces = [
        {
            "code": code, "name": province_name(code), "people": c["people"],
            **{f"dose{level}": c[f"dose{level}"] for level in DOSE_LEVELS},
            **{f"dose{level}_share": (c[f"dose{level}"] / c["people"]) if c["people"] else None for level in DOSE_LEVELS},
        }
        for code, c in by_code.items()
    ]
    provinces.sort(key=lambda p: (p["code"] == UNKNOWN_PROVINCE, -(p["dose1_share"] or 0), p["code"]))
    total = Counter()
    for p in provinces:
        for key in ("people", *(f"dose{level}" for level in DOSE_LEVELS)):
            total[key] += p[key]
    by_dose = [
        {"dose": level, "people": total[f"dose{level}"], "share": total[f"dose{level}"] / total["people"] if total["people"] else None}
        for level in DOSE_LEVELS
    ]
    return {"people": total["people"], "by_province": provinces, "by_dose": by_dose}


def verification(conn: Connection, scope: Scope) -> dict[str, Any]:
    """Identity checks by registry and by managing site, with mismatch rates."""
    stmt = select(
        JOB.c.site_ref, JOB.c.site_name, JOB.c.state, JOB.c.result_status, JOB.c.insurance_status, func.count().label("n")
    ).group_by(JOB.c.site_ref, JOB.c.site_name, JOB.c.state, JOB.c.result_status, JOB.c.insurance_status)
    f = scope.filter
    if f.since or f.until:
        in_range = [JOB.c.checked_at.is_not(None)]
        if f.since:
            in_range.append(JOB.c.checked_at >= _utc(f.since))
        if f.until:
            in_range.append(JOB.c.checked_at < _utc(f.until + dt.timedelta(days=1)))
        stmt = stmt.where(or_(JOB.c.state != "done", and_(*in_range)))
    if scope.states is not None:
        pat = RESOURCE.alias("pat")
        stmt = stmt.join(pat, and_(pat.c.res_type == "Patient", pat.c.res_id == JOB.c.patient_id)).where(
            *_patient_conditions(pat, scope, site=False)
        )
    if scope.filter.site_code is not None:
        refs = [f"Organization/{o}" for o in scope.site_orgs or []]
        stmt = stmt.where(or_(JOB.c.site_code == scope.filter.site_code, JOB.c.site_ref.in_(refs or [""])))
    registries: dict[str, Counter[str]] = {POPULATION_REGISTRY: Counter(), SOCIAL_INSURANCE: Counter()}
    sites: dict[str, dict[str, Any]] = {}
    pending = dead = 0
    for row in conn.execute(stmt):
        if row.state == "queued":
            pending += row.n
            continue
        if row.state == "dead":
            dead += row.n
            continue
        if row.result_status is None:
            continue
        registries[POPULATION_REGISTRY][row.result_status] += row.n
        if row.insurance_status:
            registries[SOCIAL_INSURANCE][row.insurance_status] += row.n
        key = row.site_ref or ""
        site = sites.setdefault(key, {"site": row.site_ref, "name": row.site_name or row.site_ref, "checked": 0,
                                      **dict.fromkeys(CHECKED, 0), "insurance_checked": 0, "insurance_mismatch": 0})
        site["checked"] += row.n
        site[row.result_status] = site.get(row.result_status, 0) + row.n
        if row.insurance_status in ("consistent", "mismatch"):
            site["insurance_checked"] += row.n
            site["insurance_mismatch"] += row.n if row.insurance_status == "mismatch" else 0
    _name_unnamed_sites(conn, sites)
    for site in sites.values():
        site["mismatch_rate"] = site["mismatch"] / site["checked"] if site["checked"] else None
        site["insurance_mismatch_rate"] = site["insurance_mismatch"] / site["insurance_checked"] if site["insurance_checked"] else None
    population = registries[POPULATION_REGISTRY]
    insurance = registries[SOCIAL_INSURANCE]
    checked = sum(population.values())
    insurance_checked = insurance["consistent"] + insurance["mismatch"]
    return {
        "checked": checked,
        "mismatch_rate": population["mismatch"] / checked if checked else None,
        "insurance_mismatch_rate": insurance["mismatch"] / insurance_checked if insurance_checked else None,
        "by_registry": {name: dict(sorted(counts.items())) for name, counts in registries.items()},
        "by_site": sorted(sites.values(), key=lambda s: (-(s["mismatch_rate"] or 0), -s["checked"], s["name"] or "")),
        "pending": pending,
        "dead": dead,
    }


def _name_unnamed_sites(conn: Connection, sites: dict[str, dict[str, Any]]) -> None:
    """Sites the job rows name only by reference get their Organization's name (directory data)."""
    unnamed = {ref.split("/", 1)[1]: ref for ref, site in sites.items() if ref.startswith("Organization/") and site["name"] == ref}
    if not unnamed:
        return
    org = RESOURCE.alias("org")
    rows = conn.execute(
        select(org.c.res_id, org.c.content["name"].as_string()).where(org.c.res_type == "Organization", org.c.res_id.in_(list(unnamed)))
    ).all()
    for res_id, name in rows:
        if name:
            sites[unnamed[res_id]]["name"] = name


def _for_patient_in_scope(conn: Connection, table: Any, reference: ColumnElement, scope: Scope) -> list[ColumnElement]:
    """Conditions limiting rows that name a Patient (by reference text) to the province/site."""
    if scope.states is None and scope.site_orgs is None:
        return []
    pat = RESOURCE.alias("subject")
    return [
        select(pat.c.res_id)
        .where(*_patient_conditions(pat, scope), reference == literal("Patient/") + pat.c.res_id)
        .exists()
    ]


def open_corrections(conn: Connection, scope: Scope) -> int:
    """Correction requests (FHIR Task, code `change`) still waiting: 0 until any are filed."""
    task = RESOURCE.alias("task")
    stmt = select(func.count()).select_from(task).where(
        task.c.res_type == "Task", task.c.deleted.is_(False),
        task.c.content["status"].as_string().in_(OPEN_TASK_STATUSES),
        *_for_patient_in_scope(conn, task, task.c.content[("for", "reference")].as_string(), scope),
    )
    return conn.execute(stmt).scalar_one()


def reactions_reported(conn: Connection, scope: Scope) -> int:
    """Reactions after vaccination (FHIR AdverseEvent) in the date range: 0 until any are recorded."""
    event = RESOURCE.alias("event")
    stmt = select(func.count()).select_from(event).where(
        event.c.res_type == "AdverseEvent", event.c.deleted.is_(False),
        *_for_patient_in_scope(conn, event, event.c.content[("subject", "reference")].as_string(), scope),
    )
    f = scope.filter
    when = event.c.content["date"].as_string()
    if f.since:
        stmt = stmt.where(when >= f.since.isoformat())
    if f.until:
        stmt = stmt.where(when < (f.until + dt.timedelta(days=1)).isoformat())
    return conn.execute(stmt).scalar_one()


def open_reviews(conn: Connection, scope: Scope) -> int:
    """Pairs of records the master patient index left for an operator to decide."""
    stmt = select(func.count()).select_from(MPI_REVIEW).where(MPI_REVIEW.c.status == "open")
    if scope.states is not None or scope.site_orgs is not None:
        pat = RESOURCE.alias("pat")
        stmt = stmt.where(select(pat.c.res_id).where(*_patient_conditions(pat, scope), pat.c.res_id == MPI_REVIEW.c.record_id).exists())
    return conn.execute(stmt).scalar_one()


def province_choices(scope: Scope) -> list[dict[str, str]]:
    """The provinces people in the data live in, for the filter."""
    codes = sorted({c for c in scope.provinces.values() if c != UNKNOWN_PROVINCE}, key=lambda c: province_name(c) or c)
    return [{"code": c, "name": province_name(c) or c} for c in codes]


def dashboard_figures(engine: Engine, wanted: DashboardFilter) -> dict[str, Any]:
    """Every figure of the dashboard, for one filter, read in one transaction."""
    with engine.connect() as conn:
        scope = resolve(conn, wanted)
        per_day = doses_per_day(conn, scope)
        figures = {
            "filter": {
                "province": wanted.province, "province_name": province_name(wanted.province) if wanted.province else None,
                "since": wanted.since.isoformat() if wanted.since else None,
                "until": wanted.until.isoformat() if wanted.until else None, "site": wanted.site_code,
            },
            "doses_per_day": per_day,
            "doses": sum(d["doses"] for d in per_day),
            "coverage": coverage(conn, scope),
            "verification": verification(conn, scope),
            "backlog": {
                "corrections": open_corrections(conn, scope),
                "reviews": open_reviews(conn, scope),
                "reactions": reactions_reported(conn, scope),
            },
            "provinces": province_choices(scope),
        }
    figures["backlog"]["verification_pending"] = figures["verification"]["pending"]
    figures["backlog"]["verification_dead"] = figures["verification"]["dead"]
    return figures
