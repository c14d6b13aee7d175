"""Dose reminders: who is due or overdue for the next dose of their primary series.

From each person's completed Immunizations, per vaccine: the doses given
against the vaccine's `primary_doses`, and the last dose's local date plus
the table's interval (`Vaccine.days_to_next_dose`). A dose is *due* from that
date and *overdue* once `OVERDUE_AFTER_DAYS` more have passed; a complete
primary series (two Comirnaty doses, one Janssen dose) needs no reminder.

The counting is one aggregate over the search index (`sp_reference` patient,
`sp_token` status and vaccine-code, `sp_date` date), grouped in SQL by person
and vaccine; only the groups still short of a full series are looked at
further (their last dose's site, the person's phone and province).

`send_reminders` texts each due dose once: the dose is claimed by inserting
its (patient, vaccine, dose number) row in `reminder_sent`, whose primary key
lets one sender win however many run at once; the SMS goes out inside the
claiming transaction, so a failed send leaves the dose unclaimed for the next run.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import asdict, dataclass
from typing import Any, Callable, Iterable, Iterator

from sqlalchemy import Connection, Engine, and_, case, distinct, func, not_, or_, select
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from vaxhub.adapters.sms import SmsSender
from vaxhub.fhir.search_params import normalise_phone
from vaxhub.fhir.vaccines import CVX_SYSTEM, VACCINE_SYSTEM, Vaccine, all_vaccines
from vaxhub.hub.healthbook.provinces import province_code, wanted_province
from vaxhub.hub.security.policy import owner_of
from vaxhub.hub.storage.engine import write_transaction
from vaxhub.hub.storage.reminder_tables import ReminderSentRow
from vaxhub.hub.storage.tables import DateIndexRow, ReferenceIndexRow, ResourceRow, TokenIndexRow

RESOURCE = ResourceRow.__table__
SENT = ReminderSentRow.__table__
LOCAL_OFFSET = dt.timedelta(hours=7)  # Viet Nam, no daylight saving
OVERDUE_AFTER_DAYS = 7
CHUNK = 500  # ids per IN list
CSV_COLUMNS = (
    "patient_id", "name", "phone", "province", "site", "vaccine", "vaccine_name",
    "doses_given", "next_dose", "last_dose_date", "due_date", "status", "days_overdue",
)


@dataclass(frozen=True)
class DueDose:
    """One person's next dose of one vaccine, due or overdue on `as_of`."""

    patient_id: str
    name: str
    phone: str | None
    province: str
    site: str | None  # the site that gave the last dose (its `meta.source` code)
    vaccine: str
    vaccine_name: str
    doses_given: int
    next_dose: int
    last_dose_date: dt.date
    due_date: dt.date
    status: str  # due | overdue
    days_overdue: int

    def as_row(self) -> dict[str, Any]:
        row = asdict(self)
        row["last_dose_date"] = self.last_dose_date.isoformat()
        row["due_date"] = self.due_date.isoformat()
        return row


def _vaccine_key(code: Any) -> Any:
    """SQL naming our vaccine code for a vaccine-code index row; NULL for other codings.

    A CVX code shared by two products (210: Vaxzevria and Covishield) names
    the first in table order, like `vaccines.by_cvx`."""
    whens = []
    seen_cvx: set[str] = set()
    for v in all_vaccines():
        whens.append((and_(code.c.system == VACCINE_SYSTEM, code.c.value == v.code), v.code))
        if v.cvx and v.cvx not in seen_cvx:
            seen_cvx.add(v.cvx)
            whens.append((and_(code.c.system == CVX_SYSTEM, code.c.value == v.cvx), v.code))
    return case(*whens, else_=None)


