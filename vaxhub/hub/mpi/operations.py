"""An operator's changes to the index: link, unlink, merge, un-merge, review decisions.

Each runs on a `PersonIndex` (one unit of work) and leaves one history event
with the operator, their reason and the state before and after, enough to
undo it with nothing lost:

- link: the record joins the person, pinned there (`locked`), and any
  "different people" constraints between them are dropped (kept in the
  event);
- unlink: the record leaves for a person of its own (the very person it last
  left, when that one is empty, so unlink undoes a link exactly) and is
  marked as someone else than every record it leaves behind, so automatic
  linking does not put it back;
- merge: every record of one person moves to the other; the merged-away
  person stays, inactive, with a `replaced-by` link, and the event lists
  each moved record's link as it was;
- un-merge: the records that merge moved, and are still in the survivor,
  go back with their old links; the person is active again;
- review accept is a link to the candidate's person, reject marks the pair as
  different people (the pair is never queued again).

Records an operator placed are not moved by automatic re-linking.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select, update

from vaxhub.errors import Conflict, InvalidResource, Issue, NotFound
from vaxhub.hub.mpi.index import EVENT, REVIEW, PersonIndex

OPERATOR = "operator"


def _require_reason(reason: str | None) -> str:
    if not reason or not reason.strip():
        raise InvalidResource("A reason is required for every change to the master patient index", [Issue("A reason is required", "reason", "required")])
    return reason.strip()[:2000]


def _placed(ix: PersonIndex, reason: str) -> dict[str, Any]:
    return {"method": OPERATOR, "grade": "certain", "score": None, "locked": True, "reasons": [f"{ix.actor}: {reason}"], "state": "linked"}


def link(ix: PersonIndex, record_id: str, person_id: str, reason: str | None, *, review_id: int | None = None) -> dict[str, Any]:
    reason = _require_reason(reason)
    ix.lock()
    state = ix.linked_record(record_id)
    ix.active_person(person_id)
    if state.person_id == person_id and state.locked:
        return {"changed": False, "record": record_id, "person": person_id}
    joined = [m for m in ix.members(person_id) if m != record_id]
    dropped = ix.allow_together([record_id], joined)
    event = ix.log("link", record_id=record_id, person_id=person_id, other_person_id=state.person_id, reason=reason, review_id=review_id,
                   before={**state.link_document(), "apart": dropped}, after={"record": record_id, "person": person_id, "method": OPERATOR, "locked": True})
    ix.place(record_id, person_id, **_placed(ix, reason))
    ix.supersede_reviews(record_id)
    ix.refresh_goldens()
    return {"changed": True, "event": event, "record": record_id, "person": person_id, "previous_person": state.person_id}


def unlink(ix: PersonIndex, record_id: str, reason: str | None) -> dict[str, Any]:
    reason = _require_reason(reason)
    ix.lock()
    state = ix.linked_record(record_id)
    left_behind = [m for m in ix.members(state.person_id) if m != record_id]
    if not left_behind:
        raise Conflict(f"Patient/{record_id} is the only record of person {state.person_id}; there is nothing to unlink it from")
    target = ix.revivable_person(record_id)
    if target is not None:
        ix.set_person_state(target, "active")
    else:
        target = ix.new_person()
    event = ix.log("unlink", record_id=record_id, person_id=state.person_id, other_person_id=target, reason=reason,
                   before=state.link_document(), after={"record": record_id, "person": target, "apart_from": left_behind})
    ix.keep_apart(record_id, left_behind, event)
    ix.place(record_id, target, **_placed(ix, reason))
    ix.supersede_reviews(record_id, either_side=True)
    ix.refresh_goldens()
    return {"changed": True, "event": event, "record": record_id, "person": target, "previous_person": state.person_id}


def merge(ix: PersonIndex, from_person: str, into_person: str, reason: str | None) -> dict[str, Any]:
    reason = _require_reason(reason)
    if from_person == into_person:
        raise InvalidResource("A person cannot be merged into itself", [Issue("Same person twice", "into", "invalid")])
    ix.lock()
    ix.active_person(from_person)
    ix.active_person(into_person)
    moving = ix.member_states(from_person)
    staying = ix.members(into_person)
    dropped = ix.allow_together([s.record_id for s in moving], staying)
    event = ix.log("merge", person_id=into_person, other_person_id=from_person, reason=reason,
                   before={"from": from_person, "into": into_person, "records": [s.link_document() for s in moving],
                           "into_records": staying, "apart": dropped},
                   after={"person": into_person, "records": sorted(staying + [s.record_id for s in moving])})
    for s in moving:
        ix.place(s.record_id, into_person, **_placed(ix, reason))
        ix.supersede_reviews(s.record_id, either_side=True)
    ix.set_person_state(from_person, "merged", into_person)
    ix.refresh_goldens()
    return {"changed": True, "event": event, "person": into_person, "merged": from_person}


def unmerge(ix: PersonIndex, person_id: str, reason: str | None) -> dict[str, Any]:
    """Undo the latest merge of `person_id` (the merged-away person)."""
    reason = _require_reason(reason)
    ix.lock()
    state = ix.person_state(person_id)
    if state is None:
        raise NotFound(f"Person {person_id} is not known to the master patient index")
    if state[0] != "merged" or not state[1]:
        raise Conflict(f"Person {person_id} is {state[0]}, not merged into another person")
    survivor = state[1]
    merged = ix.conn.execute(
        select(EVENT.c.id, EVENT.c.before).where(EVENT.c.action == "merge", EVENT.c.other_person_id == person_id).order_by(EVENT.c.id.desc()).limit(1)
    ).first()
    if merged is None:
        raise Conflict(f"No merge of person {person_id} is on record")
    current = {s.record_id: s for s in ix.member_states(survivor)}
    back = [doc for doc in merged.before["records"] if doc["record"] in current]
    ix.set_person_state(person_id, "active")
    event = ix.log("unmerge", person_id=person_id, other_person_id=survivor, reason=reason,
                   before={"person": survivor, "records": [current[d["record"]].link_document() for d in back]},
                   after={"undoes": merged.id, "person": person_id, "records": back})
    for doc in back:
        ix.place(doc["record"], person_id, method=doc["method"], grade=doc["grade"], score=doc["score"], locked=doc["locked"],
                 reasons=[f"{ix.actor}: un-merged: {reason}"])
    ix.restore_apart(merged.before.get("apart") or [], event)
    ix.refresh_goldens()
    return {"changed": True, "event": event, "person": person_id, "survivor": survivor, "records": [d["record"] for d in back]}


def decide_review(ix: PersonIndex, review_id: int, decision: str, reason: str | None) -> dict[str, Any]:
    reason = _require_reason(reason)
    if decision not in ("accept", "reject"):
        raise InvalidResource("decision must be accept or reject", [Issue("Unknown decision", "decision", "code-invalid")])
    ix.lock()
    stmt = select(REVIEW).where(REVIEW.c.id == review_id)
    if ix.conn.dialect.name == "postgresql":
        stmt = stmt.with_for_update()
    review = ix.conn.execute(stmt).first()
    if review is None:
        raise NotFound(f"Review {review_id} is not known")
    if review.status != "open":
        raise Conflict(f"Review {review_id} is already {review.status}")
    if decision == "accept":
        candidate = ix.linked_record(review.candidate_id)
        result = link(ix, review.record_id, candidate.person_id, reason, review_id=review_id)
    else:
        event = ix.log("review-reject", record_id=review.record_id, person_id=review.person_id, review_id=review_id, reason=reason,
                       after={"apart": [review.record_id, review.candidate_id]})
        ix.keep_apart(review.record_id, [review.candidate_id], event)
        result = {"changed": True, "event": event, "record": review.record_id}
    ix.conn.execute(update(REVIEW).where(REVIEW.c.id == review_id).values(
        status="accepted" if decision == "accept" else "rejected", decided_at=ix.now, decided_by=ix.actor, reason=reason))
    return {**result, "review": review_id, "status": "accepted" if decision == "accept" else "rejected"}
