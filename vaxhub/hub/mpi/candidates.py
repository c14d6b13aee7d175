"""Candidates for a record, fetched by blocking keys and scored, best person first.

One indexed query finds every linked record sharing a blocking key with the
incoming one (`mpi_block` → `mpi_record`; a key too common to block on is
left out, its block never read: `filed_under`), a second loads the term
counts of the values in play; each candidate is scored with the core `MatchModel`, and
a person's score is its best record's. Used by the online linker and by
`Patient/$match`.

A CCCD the population registry named for a record (the current card of its
old CMND) is evidence only against records that hold that very CCCD: were it
taken as the record's own number, a wrong CMND typed at a site would make it
"a different CCCD" from every record of the true person, which the hard rules
treat as proof of two people.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace

from sqlalchemy import Connection, bindparam, func, select, text

from vaxhub.hub.mpi.frequencies import IndexFrequencies, load_frequencies
from vaxhub.hub.storage.mpi_tables import MpiBlockRow, MpiRecordRow
from vaxhub.hub.storage.lists import one_of
from vaxhub.identity.keys import MatchKeys, blocking_keys
from vaxhub.identity.comparisons import compare, prepare
from vaxhub.identity.scoring import EXCLUDED, MatchModel, MatchScore, rule_verdict

RECORD = MpiRecordRow.__table__
BLOCK = MpiBlockRow.__table__
CANDIDATE_LIMIT = 500


@dataclass(frozen=True)
class Evidence:
    """A record's match keys with what the population registry said of it."""

    keys: MatchKeys
    verified_cccd: str | None = None  # the registry verified the record as this CCCD's holder
    registry_cccd: str | None = None  # the registry named this CCCD for the record's old CMND

    @property
    def cccds(self) -> set[str]:
        return {c for c in (self.keys.cccd, self.verified_cccd, self.registry_cccd) if c}

    def blocks(self) -> list[str]:
        found = blocking_keys(self.keys)
        for cccd in (self.verified_cccd, self.registry_cccd):
            if cccd and cccd != self.keys.cccd and f"id:{cccd}" not in found:
                found.append(f"id:{cccd}")
        return found

    def against(self, other: Evidence) -> MatchKeys:
        """The keys to compare with `other`."""
        if self.verified_cccd and self.keys.cccd != self.verified_cccd:
            return replace(self.keys, cccd=self.verified_cccd)
        if self.keys.cccd is None and self.registry_cccd and self.registry_cccd in other.cccds:
            return replace(self.keys, cccd=self.registry_cccd)
        return self.keys


@dataclass(frozen=True)
class Candidate:
    record_id: str
    person_id: str
    evidence: Evidence


@dataclass(frozen=True)
class PersonMatch:
    """The best-scoring record of one candidate person."""

    person_id: str
    record_id: str
    score: MatchScore


# The records filed under the keys are read first and named in the second
# query: primary-key lookups whatever the planner's statistics say (a join
# through `record_id IN (SELECT … FROM mpi_block …)` can be planned as a walk
# over every record when the tables were never analysed). No DISTINCT here:
# it invites a walk along another index.
#
# A key filed under more records than a candidate list may hold is too common
# to block on: a clinic's phone typed for every patient, 0000000000, a
# placeholder number. Its block is never read whole (every record sharing the
# key would read thousands of rows, then `select_candidates` would drop it);
# at most `most` + 1 of its rows are, which is how it is known to be too common.
_FILED_LATERAL = text(
    "SELECT k.key, b.record_id FROM unnest(CAST(:keys AS varchar[])) AS k(key) "
    "CROSS JOIN LATERAL (SELECT record_id FROM mpi_block WHERE mpi_block.key = k.key LIMIT :most) AS b"
)
_NUMBERED = select(BLOCK.c.key, BLOCK.c.record_id, func.row_number().over(partition_by=BLOCK.c.key).label("n")).where(
    one_of(BLOCK.c.key, "keys")).subquery()
_FILED_WINDOW = select(_NUMBERED.c.key, _NUMBERED.c.record_id).where(_NUMBERED.c.n <= bindparam("most"))


@dataclass(frozen=True)
class Filed:
    """The (key, record id) pairs of the keys asked about, and the keys too common to block on."""

    pairs: list[tuple[str, str]]
    too_common: frozenset[str]


def filed_under(conn: Connection, keys: list[str], *, most: int = CANDIDATE_LIMIT) -> Filed:
    """The records filed under each key, except keys filed under more than `most` records."""
    if not keys:
        return Filed([], frozenset())
    statement = _FILED_LATERAL if conn.dialect.name == "postgresql" else _FILED_WINDOW
    rows = conn.execute(statement, {"keys": list(keys), "most": most + 1}).all()
    sizes = Counter(r.key for r in rows)
    too_common = frozenset(key for key, size in sizes.items() if size > most)
    return Filed([(r.key, r.record_id) for r in rows if r.key not in too_common], too_common)


_CANDIDATES = (
    select(RECORD.c.record_id, RECORD.c.person_id, RECORD.c.match_keys, RECORD.c.verified_cccd, RECORD.c.registry_cccd)
    .where(
        one_of(RECORD.c.record_id, "filed"),
        RECORD.c.person_id.is_not(None),
        RECORD.c.match_keys.is_not(None),
        RECORD.c.record_id != bindparam("besides"),
    )
    .limit(bindparam("limit"))
)