def _completed_doses(patients: list[str] | None = None) -> tuple[Any, Any, Any, Any, Any]:
    """The join of completed Immunizations with their patient, vaccine and date index rows."""
    ref = ReferenceIndexRow.__table__.alias("ref")
    status = TokenIndexRow.__table__.alias("status")
    code = TokenIndexRow.__table__.alias("code")
    ours = TokenIndexRow.__table__.alias("ours")
    when = DateIndexRow.__table__.alias("when")
    # When a dose carries our own coding, that one decides (a CVX code may be shared).
    has_ours = select(ours.c.res_id).where(
        ours.c.res_type == "Immunization", ours.c.res_id == ref.c.res_id, ours.c.param == "vaccine-code", ours.c.system == VACCINE_SYSTEM
    ).exists()
    joined = (
        ref.join(status, and_(status.c.res_type == "Immunization", status.c.res_id == ref.c.res_id, status.c.param == "status", status.c.value == "completed"))
        .join(code, and_(code.c.res_type == "Immunization", code.c.res_id == ref.c.res_id, code.c.param == "vaccine-code",
                         or_(code.c.system == VACCINE_SYSTEM, and_(code.c.system == CVX_SYSTEM, not_(has_ours)))))
        .join(when, and_(when.c.res_type == "Immunization", when.c.res_id == ref.c.res_id, when.c.param == "date"))
    )
    conditions = [ref.c.res_type == "Immunization", ref.c.param == "patient", ref.c.target_type == "Patient"]
    if patients is not None:
        conditions.append(ref.c.target_id.in_(patients))
    return ref, when, joined, and_(*conditions), _vaccine_key(code)


def _local_date(utc_start: dt.datetime) -> dt.date:
    return (utc_start + LOCAL_OFFSET).date()


def due_doses(
    conn: Connection,
    as_of: dt.date,
    *,
    site: str | None = None,
    province: str | None = None,
) -> list[DueDose]:
    """People due or overdue for their next dose on `as_of`, most overdue first.

    `site` is a site code (the site of the last dose); `province` a two-digit
    historical province code or name (of the person's address).
    """
    wanted = wanted_province(province)
    ref, when, joined, where, vaccine = _completed_doses()
    longest = max(v.primary_doses for v in all_vaccines())
    doses = func.count(distinct(ref.c.res_id))
    groups = conn.execute(
        select(ref.c.target_id.label("patient"), vaccine.label("vaccine"), doses.label("doses"), func.max(when.c.start).label("last"))
        .select_from(joined)
        .where(where, vaccine.is_not(None), when.c.start < _utc_midnight(as_of + dt.timedelta(days=1)))
        .group_by(ref.c.target_id, vaccine)
        .having(doses < longest)
    ).all()
    table = {v.code: v for v in all_vaccines()}
    pending: dict[tuple[str, str], tuple[Vaccine, int, dt.datetime, dt.date]] = {}
    for g in groups:
        v = table[g.vaccine]
        if g.doses >= v.primary_doses:
            continue
        due = _local_date(g.last) + dt.timedelta(days=v.days_to_next_dose(g.doses))
        if due <= as_of:
            pending[(g.patient, g.vaccine)] = (v, g.doses, g.last, due)
    if not pending:
        return []
    patients = sorted({p for p, _ in pending})
    last_sites = _last_dose_sites(conn, patients, pending)
    people = _people(conn, patients)
    found: list[DueDose] = []
    for (patient_id, code), (v, given, last, due) in pending.items():
        name, phone, state = people.get(patient_id, ("", None, None))
        dose_site = last_sites.get((patient_id, code))
        prov = province_code(state)
        if (site is not None and dose_site != site) or (wanted is not None and prov != wanted):
            continue
        late = (as_of - due).days
        found.append(DueDose(
            patient_id, name, phone, prov, dose_site, code, v.display, given, given + 1, _local_date(last), due,
            "overdue" if late > OVERDUE_AFTER_DAYS else "due", late,
        ))
    found.sort(key=lambda d: (-d.days_overdue, d.site or "", d.patient_id, d.vaccine))
    return found


def _utc_midnight(day: dt.date) -> dt.datetime:
    return dt.datetime.combine(day, dt.time()) - LOCAL_OFFSET


def _chunks(items: list[str]) -> Iterator[list[str]]:
    for i in range(0, len(items), CHUNK):
        yield items[i : i + CHUNK]


def _last_dose_sites(conn: Connection, patients: list[str], pending: dict) -> dict[tuple[str, str], str | None]:
    """The site code of each pending (person, vaccine)'s last dose."""
    sites: dict[tuple[str, str], tuple[dt.datetime, str | None]] = {}
    source = RESOURCE.c.content[("meta", "source")].as_string()
    for chunk in _chunks(patients):
        ref, when, joined, where, vaccine = _completed_doses(chunk)
        rows = conn.execute(
            select(ref.c.target_id.label("patient"), vaccine.label("vaccine"), when.c.start, source.label("source"))
            .select_from(joined.join(RESOURCE, and_(RESOURCE.c.res_type == "Immunization", RESOURCE.c.res_id == ref.c.res_id)))
            .where(where)
        ).all()
        for r in rows:
            key = (r.patient, r.vaccine)
            if key in pending and (key not in sites or r.start >= sites[key][0]):
                sites[key] = (r.start, owner_of({"meta": {"source": r.source}} if r.source else None))
    return {key: site for key, (_start, site) in sites.items()}


