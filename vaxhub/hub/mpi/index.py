"""The person index inside one unit of work: who belongs to whom, and its history.

Every change of membership, automatic or an operator's, goes through a
`PersonIndex` bound to a FHIR store `Writer`, so the link rows, the history
event, the blocks and term counts, and the golden Patients of the persons it
touched commit together or not at all (the worker's links mark the persons
instead, and their golden Patients are rebuilt together at the end of its
pass). Membership changes are serialised by one transaction-level advisory
lock on PostgreSQL (SQLite has one writer at a time anyway), taken once for
a whole batch of the worker's links: two linkers working at once could
otherwise both decide that a person is new, or put two records with
different CCCDs in one person, neither seeing the other's uncommitted link.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import and_, bindparam, delete, insert, or_, select, text, update

from vaxhub.errors import Conflict, NotFound
from vaxhub.hub.mpi.frequencies import TermChanges, count_terms
from vaxhub.hub.mpi.golden import Member, golden_patient, merged_patient
from vaxhub.hub.storage.mpi_tables import (
    MpiBlockRow,
    MpiDistinctRow,
    MpiEventRow,
    MpiPersonRow,
    MpiRecordRow,
    MpiReviewRow,
)
from vaxhub.hub.storage.bulk import insert_rows
from vaxhub.hub.storage.lists import one_of
from vaxhub.hub.storage.store import RESOURCE, Writer
from vaxhub.identity.keys import MatchKeys

RECORD = MpiRecordRow.__table__
PERSON = MpiPersonRow.__table__
BLOCK = MpiBlockRow.__table__
EVENT = MpiEventRow.__table__
DISTINCT = MpiDistinctRow.__table__
REVIEW = MpiReviewRow.__table__

_UNKNOWN = object()
# Statements of the online path, built once (their SET columns come with the parameters).
_PLACE = update(RECORD).where(RECORD.c.record_id == bindparam("b_record_id"))
_LOG = insert(EVENT).returning(EVENT.c.id)
_OPEN_REVIEWS = insert(REVIEW).returning(REVIEW.c.id, sort_by_parameter_order=True)
# Unconditional, so the person row is always locked: a golden rebuild holding
# the row (it read the members before this link commits) is waited for, and
# its "fresh" is overwritten by this "stale" (see `MasterPatientIndex.rebuild_goldens`).
_MARK_STALE = update(PERSON).where(one_of(PERSON.c.person_id, "persons")).values(golden_stale=True)
_UNFILE = delete(BLOCK).where(one_of(BLOCK.c.record_id, "records"))
# A golden rebuild's reads: the persons' states, their members' Patients, their current goldens.
_PERSON_STATES = select(PERSON.c.person_id, PERSON.c.state, PERSON.c.merged_into).where(one_of(PERSON.c.person_id, "persons"))
_MEMBERS = (
    select(RECORD.c.person_id, RECORD.c.record_id, RECORD.c.verified_cccd, RESOURCE.c.content)
    .select_from(RECORD.join(RESOURCE, and_(RESOURCE.c.res_type == "Patient", RESOURCE.c.res_id == RECORD.c.record_id)))
    .where(one_of(RECORD.c.person_id, "persons"), RESOURCE.c.deleted.is_(False))
)
_GOLDENS = select(RESOURCE.c.res_id, RESOURCE.c.content, RESOURCE.c.deleted).where(RESOURCE.c.res_type == "Patient", one_of(RESOURCE.c.res_id, "persons"))
_FRESH = update(PERSON).where(one_of(PERSON.c.person_id, "persons"), PERSON.c.golden_stale.is_(True)).values(golden_stale=False)
_INSERT_BLOCKS = text("INSERT INTO mpi_block (key, record_id) SELECT unnest(CAST(:keys AS text[])), :record_id")
# pg_advisory_xact_lock key of membership changes ("vaxmpi" in ASCII).
MPI_LOCK_KEY = 0x76_61_78_6D_70_69


class LinkWrites:
    """The membership writes of a link batch (new persons, blocks, links),
    kept to go out together: before anything reads or writes the index in
    another way (`PersonIndex.conn` sends them first) and when the batch ends.
    A batch of a hundred records then costs a handful of statements instead
    of three round trips per record."""

    def __init__(self) -> None:
        self.persons: list[dict] = []
        self.unfiled: list[str] = []  # records whose blocks are replaced
        self.blocks: list[dict] = []
        self.places: list[dict] = []
        self.reviews: list[tuple[dict, dict]] = []  # a review row, and the kept history event that names it

    def write(self, conn) -> None:  # noqa: ANN001 - a connection
        if self.unfiled:
            conn.execute(_UNFILE, {"records": self.unfiled})
        insert_rows(conn, [(PERSON, self.persons), (BLOCK, self.blocks)])
        # One executemany per set of columns (a link an operator placed keeps its method).
        groups: dict[tuple[str, ...], list[dict]] = {}
        for params in self.places:
            groups.setdefault(tuple(sorted(params)), []).append(params)
        for rows in groups.values():
            conn.execute(_PLACE, rows)
        if self.reviews:
            ids = conn.execute(_OPEN_REVIEWS, [row for row, _event in self.reviews]).scalars().all()
            for (_row, event), review_id in zip(self.reviews, ids, strict=True):
                event["review_id"] = review_id  # the events are written after these writes (`PersonIndex.write_events`)
        self.persons, self.unfiled, self.blocks, self.places, self.reviews = [], [], [], [], []


@dataclass(frozen=True)
class RecordState:
    """A record's row in `mpi_record`."""

    record_id: str
    person_id: str | None
    keys: MatchKeys | None
    record_version: int | None
    state: str
    method: str | None
    grade: str | None
    score: float | None
    verified_cccd: str | None
    registry_cccd: str | None
    locked: bool

    def link_document(self) -> dict[str, Any]:
        """How the record is linked, as history events keep it."""
        return {"record": self.record_id, "person": self.person_id, "method": self.method, "grade": self.grade,
                "score": self.score, "locked": self.locked}


