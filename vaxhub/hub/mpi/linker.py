"""Online linking: put one site Patient in its person, now.

`Linker.link_record(writer, record_id)` runs inside one unit of work of the
MPI's FHIR store, against the hub's own database:

1. The record's current Patient version and its registry verification
   (`verification_job`: the latest result, if it is about the current claim).
2. Deterministic: a record the population registry verified as the holder of
   a CCCD joins the person already holding that verified CCCD, grade
   `certain`; this is also how an old CMND joins its CCCD's person (the
   registry answers a CMND claim with the current CCCD).
3. Otherwise probabilistic: candidates by blocking keys, Fellegi–Sunter
   scores with term frequencies, a person's score being its best record's;
   the model's thresholds decide: link (certain or probable), review (the
   record stands alone and an operator is asked), or new person.
4. The link row, blocks, term counts and history are written, and the golden
   Patients of the persons involved rebuilt, in the same transaction.

An operator's decisions stand: a record an operator placed (`locked`) stays
where it is, and persons holding a record the operator said is someone else
are never candidates.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from types import SimpleNamespace

from sqlalchemy import bindparam, delete, insert, or_, select, update

from vaxhub.adapters.ports import PopulationRegistry
from vaxhub.hub.mpi.candidates import Evidence, PersonMatch, contradicting_record, score_persons
from vaxhub.hub.mpi.frequencies import TermChanges
from vaxhub.hub.mpi.golden import is_golden
from vaxhub.hub.mpi.reads import IndexReads
from vaxhub.hub.mpi.index import BLOCK, DISTINCT, RECORD, LinkWrites, PersonIndex, RecordState, record_state
from vaxhub.hub.mpi.old_ids import old_id_to_ask
from vaxhub.hub.storage.outbox_tables import VerificationJobRow
from vaxhub.hub.storage.store import RESOURCE, Writer
from vaxhub.hub.storage.lists import one_of
from vaxhub.identity.keys import match_keys
from vaxhub.identity.scoring import MatchModel, MatchScore

log = logging.getLogger(__name__)
JOB = VerificationJobRow.__table__
LINKER = "mpi-linker"


@dataclass(frozen=True)
class LinkOutcome:
    """What linking did with a record."""

    record_id: str
    person_id: str | None
    action: str  # linked | new-person | review | kept | removed
    method: str | None = None  # registry | score | new | operator (how it joined its person)
    grade: str | None = None
    score: float | None = None
    reasons: tuple[str, ...] = ()
    review_with: str | None = None  # the candidate record an operator is asked about
    review_person: str | None = None  # that record's person
    weight: float | None = None  # the match weight (log2 Bayes factor) behind `score`


@dataclass(frozen=True)
class RegistryView:
    """What the population registry said of the record's current claim."""

    verified_cccd: str | None
    registry_cccd: str | None


_REGISTRY_VIEWS = select(JOB.c.patient_id, JOB.c.patient_version, JOB.c.result_status, JOB.c.result_version, JOB.c.registry_id).where(
    one_of(JOB.c.patient_id, "records"))


def registry_views(conn, record_ids: list[str]) -> dict[str, RegistryView]:
    """The registry's answer about each record's current claim: a result for an
    older claim (the Patient's identity changed since) counts as none."""
    rows = conn.execute(_REGISTRY_VIEWS, {"records": list(record_ids)}).all()
    views = {}
    for row in rows:
        if row.result_version is not None and row.result_version == row.patient_version and row.registry_id:
            views[row.patient_id] = RegistryView(row.registry_id if row.result_status == "verified" else None, row.registry_id)
    return views


@dataclass(frozen=True)
class _Found:
    state: RecordState | None
    version: int | None
    content: dict | None  # None: no such Patient, or deleted
    registry: RegistryView
    kept_apart: bool  # an operator said the record is someone else than some record