def _people(conn: Connection, patients: list[str]) -> dict[str, tuple[str, str | None, str | None]]:
    """Name, SMS phone (E.164) and address state of each Patient."""
    out: dict[str, tuple[str, str | None, str | None]] = {}
    for chunk in _chunks(patients):
        rows = conn.execute(
            select(RESOURCE.c.res_id, RESOURCE.c.content).where(
                RESOURCE.c.res_type == "Patient", RESOURCE.c.res_id.in_(chunk), RESOURCE.c.deleted.is_(False)
            )
        ).all()
        for r in rows:
            out[r.res_id] = _contact(r.content or {})
    return out


def _contact(patient: dict) -> tuple[str, str | None, str | None]:
    names = [n for n in patient.get("name") or [] if isinstance(n, dict)]
    name = ""
    if names:
        n = names[0]
        name = n.get("text") or " ".join([n.get("family") or "", *(n.get("given") or [])]).strip()
    phone = next(
        (normalise_phone(t["value"]) for t in patient.get("telecom") or []
         if isinstance(t, dict) and t.get("system") in ("phone", "sms") and t.get("value")),
        None,
    )
    addresses = [a for a in patient.get("address") or [] if isinstance(a, dict)]
    return name, phone, addresses[0].get("state") if addresses else None


# ------------------------------------------------------------------- sending


@dataclass(frozen=True)
class SendReport:
    due: int
    sent: int
    already_sent: int
    no_phone: int


def reminder_text(dose: DueDose) -> str:
    return (
        f"Bộ Y tế: {dose.name or 'Quý vị'} đã đến lịch tiêm mũi {dose.next_dose} vắc xin {dose.vaccine_name} "
        f"(từ ngày {dose.due_date:%d/%m/%Y}). Vui lòng liên hệ điểm tiêm gần nhất."
    )


def send_reminders(
    engine: Engine,
    sms: SmsSender,
    as_of: dt.date,
    *,
    site: str | None = None,
    province: str | None = None,
    clock: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.timezone.utc).replace(tzinfo=None),
    progress: Callable[[DueDose, str], None] | None = None,
    on_start: Callable[[int], None] | None = None,
) -> SendReport:
    """Text every due dose not reminded of before; `on_start(total)` once the
    list is known, `progress(dose, outcome)` after each dose."""
    with engine.connect() as conn:
        doses = due_doses(conn, as_of, site=site, province=province)
    if on_start is not None:
        on_start(len(doses))
    sent = already = no_phone = 0
    for dose in doses:
        outcome = _send_once(engine, sms, dose, clock()) if dose.phone else "no-phone"
        sent += outcome == "sent"
        already += outcome == "already-sent"
        no_phone += outcome == "no-phone"
        if progress is not None:
            progress(dose, outcome)
    return SendReport(len(doses), sent, already, no_phone)


def _send_once(engine: Engine, sms: SmsSender, dose: DueDose, now: dt.datetime) -> str:
    insert = postgresql_insert if engine.dialect.name == "postgresql" else sqlite_insert
    claim = insert(SENT).values(
        patient_id=dose.patient_id, vaccine=dose.vaccine, dose_number=dose.next_dose,
        due_date=dose.due_date, site_code=dose.site, phone=dose.phone, sent_at=now,
    ).on_conflict_do_nothing(index_elements=["patient_id", "vaccine", "dose_number"]).returning(SENT.c.patient_id)
    with write_transaction(engine) as conn:
        if conn.execute(claim).first() is None:
            return "already-sent"  # another sender, now or earlier, has this dose
        assert dose.phone is not None
        sms.send(dose.phone, reminder_text(dose))  # raising rolls the claim back: retried next run
    return "sent"


def to_csv_rows(doses: Iterable[DueDose]) -> Iterator[list[str]]:
    yield list(CSV_COLUMNS)
    for d in doses:
        row = d.as_row()
        yield [str(row[c]) if row[c] is not None else "" for c in CSV_COLUMNS]
