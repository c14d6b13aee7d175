"""Batch re-linking: the whole index linked again in memory, written back in bulk.

`vaxhub mpi relink` is what runs after a new match model, a backlog loaded
without the link outbox (`vaxhub import`), or to check the online links:

1. read every record's stored match keys and registry facts in one pass
   (a server-side cursor on PostgreSQL), and the Patients not yet in the
   index (their keys computed from the stored resource);
2. link them in memory with the core linker (`vaxhub.identity.linkage`:
   blocking, scoring, clustering that never joins two CCCDs), a CCCD the
   registry verified standing in for the record's own;
3. honour what the online index knows better: records sharing a verified
   CCCD end in one person, records an operator placed stay where they are,
   and pairs an operator said are different people are split;
4. give each cluster the person id most of its records already have (so
   golden Patients and the links people hold stay), new ids otherwise;
5. write back in one transaction: the moved records (COPY into a temporary
   table and one UPDATE on PostgreSQL), the new persons, one history event
   per move, the review pairs, the term counts recomputed from scratch; the
   golden Patients of the persons touched are marked stale and rebuilt by
   the MPI worker (`vaxhub mpi work`), a few hundred per transaction.

A record linked online while the batch ran keeps its newer link: the UPDATE
only moves records still in the person they were read in.
"""

from __future__ import annotations

import time
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field, replace

import orjson
from sqlalchemy import JSON, Engine, delete, insert, select, text, update

from vaxhub.hub.mpi.enqueue import queue_records
from vaxhub.hub.mpi.frequencies import TERM, TOTAL, IndexFrequencies, average_shares, term_values
from vaxhub.hub.mpi.golden import is_golden
from vaxhub.hub.mpi.index import BLOCK, DISTINCT, EVENT, MPI_LOCK_KEY, PERSON, RECORD, REVIEW
from vaxhub.hub.storage.bulk import bulk_insert
from vaxhub.hub.storage.engine import write_transaction
from vaxhub.hub.storage.ids import time_ordered_id
from vaxhub.hub.storage.store import RESOURCE, utcnow
from vaxhub.identity.keys import MatchKeys, blocking_keys, match_keys
from vaxhub.identity.linkage import link_records
from vaxhub.identity.scoring import MatchModel

Progress = Callable[[str, int, int], None]
BATCH_ACTOR = "mpi-batch"


@dataclass
class RelinkReport:
    records: int = 0
    clusters: int = 0
    moved: int = 0
    new_persons: int = 0
    persons_touched: int = 0
    reviews: int = 0
    candidate_pairs: int = 0
    seconds: dict[str, float] = field(default_factory=dict)

    def as_dict(self) -> dict:
        return {**{k: v for k, v in self.__dict__.items() if k != "seconds"}, "seconds": {k: round(v, 2) for k, v in self.seconds.items()}}


@dataclass
class _Record:
    record_id: str
    person_id: str | None
    keys: MatchKeys
    verified_cccd: str | None
    locked: bool


def _report(progress: Progress | None, stage: str, done: int, total: int) -> None:
    if progress is not None:
        progress(stage, done, total)


