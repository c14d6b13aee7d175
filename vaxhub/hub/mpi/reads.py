"""What deciding a record's link reads about the rest of the index.

The linker asks four questions while it decides one record: which person
holds a CCCD the registry verified, which linked records share a blocking
key with it, how common its names and phone are, and which records a
candidate person holds. `IndexReads` asks the database each time (one
record: an operator's re-link, `$link`). `BatchReads` reads what every
record of a claimed batch can ask in five queries before the first one
links, then is told of each link the batch makes, so a record later in the
batch sees the earlier ones as the database would. That is exact because the
batch holds the index's lock: no one else changes membership meanwhile. A
question the batch read cannot answer (keys it did not read) goes to the
database, which sees the batch's own writes.

Term counts are the exception, by design: the worker writes a batch's count
changes at its end (`TermChanges`), so both kinds answer with the counts as
they were when the batch began.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

from sqlalchemy import Connection, bindparam, select, union_all

from vaxhub.hub.mpi.candidates import (
    CANDIDATE_LIMIT,
    Candidate,
    Evidence,
    fetch_candidates,
    filed_under,
    person_members,
    select_candidates,
)
from vaxhub.hub.mpi.frequencies import IndexFrequencies, load_frequencies, term_values
from vaxhub.hub.mpi.index import BLOCK, RECORD
from vaxhub.hub.storage.outbox_tables import VerificationJobRow
from vaxhub.hub.storage.lists import one_of
from vaxhub.identity.keys import MatchKeys
from vaxhub.identity.scoring import MatchModel

JOB = VerificationJobRow.__table__


_FILED_UNDER = select(BLOCK.c.record_id).where(BLOCK.c.key == bindparam("key"))


def _verified_holder_statement(filed: bool):
    cccd, besides = bindparam("cccd"), bindparam("besides")
    linked = RECORD.c.person_id.is_not(None) & (RECORD.c.record_id != besides)
    by_column = select(RECORD.c.record_id, RECORD.c.person_id).where(RECORD.c.verified_cccd == cccd, linked)
    if not filed:
        return by_column
    by_registry = (
        select(RECORD.c.record_id, RECORD.c.person_id)
        .select_from(RECORD.join(JOB, JOB.c.patient_id == RECORD.c.record_id))
        .where(one_of(RECORD.c.record_id, "filed"), JOB.c.result_status == "verified", JOB.c.registry_id == cccd,
               JOB.c.result_version == JOB.c.patient_version, linked)
    )
    return union_all(by_column, by_registry)


_VERIFIED_HOLDER = {filed: _verified_holder_statement(filed) for filed in (True, False)}


def verified_holder(conn, cccd: str, *, besides: str) -> str | None:
    """The person of a record the registry verified as this CCCD's holder:
    one linked with it, or one filed under it whose verification says so now
    (so two records verified together join whichever is linked first); of
    several, the one of the lowest record id.

    Index lookups whatever the planner's statistics: the records filed under
    the CCCD are read first and named in the second query, which is two
    primary-key or index lookups, never `verified_cccd = … OR record_id IN
    (…)` (planned as a walk over every record of the index), and the few rows
    are ordered here (`ORDER BY record_id LIMIT 1` invites a walk along the
    primary key)."""
    filed = list(conn.execute(_FILED_UNDER, {"key": f"id:{cccd}"}).scalars())
    params = {"cccd": cccd, "besides": besides} | ({"filed": filed} if filed else {})
    rows = conn.execute(_VERIFIED_HOLDER[bool(filed)], params).all()
    return min(rows, key=lambda r: r.record_id).person_id if rows else None


class IndexReads:
    """Each question asked of the database when it is asked; `before` runs
    first (it sends the writes a batch keeps, `LinkWrites`)."""

    def __init__(self, conn: Connection, *, before: Callable[[], None] | None = None):
        self.conn = conn
        self._before = before or (lambda: None)

    def verified_holder(self, cccd: str, *, besides: str) -> str | None:
        self._before()
        return verified_holder(self.conn, cccd, besides=besides)

    def candidates(self, keys: list[str], *, besides: str | None) -> list[Candidate]:
        self._before()
        return fetch_candidates(self.conn, keys, besides=besides)

    def frequencies(self, model: MatchModel, keys: MatchKeys) -> IndexFrequencies | None:
        return None  # `score_persons` loads them

    def evidence(self, record_id: str) -> Evidence | None:
        """What the record brings, if already worked out."""
        return None

    def members(self, person_id: str) -> list[tuple[str, Evidence]]:
        self._before()
        return person_members(self.conn, person_id)

    # What the batch changed: nothing kept here to bring up to date.

    def placed(self, record_id: str, person_id: str, *, previous: str | None, old_blocks: list[str], evidence: Evidence,
               new_person: bool) -> None:
        pass

    def removed(self, record_id: str, *, previous: str | None, old_blocks: list[str]) -> None:
        pass


@dataclass
class _Row:
    """A record as the batch knows it: its link and its registry answer."""

    record_id: str
    person_id: str | None
    verified_cccd: str | None
    registry_cccd: str | None
    document: dict | None  # its match keys as stored; None: never linked
    registry_verified: str | None  # the CCCD its current verification confirms, if any
    known: Evidence | None = None  # the evidence, once worked out (or linked in this batch)

    @property
    def evidence(self) -> Evidence | None:
        # Worked out when asked: most records read for the hard rules never are.
        if self.known is None and self.document is not None:
            self.known = Evidence(MatchKeys.from_document(self.document), self.verified_cccd, self.registry_cccd)
        return self.known


_COLUMNS = (RECORD.c.record_id, RECORD.c.person_id, RECORD.c.match_keys, RECORD.c.verified_cccd, RECORD.c.registry_cccd,
            JOB.c.result_status, JOB.c.registry_id, JOB.c.result_version, JOB.c.patient_version)
_ROWS_FROM = RECORD.outerjoin(JOB, JOB.c.patient_id == RECORD.c.record_id)
_BY_ID = select(*_COLUMNS).select_from(_ROWS_FROM).where(one_of(RECORD.c.record_id, "ids"))
_BY_PERSON = select(*_COLUMNS).select_from(_ROWS_FROM).where(one_of(RECORD.c.person_id, "persons"))
_VERIFIED = select(RECORD.c.record_id).where(one_of(RECORD.c.verified_cccd, "cccds"))


def _row(r) -> _Row:  # noqa: ANN001 - a row of `_COLUMNS`
    confirmed = r.registry_id if (r.result_status == "verified" and r.result_version is not None
                                  and r.result_version == r.patient_version) else None
    return _Row(r.record_id, r.person_id, r.verified_cccd, r.registry_cccd, r.match_keys, confirmed)


class BatchReads(IndexReads):
    """The answers for a whole batch from one read, kept current as it links."""

    def __init__(self, conn: Connection, model: MatchModel, incoming: dict[str, Evidence], *,
                 before: Callable[[], None] | None = None):
        super().__init__(conn, before=before)
        self.incoming = incoming  # record id → what it brings, worked out once for the batch
        incoming = list(incoming.values())
        keys = sorted({key for e in incoming for key in e.blocks()})
        found = filed_under(conn, keys)
        # Keys too common to block on (`filed_under`) stay so for the batch; their blocks are never read.
        self.too_common = found.too_common
        self.filed: dict[str, set[str]] = {key: set() for key in keys if key not in self.too_common}
        for key, record_id in found.pairs:
            self.filed[key].add(record_id)
        self.verified_cccds = sorted({e.verified_cccd for e in incoming if e.verified_cccd})
        ids = set().union(*self.filed.values())
        if self.verified_cccds:
            ids |= set(conn.execute(_VERIFIED, {"cccds": self.verified_cccds}).scalars())
        self.rows: dict[str, _Row] = {}
        self._load(_BY_ID, {"ids": sorted(ids)} if ids else None)
        self.holding: dict[str, set[str]] = {cccd: set() for cccd in self.verified_cccds}  # verified CCCD → records
        for r in self.rows.values():
            if r.verified_cccd in self.holding:
                self.holding[r.verified_cccd].add(r.record_id)
        # Every record of each person in play, for the hard rules (`contradicting_record`).
        persons = sorted({r.person_id for r in self.rows.values() if r.person_id})
        self.people: dict[str, set[str]] = {p: set() for p in persons}
        self._load(_BY_PERSON, {"persons": persons} if persons else None)
        for r in self.rows.values():
            if r.person_id in self.people:
                self.people[r.person_id].add(r.record_id)
        self.tf = load_frequencies(conn, [e.keys for e in incoming], model)
        self._counted = {pair for e in incoming for pair in term_values(e.keys)}

    def _load(self, statement, params: dict | None) -> None:  # noqa: ANN001 - a select
        if params is not None:
            self.rows.update((r.record_id, _row(r)) for r in self.conn.execute(statement, params))

    # -- the questions

    def verified_holder(self, cccd: str, *, besides: str) -> str | None:
        key = f"id:{cccd}"
        if cccd not in self.holding or key not in self.filed:
            return super().verified_holder(cccd, besides=besides)
        holders = [self.rows[i] for i in self.holding[cccd]]
        holders += [self.rows[i] for i in self.filed[key] if i in self.rows and self.rows[i].registry_verified == cccd]
        holders = [r for r in holders if r.person_id and r.record_id != besides]
        return min(holders, key=lambda r: r.record_id).person_id if holders else None

    def candidates(self, keys: list[str], *, besides: str | None) -> list[Candidate]:
        if any(key not in self.filed and key not in self.too_common for key in keys):
            return super().candidates(keys, besides=besides)
        # As `filed_under` would answer now: a block this batch grew past the limit is too common too.
        keys = sorted(k for k in set(keys) if k in self.filed and len(self.filed[k]) <= CANDIDATE_LIMIT)
        pairs = [(key, record_id) for key in keys for record_id in self.filed[key]]

        def linked(filed: list[str], most: int) -> list[Candidate]:
            found = [Candidate(r.record_id, r.person_id, r.evidence) for i in filed
                     if (r := self.rows.get(i)) is not None and r.person_id and r.evidence is not None and i != besides]
            return found[:most]

        return select_candidates(keys, pairs, linked, besides=besides, limit=CANDIDATE_LIMIT)

    def frequencies(self, model: MatchModel, keys: MatchKeys) -> IndexFrequencies | None:
        return self.tf if all(pair in self._counted for pair in term_values(keys)) else None

    def evidence(self, record_id: str) -> Evidence | None:
        return self.incoming.get(record_id)

    def members(self, person_id: str) -> list[tuple[str, Evidence]]:
        if person_id not in self.people:
            return super().members(person_id)
        return [(i, self.rows[i].evidence) for i in sorted(self.people[person_id]) if self.rows[i].evidence is not None]

    # -- what the batch changed

    def placed(self, record_id: str, person_id: str, *, previous: str | None, old_blocks: list[str], evidence: Evidence,
               new_person: bool) -> None:
        self._unfile(record_id, previous, old_blocks)
        for key in evidence.blocks():
            if key in self.filed:
                self.filed[key].add(record_id)
        held = self.rows.get(record_id)
        if evidence.verified_cccd in self.holding:
            self.holding[evidence.verified_cccd].add(record_id)
        self.rows[record_id] = _Row(record_id, person_id, evidence.verified_cccd, evidence.registry_cccd, None,
                                    held.registry_verified if held else None, evidence)
        if new_person:
            self.people[person_id] = set()
        if person_id in self.people:
            self.people[person_id].add(record_id)

    def removed(self, record_id: str, *, previous: str | None, old_blocks: list[str]) -> None:
        self._unfile(record_id, previous, old_blocks)
        self.rows.pop(record_id, None)

    def _unfile(self, record_id: str, previous: str | None, old_blocks: list[str]) -> None:
        for key in old_blocks:
            self.filed.get(key, set()).discard(record_id)
        if previous in self.people:
            self.people[previous].discard(record_id)
        held = self.rows.get(record_id)
        if held is not None:
            self.holding.get(held.verified_cccd, set()).discard(record_id)
            self.rows[record_id] = replace(held, person_id=None, verified_cccd=None)