def fetch_candidates(conn: Connection, keys: list[str], *, besides: str | None = None, limit: int = CANDIDATE_LIMIT) -> list[Candidate]:
    """Linked records sharing a blocking key; keys filed under more than
    `limit` records are left out, and the largest blocks are dropped when
    together they hold more than `limit` records (a clinic's phone typed
    for every patient must not crowd out the real candidates)."""
    keys = sorted(set(keys))
    filed = filed_under(conn, keys, most=limit)

    def linked(ids: list[str], most: int) -> list[Candidate]:
        rows = conn.execute(_CANDIDATES, {"filed": ids, "besides": besides or "", "limit": most}).all()
        return [Candidate(r.record_id, r.person_id, Evidence(MatchKeys.from_document(r.match_keys), r.verified_cccd, r.registry_cccd)) for r in rows]

    return select_candidates([k for k in keys if k not in filed.too_common], filed.pairs, linked, besides=besides, limit=limit)


def select_candidates(keys: list[str], filed_under: list[tuple[str, str]], linked: Callable[[list[str], int], list[Candidate]], *,
                      besides: str | None, limit: int = CANDIDATE_LIMIT) -> list[Candidate]:
    """`fetch_candidates` on (key, record id) pairs already read: `linked(ids,
    most)` gives at most `most` of those records that are linked, with their
    evidence. Ordered by record id, so that ties between a person's records
    are broken the same way wherever the rows came from."""
    keys = sorted(set(keys))
    while keys:
        filed = sorted({record_id for key, record_id in filed_under if key in keys} - {besides})
        found = linked(filed, limit + 1) if filed else []
        if len(found) <= limit:
            return sorted(found, key=lambda c: c.record_id)
        sizes = Counter(key for key, _record_id in filed_under)
        keys.remove(max(keys, key=lambda k: sizes.get(k, 0)))
    return []


def score_persons(
    conn: Connection,
    model: MatchModel,
    incoming: Evidence,
    candidates: Iterable[Candidate],
    *,
    excluded_persons: set[str] = frozenset(),
    frequencies: IndexFrequencies | None = None,
) -> list[PersonMatch]:
    """Each candidate person's best score against `incoming`, best first.

    Pairs are weighed on the core's fast path (`MatchModel.pair_weight`, as the
    batch linker does); the reasons an operator reads are worked out for each
    person's best pair only. Term frequencies matter only where two values
    agree, so only the incoming record's values are loaded (or taken from
    `frequencies`, read for a whole batch)."""
    candidates = [c for c in candidates if c.person_id not in excluded_persons]
    if not candidates:
        return []
    tf = frequencies or load_frequencies(conn, [incoming.keys], model)
    tf_in = model.tf_logs(incoming.keys, tf)
    prepared_in = prepare(incoming.keys)
    best: dict[str, tuple[tuple, Candidate]] = {}
    ruled_out: dict[str, Candidate] = {}
    for c in candidates:
        weight, verdict = _pair(model, incoming, c.evidence, prepared_in, tf_in, tf)
        if verdict == EXCLUDED:
            # One record of the person holds another CCCD or BHXH number: the
            # person is someone else, however well another of its records scores.
            ruled_out.setdefault(c.person_id, c)
            continue
        grade = model.grade(weight, verdict)
        rank = (_GRADE_RANK[grade], model.probability(weight), weight)
        held = best.get(c.person_id)
        if held is None or rank > held[0]:
            best[c.person_id] = (rank, c)
    found = []
    for person_id, (_rank_, c) in best.items():
        conflict = ruled_out.get(person_id)
        if conflict is not None:
            c = conflict  # the pair that rules the person out, with its reasons
        score = model.score(incoming.against(c.evidence), c.evidence.against(incoming), tf)
        found.append(PersonMatch(person_id, c.record_id, score))
    return sorted(found, key=lambda m: (_rank(m.score), m.person_id), reverse=True)


def _pair(model: MatchModel, incoming: Evidence, other: Evidence, prepared_in, tf_in, tf) -> tuple[float, int]:
    mine, theirs = incoming.against(other), other.against(incoming)
    a = prepared_in if mine is incoming.keys else prepare(mine)
    return model.pair_weight(compare(a, prepare(theirs)), tf_in, model.tf_logs(theirs, tf))


_MEMBERS = select(RECORD.c.record_id, RECORD.c.match_keys, RECORD.c.verified_cccd, RECORD.c.registry_cccd).where(
    RECORD.c.person_id == bindparam("person_id"), RECORD.c.match_keys.is_not(None))


def contradicting_record(conn: Connection, model: MatchModel, incoming: Evidence, person_id: str,
                         members: Iterable[tuple[str, Evidence]] | None = None) -> str | None:
    """A record of the person that the hard rules say is another person than
    `incoming` (a different CCCD or BHXH number), among all its records, not
    only those that shared a block: linking must not join two numbers.
    `members` are the person's (record id, evidence) pairs when already read."""
    if members is None:
        members = person_members(conn, person_id)
    for record_id, other in members:
        mine, theirs = incoming.against(other), other.against(incoming)
        if rule_verdict(compare(prepare(mine), prepare(theirs))) == EXCLUDED:
            return record_id
    return None


def person_members(conn: Connection, person_id: str) -> list[tuple[str, Evidence]]:
    """The person's records that hold match keys, with their evidence."""
    return [(row.record_id, Evidence(MatchKeys.from_document(row.match_keys), row.verified_cccd, row.registry_cccd))
            for row in conn.execute(_MEMBERS, {"person_id": person_id})]


_GRADE_RANK = {"certain": 3, "probable": 2, "possible": 1, "no-match": 0}


def _rank(score: MatchScore) -> tuple[int, float, float]:
    """Grade first (the hard rules make it), then probability and weight."""
    return _GRADE_RANK.get(score.grade, 0), score.probability, score.weight