def read_records(engine: Engine, progress: Progress | None = None) -> list[_Record]:
    """Every site record with its keys: stored ones, or computed for Patients the
    index has not seen (they are queued, so the worker files their blocks)."""
    found: list[_Record] = []
    with engine.connect() as conn:
        total = conn.execute(text("SELECT count(*) FROM mpi_record")).scalar_one()
        stmt = select(RECORD.c.record_id, RECORD.c.person_id, RECORD.c.match_keys, RECORD.c.verified_cccd, RECORD.c.locked).where(
            RECORD.c.match_keys.is_not(None))
        result = conn.execution_options(stream_results=True, yield_per=20_000).execute(stmt)
        from_document = MatchKeys.from_document
        for row in result:
            found.append(_Record(row.record_id, row.person_id, from_document(row.match_keys), row.verified_cccd, bool(row.locked)))
            if len(found) % 100_000 == 0:
                _report(progress, "reading", len(found), total)
        known = {r.record_id for r in found}
        linked = select(RECORD.c.record_id).where(RECORD.c.record_id == RESOURCE.c.res_id, RECORD.c.match_keys.is_not(None))
        unseen = select(RESOURCE.c.res_id, RESOURCE.c.content).where(
            RESOURCE.c.res_type == "Patient", RESOURCE.c.deleted.is_(False), ~linked.exists())  # an anti-join, not NOT IN
        for row in conn.execution_options(stream_results=True, yield_per=5_000).execute(unseen):
            if row.res_id not in known and not is_golden(row.content):
                found.append(_Record(row.res_id, None, match_keys(row.content), None, False))
    _report(progress, "reading", len(found), len(found))
    return found


def _clusters(records: list[_Record], model: MatchModel, progress: Progress | None, report: RelinkReport) -> tuple[dict[str, str], list]:
    keys = [r.keys for r in records]
    counts: dict[str, dict[str, int]] = defaultdict(dict)
    for item in keys:
        for f, v in term_values(item):
            counts[f][v] = counts[f].get(v, 0) + 1
    tf = IndexFrequencies(counts, len(keys), average_shares(model))
    effective = ((r.record_id, replace(r.keys, cccd=r.verified_cccd) if r.verified_cccd else r.keys) for r in records)
    result = link_records(effective, model, tf, progress=progress)
    report.candidate_pairs = result.stats.candidate_pairs
    report.seconds.update({f"link.{k}": v for k, v in result.stats.seconds.items()})
    return result.clusters, result.review_pairs


def _reconcile(records: list[_Record], clusters: dict[str, str], apart: list[tuple[str, str]]) -> dict[str, str]:
    """Cluster label of each unlocked record, after the online index's facts."""
    parent: dict[str, str] = {}

    def find(x: str) -> str:
        while parent.get(x, x) != x:
            parent[x] = parent.get(parent[x], parent[x])
            x = parent[x]
        return x

    by_verified: dict[str, str] = {}
    for r in records:
        if r.verified_cccd:
            label = find(clusters[r.record_id])
            held = by_verified.setdefault(r.verified_cccd, label)
            if find(held) != label:
                parent[label] = find(held)
    labels = {r.record_id: find(clusters[r.record_id]) for r in records if not r.locked}
    for a, b in apart:
        if a in labels and b in labels and labels[a] == labels[b]:
            labels[b] = f"apart:{b}"
    return labels


def _persons(records: list[_Record], labels: dict[str, str]) -> tuple[dict[str, str], int]:
    """Person id of each cluster: the one most of its records hold, else a new one."""
    held: dict[str, Counter] = defaultdict(Counter)
    for r in records:
        if r.record_id in labels and r.person_id:
            held[labels[r.record_id]][r.person_id] += 1
    claims = sorted(((n, label, person) for label, counter in held.items() for person, n in counter.items()), key=lambda c: (-c[0], c[1], c[2]))
    assigned: dict[str, str] = {}
    used: set[str] = set()
    for _n, label, person in claims:
        if label in assigned or person in used:
            continue
        assigned[label] = person
        used.add(person)
    new = 0
    for label in set(labels.values()):
        if label not in assigned:
            assigned[label] = time_ordered_id()
            new += 1
    return assigned, new