def _read_statement(postgresql: bool, *, many: bool = False):
    me = RESOURCE.c.res_id if many else bindparam("record_id")
    apart = select(DISTINCT.c.record_a).where(or_(DISTINCT.c.record_a == me, DISTINCT.c.record_b == me)).limit(1).exists()
    stmt = (
        select(RESOURCE.c.res_id, RESOURCE.c.version, RESOURCE.c.content, RESOURCE.c.deleted, *[c.label(f"r_{c.name}") for c in RECORD.c],
               JOB.c.patient_version, JOB.c.result_status, JOB.c.result_version, JOB.c.registry_id, apart.label("kept_apart"))
        .select_from(RESOURCE.outerjoin(RECORD, RECORD.c.record_id == RESOURCE.c.res_id).outerjoin(JOB, JOB.c.patient_id == RESOURCE.c.res_id))
        .where(RESOURCE.c.res_type == "Patient", one_of(RESOURCE.c.res_id, "record_ids") if many else RESOURCE.c.res_id == me)
    )
    return stmt.with_for_update(of=RESOURCE) if postgresql and not many else stmt


# Built once: the hot path of online linking pays no statement construction.
_READ = {True: _read_statement(True), False: _read_statement(False)}
# A batch's records, claimed (and their Patient rows locked) beforehand.
_READ_MANY = _read_statement(False, many=True)


def read_claimed(conn, record_ids: list[str]) -> dict[str, _Found]:
    """What `_read_record` reads, for every record of a claimed batch in one
    round trip. Linking a record changes no other record's row, so what is
    read here stays current while the batch links them one by one; records
    without a Patient row are left out (each is read alone)."""
    if not record_ids:
        return {}
    return {row.res_id: _found(row) for row in conn.execute(_READ_MANY, {"record_ids": record_ids})}


def _found(row) -> _Found:  # noqa: ANN001 - a row of `_read_statement`
    state = None
    if row.r_record_id is not None:
        state = record_state(SimpleNamespace(**{c.name: getattr(row, f"r_{c.name}") for c in RECORD.c}))
    registry = RegistryView(None, None)
    if row.result_version is not None and row.result_version == row.patient_version and row.registry_id:
        registry = RegistryView(row.registry_id if row.result_status == "verified" else None, row.registry_id)
    return _Found(state, row.version, None if row.deleted else row.content, registry, bool(row.kept_apart))


def _read_record(conn, record_id: str) -> _Found:
    """The record's link row, its current Patient and the registry's answer, in
    one round trip. The Patient row is locked: a site updating it meanwhile
    waits, then queues it again, so no newer version is lost."""
    row = conn.execute(_READ[conn.dialect.name == "postgresql"], {"record_id": record_id}).first()
    if row is None:
        state = conn.execute(select(RECORD).where(RECORD.c.record_id == record_id)).first()
        return _Found(record_state(state) if state else None, None, None, RegistryView(None, None), False)
    return _found(row)


def registry_view(conn, record_id: str) -> RegistryView:
    return registry_views(conn, [record_id]).get(record_id, RegistryView(None, None))