def record_state(row: Any) -> RecordState:
    return RecordState(
        row.record_id, row.person_id, MatchKeys.from_document(row.match_keys) if row.match_keys else None, row.record_version,
        row.state, row.method, row.grade, row.score, row.verified_cccd, row.registry_cccd, bool(row.locked),
    )


class PersonIndex:
    def __init__(self, writer: Writer, actor: str, *, inline_golden: bool = True, events: list[dict] | None = None,
                 terms: TermChanges | None = None, writes: LinkWrites | None = None):
        self.writer = writer
        self._conn = writer.conn
        self.now = writer.now
        self.actor = actor
        self.inline_golden = inline_golden  # else: persons are marked stale for the worker
        self.touched: set[str] = set()
        self.events = events  # given: history events are kept here for `write_events` (one statement for a batch)
        self.terms = terms  # given: term count changes are kept here for one upsert per batch
        self.writes = writes  # given: new persons, blocks and links are kept here (see `LinkWrites`)

    @property
    def conn(self):  # noqa: ANN201 - a connection
        """The unit's connection, once the kept writes have gone out: whatever
        uses it then sees every link the batch made."""
        if self.writes is not None:
            self.writes.write(self._conn)
        return self._conn

    def count_terms(self, *, added: Sequence[MatchKeys] = (), removed: Sequence[MatchKeys] = ()) -> None:
        if self.terms is None:
            count_terms(self.conn, added=added, removed=removed)
        else:
            self.terms.added.extend(added)
            self.terms.removed.extend(removed)

    # -- reading

    def lock(self) -> None:
        if self.conn.dialect.name == "postgresql":
            self.conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MPI_LOCK_KEY})

    def record(self, record_id: str, *, for_update: bool = False) -> RecordState | None:
        stmt = select(RECORD).where(RECORD.c.record_id == record_id)
        if for_update and self.conn.dialect.name == "postgresql":
            stmt = stmt.with_for_update()
        row = self.conn.execute(stmt).first()
        return record_state(row) if row else None

    def linked_record(self, record_id: str) -> RecordState:
        found = self.record(record_id, for_update=True)
        if found is None or found.person_id is None:
            raise NotFound(f"Patient/{record_id} is not linked to a person (yet)")
        return found

    def members(self, person_id: str) -> list[str]:
        return sorted(self.conn.execute(select(RECORD.c.record_id).where(RECORD.c.person_id == person_id)).scalars())

    def member_states(self, person_id: str) -> list[RecordState]:
        return [record_state(r) for r in self.conn.execute(select(RECORD).where(RECORD.c.person_id == person_id).order_by(RECORD.c.record_id))]

    def person_state(self, person_id: str) -> tuple[str, str | None] | None:
        row = self.conn.execute(select(PERSON.c.state, PERSON.c.merged_into).where(PERSON.c.person_id == person_id)).first()
        return (row.state, row.merged_into) if row else None

    def active_person(self, person_id: str) -> None:
        found = self.person_state(person_id)
        if found is None:
            raise NotFound(f"Person {person_id} is not known to the master patient index")
        if found[0] != "active":
            raise Conflict(f"Person {person_id} is {found[0]}" + (f" into {found[1]}" if found[1] else "") + "; it takes no records")

    def apart_from(self, record_id: str) -> set[str]:
        """Records an operator said are another person than `record_id`."""
        rows = self.conn.execute(
            select(DISTINCT.c.record_a, DISTINCT.c.record_b).where(or_(DISTINCT.c.record_a == record_id, DISTINCT.c.record_b == record_id))
        ).all()
        return {b if a == record_id else a for a, b in rows}

    # -- writing

    def new_person(self) -> str:
        person_id = self.writer.store.new_id()
        row = {"person_id": person_id, "state": "active", "merged_into": None, "golden_stale": not self.inline_golden,
               "created_at": self.now, "updated_at": self.now}
        if self.writes is not None:
            self.writes.persons.append(row)
        else:
            self.conn.execute(insert(PERSON).values(**row))
        self.touched.add(person_id)
        return person_id

    def place(self, record_id: str, person_id: str, *, previous: Any = _UNKNOWN, **link: Any) -> None:
        """Put a record in a person (its row must exist), with how it got there."""
        if previous is _UNKNOWN:
            previous = self.conn.execute(select(RECORD.c.person_id).where(RECORD.c.record_id == record_id)).scalar()
        params = {"b_record_id": record_id, "person_id": person_id, "linked_at": self.now, **link}
        if self.writes is not None:
            self.writes.places.append(params)
        else:
            self.conn.execute(_PLACE, params)
        self.touched.update(p for p in (previous, person_id) if p)

    def set_person_state(self, person_id: str, state: str, merged_into: str | None = None) -> None:
        self.conn.execute(update(PERSON).where(PERSON.c.person_id == person_id).values(state=state, merged_into=merged_into, updated_at=self.now))
        self.touched.add(person_id)

    def log(self, action: str, *, record_id: str | None = None, person_id: str | None = None, other_person_id: str | None = None,
            reason: str | None = None, before: dict | None = None, after: dict | None = None, review_id: int | None = None) -> int | None:
        """Append a history event; returns its id (None when kept for `write_events`)."""
        event = {"at": self.now, "actor": self.actor, "action": action, "record_id": record_id, "person_id": person_id,
                 "other_person_id": other_person_id, "reason": reason, "before": before, "after": after, "review_id": review_id}
        if self.events is not None:
            self.events.append(event)
            return None
        return self.conn.execute(_LOG, event).scalar_one()

    def write_events(self, events: list[dict]) -> None:
        """Append kept history events, in order, with one statement."""
        if events:
            self.conn.execute(insert(EVENT), events)

    def keep_apart(self, record_id: str, others: list[str], event_id: int | None) -> None:
        pairs = {tuple(sorted((record_id, other))) for other in others if other != record_id}
        existing = {(a, b) for a, b in self.conn.execute(
            select(DISTINCT.c.record_a, DISTINCT.c.record_b).where(or_(DISTINCT.c.record_a == record_id, DISTINCT.c.record_b == record_id))
        )}
        rows = [{"record_a": a, "record_b": b, "event_id": event_id, "created_at": self.now} for a, b in sorted(pairs - existing)]
        if rows:
            self.conn.execute(insert(DISTINCT), rows)

    def allow_together(self, records: list[str], others: list[str]) -> list[list[str]]:
        """Drop "different people" constraints between two groups of records;
        returns the pairs dropped, for the history event (an undo puts them back)."""
        if not records or not others:
            return []
        between = or_(
            and_(DISTINCT.c.record_a.in_(records), DISTINCT.c.record_b.in_(others)),
            and_(DISTINCT.c.record_a.in_(others), DISTINCT.c.record_b.in_(records)),
        )
        dropped = [[a, b] for a, b in self.conn.execute(select(DISTINCT.c.record_a, DISTINCT.c.record_b).where(between))]
        if dropped:
            self.conn.execute(delete(DISTINCT).where(between))
        return sorted(dropped)

    def restore_apart(self, pairs: list[list[str]], event_id: int | None) -> None:
        for a, b in pairs:
            self.keep_apart(a, [b], event_id)

    def revivable_person(self, record_id: str) -> str | None:
        """The retired person this record last left, if no one else took it:
        undoing a link then puts the record back in the very person it left."""
        return self.conn.execute(
            select(EVENT.c.other_person_id)
            .select_from(EVENT.join(PERSON, PERSON.c.person_id == EVENT.c.other_person_id))
            .where(EVENT.c.record_id == record_id, PERSON.c.state == "retired")
            .order_by(EVENT.c.id.desc())
            .limit(1)
        ).scalar()

    def open_review(self, review: dict, *, after: dict) -> None:
        """Ask an operator about a pair (`review`: an `mpi_review` row), with its
        history event. In a batch both are kept, the review to go out with the
        batch's other writes and the event to learn its id then: opening one
        costs no round trip and does not send the kept writes early."""
        if self.writes is not None and self.events is not None:
            self.log("review-queued", record_id=review["record_id"], person_id=review["person_id"], after=after)
            self.writes.reviews.append((review, self.events[-1]))
            return
        review_id = self.conn.execute(insert(REVIEW).values(**review).returning(REVIEW.c.id)).scalar_one()
        self.log("review-queued", record_id=review["record_id"], person_id=review["person_id"], review_id=review_id, after=after)

    def supersede_reviews(self, record_id: str, *, either_side: bool = False) -> None:
        side = or_(REVIEW.c.record_id == record_id, REVIEW.c.candidate_id == record_id) if either_side else REVIEW.c.record_id == record_id
        self.conn.execute(update(REVIEW).where(side, REVIEW.c.status == "open").values(status="superseded", decided_at=self.now))

    def replace_blocks(self, record_id: str, old: list[str], new: list[str], *, first: bool = False) -> None:
        if set(old) == set(new) and not first:
            return
        keys = [key[:160] for key in dict.fromkeys(new)]
        if self.writes is not None:
            if not first:
                self.writes.unfiled.append(record_id)
            self.writes.blocks += [{"key": key, "record_id": record_id} for key in keys]
            return
        if not first:
            self.conn.execute(delete(BLOCK).where(BLOCK.c.record_id == record_id))
        if not keys:
            return
        if self.conn.dialect.name == "postgresql":  # one prepared statement whatever the number of keys
            self.conn.execute(_INSERT_BLOCKS, {"keys": keys, "record_id": record_id})
        else:
            self.conn.execute(insert(BLOCK).values([{"key": key, "record_id": record_id} for key in keys]))

    # -- golden records

    def refresh_goldens(self) -> None:
        """Rebuild the golden Patient of every person this unit touched, or
        mark them for the worker to rebuild (one update)."""
        if not self.inline_golden:
            self.mark_stale(self.touched)
            self.touched.clear()
            return
        self.refresh_goldens_of(sorted(self.touched))
        self.touched.clear()

    def mark_stale(self, persons: set[str] | list[str]) -> None:
        if persons:
            self.conn.execute(_MARK_STALE, {"persons": sorted(persons)})

    def refresh_golden(self, person_id: str) -> None:
        self.refresh_goldens_of([person_id])

    def refresh_goldens_of(self, persons: list[str]) -> None:
        """Rebuild the golden Patients of these persons: their states, members
        and current goldens read in three queries, the goldens written together
        (`Writer.update_many`)."""
        persons = sorted(set(persons))
        if not persons:
            return
        self.writer.flush()  # a golden created earlier in this unit may still be buffered
        wanted = {"persons": persons}
        states = {r.person_id: (r.state, r.merged_into) for r in self.conn.execute(_PERSON_STATES, wanted)}
        members: dict[str, list[Member]] = {}
        for r in self.conn.execute(_MEMBERS, wanted):
            members.setdefault(r.person_id, []).append(Member(r.record_id, r.content, r.verified_cccd))
        current = {r.res_id: r for r in self.conn.execute(_GOLDENS, wanted)}
        writes, deletes = [], []
        for person_id in persons:
            state = states.get(person_id)
            if state is None:
                continue
            golden = current.get(person_id)
            if state[0] == "merged":
                writes.append(merged_patient(person_id, state[1] or "", golden.content if golden else None))
            elif members.get(person_id):
                if state[0] != "active":
                    self.set_person_state(person_id, "active")
                writes.append(golden_patient(person_id, members[person_id]))
            else:
                if state[0] != "retired":
                    self.set_person_state(person_id, "retired")
                if golden is not None and not golden.deleted:
                    deletes.append(person_id)
        self.writer.update_many("Patient", writes)
        for person_id in deletes:
            self.writer.delete("Patient", person_id)
        known = sorted(states)
        if known:
            self.conn.execute(_FRESH, {"persons": known})