def relink_all(engine: Engine, *, model: MatchModel | None = None, progress: Progress | None = None) -> RelinkReport:
    report = RelinkReport()
    started = time.perf_counter()
    records = read_records(engine, progress)
    report.records = len(records)
    report.seconds["read"] = time.perf_counter() - started
    if not records:
        return report

    mark = time.perf_counter()
    model = (model or MatchModel.default()).for_population(max(len(records), 2))
    clusters, review_pairs = _clusters(records, model, progress, report)
    with engine.connect() as conn:
        apart = [(a, b) for a, b in conn.execute(select(DISTINCT.c.record_a, DISTINCT.c.record_b))]
    labels = _reconcile(records, clusters, apart)
    persons, report.new_persons = _persons(records, labels)
    report.clusters = len(set(labels.values()))
    report.seconds["link"] = time.perf_counter() - mark

    mark = time.perf_counter()
    moves = [(r.record_id, persons[labels[r.record_id]], r.person_id) for r in records
             if r.record_id in labels and persons[labels[r.record_id]] != r.person_id]
    report.moved = len(moves)
    _write(engine, records, moves, review_pairs, report, progress)
    report.seconds["write"] = time.perf_counter() - mark
    report.seconds["total"] = time.perf_counter() - started
    return report


def _write(engine: Engine, records: list[_Record], moves: list[tuple[str, str, str | None]], review_pairs: list,
           report: RelinkReport, progress: Progress | None) -> None:
    now = utcnow()
    known_persons: set[str] = {r.person_id for r in records if r.person_id}
    new_persons = sorted({person for _, person, _ in moves if person not in known_persons})
    touched = sorted({p for _, new, old in moves for p in (new, old) if p})
    report.persons_touched = len(touched)
    unseen = [r for r in records if r.person_id is None]
    with write_transaction(engine) as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MPI_LOCK_KEY})
        _report(progress, "writing", 0, len(moves))
        bulk_insert(conn, PERSON, [{"person_id": p, "state": "active", "merged_into": None, "golden_stale": True,
                                    "created_at": now, "updated_at": now} for p in new_persons])
        _file_unseen(conn, unseen, now)
        _move(conn, moves, now)
        _mark_stale(conn, touched, now)  # on PostgreSQL through the moves' temporary table
        _events(conn, moves, now)
        report.reviews = _reviews(conn, review_pairs, now)
        _recount_terms(conn, records)
        _report(progress, "writing", len(moves), len(moves))


def _file_unseen(conn, unseen: list[_Record], now) -> None:
    """Index rows and blocks for Patients the index had not seen (written by a
    path without the link outbox), so that later records find them."""
    if not unseen:
        return
    queue_records(conn, [r.record_id for r in unseen], now)
    for r in unseen:
        conn.execute(update(RECORD).where(RECORD.c.record_id == r.record_id).values(match_keys=r.keys.to_document()))
    conn.execute(delete(BLOCK).where(BLOCK.c.record_id.in_([r.record_id for r in unseen])))
    bulk_insert(conn, BLOCK, [{"key": key[:160], "record_id": r.record_id} for r in unseen for key in dict.fromkeys(blocking_keys(r.keys))])


def _move(conn, moves: list[tuple[str, str, str | None]], now) -> None:
    if not moves:
        return
    # `state` is left alone: a record queued since (its Patient changed) is still linked again online.
    values = {"method": "batch", "grade": None, "score": None, "reasons": ["batch re-link"], "linked_at": now}
    if conn.dialect.name != "postgresql":
        for record_id, new, old in moves:
            conn.execute(update(RECORD).where(RECORD.c.record_id == record_id, RECORD.c.person_id.is_(old) if old is None else RECORD.c.person_id == old)
                         .values(person_id=new, **values))
        return
    conn.execute(text("CREATE TEMPORARY TABLE mpi_relink (record_id varchar(64), person_id varchar(64), old_person varchar(64)) ON COMMIT DROP"))
    cursor = conn.connection.dbapi_connection.cursor()
    try:
        with cursor.copy("COPY mpi_relink (record_id, person_id, old_person) FROM STDIN") as copy:
            for row in moves:
                copy.write_row(row)
    finally:
        cursor.close()
    conn.execute(text(
        "UPDATE mpi_record r SET person_id = t.person_id, method = 'batch', grade = NULL, score = NULL, "
        "reasons = CAST(:reasons AS jsonb), linked_at = :now "
        "FROM mpi_relink t WHERE r.record_id = t.record_id AND r.person_id IS NOT DISTINCT FROM t.old_person"
    ), {"reasons": orjson.dumps(["batch re-link"]).decode(), "now": now})