class Linker:
    def __init__(self, model: MatchModel | None = None, *, registry: PopulationRegistry | None = None):
        self.model = model or MatchModel.default()
        self.registry = registry  # for old CMND → CCCD look-ups, called outside transactions

    # -- before the transaction

    def resolve_old_id(self, conn, record_id: str) -> str | None:
        """The current CCCD of a CMND-only record, asked of the registry's old-id
        look-up when no verification has named it yet; None otherwise or on failure."""
        if self.registry is None:
            return None
        row = conn.execute(select(RESOURCE.c.content).where(RESOURCE.c.res_type == "Patient", RESOURCE.c.res_id == record_id, RESOURCE.c.deleted.is_(False))).first()
        if row is None:
            return None
        cmnd = old_id_to_ask(row.content)
        if not cmnd or registry_view(conn, record_id).registry_cccd:
            return None
        try:
            return self.registry.lookup_by_old_id(cmnd)
        except Exception as exc:  # an unreachable registry only means less evidence this time
            log.warning("old-id look-up for Patient/%s failed: %s", record_id, exc)
            return None

    # -- inside the transaction

    def link_record(self, writer: Writer, record_id: str, *, old_id_cccd: str | None = None, actor: str = LINKER,
                    only_if_queued: bool = False, inline_golden: bool = True, stale: set[str] | None = None,
                    events: list[dict] | None = None, locked: bool = False, terms: TermChanges | None = None,
                    read: _Found | None = None, reads: IndexReads | None = None, writes: LinkWrites | None = None) -> LinkOutcome | None:
        """Link (or re-link) one record; with `only_if_queued`, None when another
        worker has linked it since it was picked. Without `inline_golden` the
        persons touched are marked for the worker to rebuild their golden
        Patients together at the end of its pass (the link itself is current
        at once: searches and citizens' reach read `mpi_record`); given
        `stale`, they are added to it instead, and given `events`, the history
        events are kept there, for the caller to mark and write once for a
        whole batch (`locked`: the caller holds the index's lock already).
        Nothing that decides a link reads the history. `reads` answers what
        deciding reads of the rest of the index (`BatchReads` for a batch),
        and `writes` keeps the link's writes for the batch to send together."""
        index = PersonIndex(writer, actor, inline_golden=inline_golden, events=events, terms=terms, writes=writes)
        reads = reads or IndexReads(writer.conn)
        if not locked:
            index.lock()
        found = read or _read_record(writer.conn, record_id)
        state = found.state
        if only_if_queued and (state is None or state.state != "queued"):
            return None
        if found.content is None or is_golden(found.content):
            return self._remove(index, record_id, state, stale, reads)
        if state is None:
            writer.conn.execute(insert(RECORD).values(record_id=record_id, state="queued", queued_at=writer.now, locked=False, attempts=0))
            state = index.record(record_id)
        evidence = reads.evidence(record_id) or evidence_of(found, state, old_id_cccd)
        outcome, also_linkable = self._decide(index, state, evidence, found.kept_apart, reads)
        outcome = self._save(index, state, evidence, found.version, outcome, reads)
        # Another person that would also take the record may be one person
        # filed twice: an operator is asked (and can merge them).
        for match in also_linkable:
            if match.person_id != outcome.person_id:
                self._open_review(index, record_id, match.record_id, match.person_id, match.score)
        _refresh_or_collect(index, stale)
        return outcome

    def _decide(self, index: PersonIndex, state: RecordState, evidence: Evidence, kept_apart: bool,
                reads: IndexReads) -> tuple[LinkOutcome, list[PersonMatch]]:
        record_id, current = state.record_id, state.person_id
        if state.locked and current:
            return LinkOutcome(record_id, current, "kept", state.method, state.grade, state.score, ("placed by an operator",)), []
        apart = index.apart_from(record_id) if kept_apart else set()
        if evidence.verified_cccd:
            holder = reads.verified_holder(evidence.verified_cccd, besides=record_id)
            if holder and not (apart & set(index.members(holder))):
                reason = f"registry verified CCCD {evidence.verified_cccd}, held by this person's records"
                return LinkOutcome(record_id, holder, "linked", "registry", "certain", 1.0, (reason,)), []
        candidates = reads.candidates(evidence.blocks(), besides=record_id)
        excluded = {c.person_id for c in candidates if c.record_id in apart}
        ranked = score_persons(reads.conn, self.model, evidence, candidates, excluded_persons=excluded,
                               frequencies=reads.frequencies(self.model, evidence.keys))
        # The person about to take the record must hold no record with another number.
        while ranked and self.model.decide(ranked[0].score) == "link" and \
                contradicting_record(reads.conn, self.model, evidence, ranked[0].person_id, reads.members(ranked[0].person_id)):
            ranked = ranked[1:]
        best = ranked[0] if ranked else None
        decision = self.model.decide(best.score) if best else "new"
        also = [m for m in ranked[1:] if self.model.decide(m.score) == "link"]
        if decision == "link":
            return LinkOutcome(record_id, best.person_id, "linked", "score", best.score.grade, best.score.probability,
                               best.score.reasons, weight=best.score.weight), also
        alone = current if current and index.members(current) == [record_id] else None
        if decision == "review":
            return LinkOutcome(record_id, alone, "review", "new", best.score.grade, best.score.probability, best.score.reasons,
                               best.record_id, best.person_id, best.score.weight), also
        return LinkOutcome(record_id, alone, "new-person", "new"), also

    def _save(self, index: PersonIndex, state: RecordState, evidence: Evidence, version: int, outcome: LinkOutcome,
              reads: IndexReads) -> LinkOutcome:
        record_id = state.record_id
        target = outcome.person_id or index.new_person()
        previous = state.person_id
        old_blocks = Evidence(state.keys, state.verified_cccd, state.registry_cccd).blocks() if state.keys else []
        index.replace_blocks(record_id, old_blocks, evidence.blocks(), first=state.keys is None)
        if state.keys != evidence.keys:
            index.count_terms(added=[evidence.keys], removed=[state.keys] if state.keys else [])
        link = {"match_keys": evidence.keys.to_document(), "record_version": version, "state": "linked", "attempts": 0, "last_error": None,
                "verified_cccd": evidence.verified_cccd, "registry_cccd": evidence.registry_cccd}
        if outcome.action != "kept":
            link |= {"method": outcome.method, "grade": outcome.grade if outcome.action == "linked" else None,
                     "score": outcome.score, "reasons": list(outcome.reasons)}
        index.place(record_id, target, previous=previous, **link)
        reads.placed(record_id, target, previous=previous, old_blocks=old_blocks, evidence=evidence, new_person=outcome.person_id is None)
        if previous != target:
            action = "auto-link" if outcome.action == "linked" else "new-person"
            index.log(action, record_id=record_id, person_id=target, other_person_id=previous,
                      before={"person": previous}, after={"person": target, "method": outcome.method, "grade": link.get("grade"), "score": outcome.score})
        if state.keys is not None:  # a record linked for the first time has no reviews yet
            index.supersede_reviews(record_id)
        if outcome.action == "review" and outcome.review_with:
            self._open_review(index, record_id, outcome.review_with, outcome.review_person,
                              MatchScore(outcome.weight or 0.0, outcome.score or 0.0, outcome.grade or "possible", outcome.reasons))
        return replace(outcome, person_id=target)

    def _open_review(self, index: PersonIndex, record_id: str, candidate_id: str, person: str | None, score: MatchScore) -> None:
        # `person`: the candidate's, as the decision read it (every review outcome carries it).
        index.open_review({"record_id": record_id, "candidate_id": candidate_id, "person_id": person, "score": score.probability,
                           "weight": score.weight, "grade": score.grade, "reasons": list(score.reasons), "status": "open",
                           "created_at": index.now},
                          after={"candidate": candidate_id, "score": score.probability, "grade": score.grade})

    def _remove(self, index: PersonIndex, record_id: str, state: RecordState | None, stale: set[str] | None = None,
                reads: IndexReads | None = None) -> LinkOutcome:
        """The site record was deleted (or is not a site record): take it out of its person."""
        if state is None:
            return LinkOutcome(record_id, None, "removed")
        conn = index.conn
        conn.execute(delete(BLOCK).where(BLOCK.c.record_id == record_id))
        if reads is not None:
            old_blocks = Evidence(state.keys, state.verified_cccd, state.registry_cccd).blocks() if state.keys else []
            reads.removed(record_id, previous=state.person_id, old_blocks=old_blocks)
        if state.keys:
            index.count_terms(removed=[state.keys])
        conn.execute(delete(RECORD).where(RECORD.c.record_id == record_id))
        index.supersede_reviews(record_id, either_side=True)
        if state.person_id:
            index.touched.add(state.person_id)
            index.log("remove", record_id=record_id, person_id=state.person_id, before=state.link_document(), after=None,
                      reason="the site record was deleted")
        _refresh_or_collect(index, stale)
        return LinkOutcome(record_id, None, "removed")


def evidence_of(found: _Found, state: RecordState | None, old_id_cccd: str | None = None) -> Evidence:
    """What a record brings to its link: its match keys, the registry's answer
    about it, and the current CCCD of its old CMND (asked now, or kept from
    its last link while the CMND is unchanged)."""
    own = match_keys(found.content)
    registry = found.registry
    looked_up = old_id_cccd or (state.registry_cccd if state is not None and state.keys and state.keys.cmnd == own.cmnd and own.cmnd else None)
    return Evidence(own, registry.verified_cccd, registry.registry_cccd or (looked_up if own.cmnd and not own.cccd else None))


def _refresh_or_collect(index: PersonIndex, stale: set[str] | None) -> None:
    if stale is None or index.inline_golden:
        index.refresh_goldens()
    else:
        stale.update(index.touched)
        index.touched.clear()


def mark_failed(conn, record_id: str, error: str, *, attempts: int, dead: bool, now) -> None:
    conn.execute(update(RECORD).where(RECORD.c.record_id == record_id).values(
        state="failed" if dead else "queued", attempts=attempts, last_error=error[:2000], queued_at=now))
