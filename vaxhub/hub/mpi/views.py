"""What operators read about the index: the review queue, a person, its history, counts."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, and_, func, or_, select

from vaxhub.hub.mpi.index import EVENT, PERSON, RECORD, REVIEW
from vaxhub.hub.storage.store import RESOURCE


def _iso(moment) -> str | None:
    return moment.isoformat() + "Z" if moment else None


def record_summary(content: dict[str, Any] | None) -> dict[str, Any]:
    """The facts an operator compares, from a site Patient."""
    content = content or {}
    names = [n for n in content.get("name") or [] if isinstance(n, dict)]
    name = names[0] if names else {}
    text = name.get("text") or " ".join([name.get("family") or "", *(name.get("given") or [])]).strip()
    return {
        "name": text or None,
        "birthDate": content.get("birthDate"),
        "gender": content.get("gender"),
        "identifiers": [f"{i.get('system')}|{i.get('value')}" for i in content.get("identifier") or [] if isinstance(i, dict)],
        "phones": [t.get("value") for t in content.get("telecom") or [] if isinstance(t, dict) and t.get("system") == "phone"],
        "site": (content.get("managingOrganization") or {}).get("reference") or (content.get("meta") or {}).get("source"),
    }


def _contents(conn: Connection, ids: set[str]) -> dict[str, dict]:
    if not ids:
        return {}
    rows = conn.execute(select(RESOURCE.c.res_id, RESOURCE.c.content).where(RESOURCE.c.res_type == "Patient", RESOURCE.c.res_id.in_(sorted(ids))))
    return {r.res_id: r.content for r in rows}


def reviews(conn: Connection, *, status: str = "open", limit: int = 50, offset: int = 0) -> dict[str, Any]:
    rows = conn.execute(select(REVIEW).where(REVIEW.c.status == status).order_by(REVIEW.c.created_at, REVIEW.c.id).offset(offset).limit(limit)).all()
    total = conn.execute(select(func.count()).select_from(REVIEW).where(REVIEW.c.status == status)).scalar_one()
    contents = _contents(conn, {r.record_id for r in rows} | {r.candidate_id for r in rows})
    items = [{
        "id": r.id, "status": r.status, "score": r.score, "weight": r.weight, "grade": r.grade, "reasons": r.reasons or [],
        "record": {"id": r.record_id, **record_summary(contents.get(r.record_id))},
        "candidate": {"id": r.candidate_id, "person": r.person_id, **record_summary(contents.get(r.candidate_id))},
        "created_at": _iso(r.created_at), "decided_at": _iso(r.decided_at), "decided_by": r.decided_by, "reason": r.reason,
    } for r in rows]
    return {"total": total, "items": items}


def review_records(review: dict[str, Any]) -> list[str]:
    return [review["record"]["id"], review["candidate"]["id"]]


def person(conn: Connection, person_id: str) -> dict[str, Any] | None:
    row = conn.execute(select(PERSON).where(PERSON.c.person_id == person_id)).first()
    if row is None:
        return None
    records = conn.execute(select(RECORD).where(RECORD.c.person_id == person_id).order_by(RECORD.c.record_id)).all()
    contents = _contents(conn, {r.record_id for r in records})
    return {
        "person": person_id, "golden": f"Patient/{person_id}", "state": row.state, "merged_into": row.merged_into,
        "records": [{
            "id": r.record_id, "method": r.method, "grade": r.grade, "score": r.score, "locked": r.locked, "state": r.state,
            "verified_cccd": r.verified_cccd, "reasons": r.reasons or [], "linked_at": _iso(r.linked_at), **record_summary(contents.get(r.record_id)),
        } for r in records],
    }


def record(conn: Connection, record_id: str) -> dict[str, Any] | None:
    r = conn.execute(select(RECORD).where(RECORD.c.record_id == record_id)).first()
    if r is None:
        return None
    return {"record": record_id, "person": r.person_id, "state": r.state, "method": r.method, "grade": r.grade, "score": r.score,
            "reasons": r.reasons or [], "locked": r.locked, "verified_cccd": r.verified_cccd, "registry_cccd": r.registry_cccd,
            "attempts": r.attempts, "last_error": r.last_error, "linked_at": _iso(r.linked_at)}


def history(conn: Connection, *, person_id: str | None = None, record_id: str | None = None, limit: int = 200) -> list[dict[str, Any]]:
    """History events of a person (either side of a merge) or of a record, oldest first."""
    where = []
    if person_id:
        where.append(or_(EVENT.c.person_id == person_id, EVENT.c.other_person_id == person_id))
    if record_id:
        where.append(EVENT.c.record_id == record_id)
    rows = conn.execute(select(EVENT).where(and_(*where)).order_by(EVENT.c.id).limit(limit)).all()
    return [{
        "id": e.id, "at": _iso(e.at), "actor": e.actor, "action": e.action, "record": e.record_id, "person": e.person_id,
        "other_person": e.other_person_id, "review": e.review_id, "reason": e.reason, "before": e.before, "after": e.after,
    } for e in rows]


def stats(conn: Connection) -> dict[str, Any]:
    records = dict(conn.execute(select(RECORD.c.state, func.count()).group_by(RECORD.c.state)).all())
    methods = dict(conn.execute(select(RECORD.c.method, func.count()).where(RECORD.c.method.is_not(None)).group_by(RECORD.c.method)).all())
    grades = dict(conn.execute(select(RECORD.c.grade, func.count()).where(RECORD.c.grade.is_not(None)).group_by(RECORD.c.grade)).all())
    persons = dict(conn.execute(select(PERSON.c.state, func.count()).group_by(PERSON.c.state)).all())
    reviews_by = dict(conn.execute(select(REVIEW.c.status, func.count()).group_by(REVIEW.c.status)).all())
    stale = conn.execute(select(func.count()).select_from(PERSON).where(PERSON.c.golden_stale.is_(True))).scalar_one()
    return {
        "records": {"linked": records.get("linked", 0), "queued": records.get("queued", 0), "failed": records.get("failed", 0)},
        "linked_by": methods, "grades": grades,
        "persons": {"active": persons.get("active", 0), "merged": persons.get("merged", 0), "retired": persons.get("retired", 0)},
        "golden_stale": stale,
        "reviews": {"open": reviews_by.get("open", 0), "accepted": reviews_by.get("accepted", 0),
                    "rejected": reviews_by.get("rejected", 0), "superseded": reviews_by.get("superseded", 0)},
    }