def _mark_stale(conn, persons: list[str], now) -> None:
    if conn.dialect.name == "postgresql" and persons:
        conn.execute(text(
            "UPDATE mpi_person SET golden_stale = true, updated_at = :now WHERE person_id IN "
            "(SELECT person_id FROM mpi_relink UNION SELECT old_person FROM mpi_relink WHERE old_person IS NOT NULL)"
        ), {"now": now})
        return
    for start in range(0, len(persons), 5000):
        chunk = persons[start : start + 5000]
        conn.execute(update(PERSON).where(PERSON.c.person_id.in_(chunk)).values(golden_stale=True, updated_at=now))


def _append(conn, table, rows: list[dict]) -> None:
    """Append rows to a table with a generated id: COPY on PostgreSQL (the id
    column left to its sequence), one executemany INSERT elsewhere."""
    if not rows:
        return
    if conn.dialect.name != "postgresql":
        conn.execute(insert(table), rows)
        return
    columns = list(rows[0])
    documents = {c.name for c in table.columns if c.name in columns and isinstance(c.type, JSON)}
    cursor = conn.connection.dbapi_connection.cursor()
    try:
        with cursor.copy(f"COPY {table.name} ({', '.join(columns)}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row([None if row[c] is None else orjson.dumps(row[c]).decode() if c in documents else row[c] for c in columns])
    finally:
        cursor.close()


def _events(conn, moves: list[tuple[str, str, str | None]], now) -> None:
    _append(conn, EVENT, [{"at": now, "actor": BATCH_ACTOR, "action": "batch-link", "record_id": record_id, "person_id": new,
                           "other_person_id": old, "review_id": None, "reason": "batch re-link", "before": {"person": old}, "after": {"person": new}}
                          for record_id, new, old in moves])


def _reviews(conn, pairs, now) -> int:
    """Open a review for each pair the batch put between the thresholds, unless
    the pair is already open, decided, or kept apart."""
    if not pairs:
        return 0
    person = {}
    records = sorted({p.record_a for p in pairs} | {p.record_b for p in pairs})
    for start in range(0, len(records), 5000):
        chunk = records[start : start + 5000]
        person.update(conn.execute(select(RECORD.c.record_id, RECORD.c.person_id).where(RECORD.c.record_id.in_(chunk))).all())
    seen = {frozenset(p) for p in conn.execute(select(REVIEW.c.record_id, REVIEW.c.candidate_id).where(REVIEW.c.status.in_(("open", "rejected", "accepted"))))}
    seen |= {frozenset(p) for p in conn.execute(select(DISTINCT.c.record_a, DISTINCT.c.record_b))}
    rows = [{"record_id": p.record_a, "candidate_id": p.record_b, "person_id": person.get(p.record_b) or "", "score": p.probability,
             "weight": p.weight, "grade": "possible", "reasons": ["batch re-link: between the review and link thresholds"],
             "status": "open", "created_at": now}
            for p in pairs if frozenset((p.record_a, p.record_b)) not in seen and person.get(p.record_a) != person.get(p.record_b)]
    _append(conn, REVIEW, rows)
    return len(rows)


def _recount_terms(conn, records: list[_Record]) -> None:
    """Term counts recomputed from every record's keys: no drift survives a batch."""
    counts: Counter = Counter()
    for r in records:
        counts[TOTAL] += 1
        for pair in term_values(r.keys):
            counts[pair] += 1
    conn.execute(delete(TERM))
    bulk_insert(conn, TERM, [{"field": f, "value": v, "count": n} for (f, v), n in counts.items()])


