"""The FHIR store: every version kept, indexes written with the resource.

Reads go through `FhirStore`; writes go through a `Writer`, a unit of work on
one database transaction. A single REST create is a writer with one
operation; a transaction Bundle is one writer with many, so either all of it
is stored or none. Inserts are buffered and written at `flush()`: on
PostgreSQL every table's rows in one statement (`bulk.insert_rows`), which
is what makes bulk ingestion fast and a one-dose unit a few round trips.

Uniqueness of business identifiers is enforced by the `identifier_claim`
table's primary key. Its violation inside a race surfaces as
`RetryableConflict`; callers retry the whole unit, and the retry's
conditional creates then find the record the other request stored.
"""

from __future__ import annotations

import re
import threading
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Callable, Iterator, Protocol, Sequence

from sqlalchemy import ColumnElement, Connection, Engine, Select, Table, and_, bindparam, func, select, tuple_, update
from sqlalchemy.exc import IntegrityError

from vaxhub.errors import (
    Conflict,
    DuplicateIdentifier,
    Gone,
    InvalidResource,
    Issue,
    NotFound,
    PreconditionFailed,
    VersionConflict,
)
from vaxhub.fhir.search_params import compartment_patient, parse_reference
from vaxhub.fhir.search_query import SearchQuery, TokenValue
from vaxhub.hub.storage import key_reads
from vaxhub.hub.storage import search as sql_search
from vaxhub.hub.storage.bulk import Upsert, insert_rows
from vaxhub.hub.storage.engine import WRITE_OPTION, reader
from vaxhub.hub.storage.ids import time_ordered_id
from vaxhub.hub.storage.index_diff import replace_index_rows
from vaxhub.hub.storage.indexer import IndexRows, claimed_identifiers, index_rows
from vaxhub.hub.storage.tables import (
    DateIndexRow,
    IdentifierClaimRow,
    ReferenceIndexRow,
    ResourceRow,
    ResourceVersionRow,
    StringIndexRow,
    TokenIndexRow,
)

RESOURCE = ResourceRow.__table__
VERSION = ResourceVersionRow.__table__
CLAIM = IdentifierClaimRow.__table__
INDEX_TABLES = (TokenIndexRow.__table__, StringIndexRow.__table__, DateIndexRow.__table__, ReferenceIndexRow.__table__)

ID_PATTERN = re.compile(r"^[A-Za-z0-9\-.]{1,64}$")
# Built once: the most frequent statement of all. Building a select costs
# more client CPU than running it (about 0.14 ms a read in this process).
_CURRENT = select(RESOURCE.c.version, RESOURCE.c.last_updated, RESOURCE.c.content, RESOURCE.c.deleted).where(
    RESOURCE.c.res_type == bindparam("rtype"), RESOURCE.c.res_id == bindparam("res_id")
)


class RetryableConflict(Conflict):
    """A concurrent writer claimed the same identifier first; retry the unit."""


def utcnow() -> datetime:
    return datetime.now(timezone.utc).replace(tzinfo=None)


def format_instant(moment: datetime) -> str:
    return moment.replace(tzinfo=timezone.utc).isoformat(timespec="microseconds").replace("+00:00", "Z")


@dataclass(frozen=True)
class Stored:
    """One stored version of a resource."""

    rtype: str
    id: str
    version: int
    last_updated: datetime
    content: dict[str, Any] | None  # None for a deletion
    method: str = "create"

    @property
    def etag(self) -> str:
        return f'W/"{self.version}"'

    @property
    def deleted(self) -> bool:
        return self.content is None


@dataclass(frozen=True)
class WriteResult:
    """What a write did: 201 created, 200 updated or matched, 204 deleted or no-op."""

    status: int
    stored: Stored


@dataclass
class SearchPage:
    resources: list[Stored]
    has_next: bool
    total: int | None = None
    included: list[Stored] = field(default_factory=list)


def parse_etag(value: str) -> int:
    match = re.fullmatch(r'\s*(?:W/)?"?(\d+)"?\s*', value)
    if not match:
        raise PreconditionFailed(f"If-Match {value!r} is not a version ETag such as W/\"3\"")
    return int(match.group(1))


def _strip_meta(resource: dict) -> dict:
    body = {k: v for k, v in resource.items() if k != "meta"}
    meta = {k: v for k, v in (resource.get("meta") or {}).items() if k not in ("versionId", "lastUpdated")}
    if meta:
        body["meta"] = meta
    return body


class WriteListener(Protocol):
    """Work that must commit or roll back with the resources (outbox jobs, audit).

    `after_write` runs for every version a unit stores, `before_commit` once when
    the unit's work is done, just before its buffered rows are flushed and it
    commits. Both may add rows through `writer.conn` (at once) or
    `writer.insert_later` (with the unit's own rows); raising aborts the whole
    unit.
    """

    def after_write(self, writer: "Writer", stored: Stored, previous: Stored | None) -> None: ...

    def before_commit(self, writer: "Writer") -> None: ...


class WriteGuard(Protocol):
    """Access control on writes: raises to refuse, returns the resource to store (possibly stamped)."""

    def on_write(self, rtype: str, action: str, resource: dict | None, current: Stored | None) -> dict | None: ...


class FhirStore:
    def __init__(
        self,
        engine: Engine,
        *,
        clock: Callable[[], datetime] = utcnow,
        new_id: Callable[[], str] = time_ordered_id,
        listeners: Sequence[WriteListener] = (),
    ):
        self.engine = engine
        self.reads = reader(engine)
        self.clock = clock
        self.new_id = new_id
        self.listeners = list(listeners)
        self._write_lock = threading.Lock() if engine.dialect.name == "sqlite" else nullcontext()

    # ------------------------------------------------------------------ reads

    def read(self, rtype: str, res_id: str) -> Stored:
        with self.reads.connect() as conn:
            row = conn.execute(_CURRENT, {"rtype": rtype, "res_id": res_id}).first()
        if row is None:
            raise NotFound(f"{rtype}/{res_id} is not known")
        if row.deleted:
            raise Gone(f"{rtype}/{res_id} was deleted (version {row.version})")
        return Stored(rtype, res_id, row.version, row.last_updated, row.content)

    def vread(self, rtype: str, res_id: str, version: int) -> Stored:
        with self.reads.connect() as conn:
            row = conn.execute(
                _versions_with_content().where(
                    VERSION.c.res_type == rtype, VERSION.c.res_id == res_id, VERSION.c.version == version
                )
            ).first()
        if row is None:
            raise NotFound(f"{rtype}/{res_id} has no version {version}")
        if row.method == "delete":
            raise Gone(f"Version {version} of {rtype}/{res_id} is a deletion")
        return Stored(rtype, res_id, version, row.last_updated, row.content, row.method)

    def history(
        self,
        rtype: str,
        res_id: str | None = None,
        *,
        since: datetime | None = None,
        count: int = 20,
        offset: int = 0,
    ) -> tuple[list[Stored], bool]:
        """Versions newest first; the flag says whether more follow."""
        stmt = _versions_with_content().where(VERSION.c.res_type == rtype)
        if res_id is not None:
            stmt = stmt.where(VERSION.c.res_id == res_id)
        if since is not None:
            stmt = stmt.where(VERSION.c.last_updated >= since)
        stmt = stmt.order_by(VERSION.c.last_updated.desc(), VERSION.c.res_id, VERSION.c.version.desc())
        with self.reads.connect() as conn:
            if res_id is not None and not conn.execute(
                select(RESOURCE.c.version).where(RESOURCE.c.res_type == rtype, RESOURCE.c.res_id == res_id)
            ).first():
                raise NotFound(f"{rtype}/{res_id} is not known")
            rows = conn.execute(stmt.offset(offset).limit(count + 1)).all()
        versions = [Stored(rtype, r.res_id, r.version, r.last_updated, r.content, r.method) for r in rows[:count]]
        return versions, len(rows) > count

    def search(self, query: SearchQuery, conn: Connection | None = None) -> SearchPage:
        with self._connection(conn) as c:
            total = c.execute(sql_search.count_select(query)).scalar_one() if (query.total or query.summary_count) else None
            if query.summary_count:
                return SearchPage([], False, total)
            rows = c.execute(sql_search.page_select(query)).all()
            found = [Stored(query.rtype, r.res_id, r.version, r.last_updated, r.content) for r in rows[: query.count]]
            page = SearchPage(found, len(rows) > query.count, total)
            page.included = self._includes(c, query, found)
        return page

    def compartment(self, patient_id: str, types: tuple[str, ...] | None = None) -> list[Stored]:
        """Everything in one patient's compartment: one query on the compartment index."""
        return self._compartments(RESOURCE.c.patient_id == patient_id, types)

    def compartments(self, patient_ids: Select, types: tuple[str, ...] | None = None) -> list[Stored]:
        """Everything in the compartments of the patients `patient_ids` selects, in one query."""
        return self._compartments(RESOURCE.c.patient_id.in_(patient_ids), types)

    def compartments_by(self, statement: Select, params: dict[str, Any]) -> list[Stored]:
        """Run a statement `compartments_statement` built once (a request's
        read then builds and hashes no SQL expression of its own)."""
        with self.reads.connect() as conn:
            rows = conn.execute(statement, params).all()
        return [Stored(r.res_type, r.res_id, r.version, r.last_updated, r.content) for r in rows]

    def _compartments(self, which: ColumnElement[bool], types: tuple[str, ...] | None) -> list[Stored]:
        with self.reads.connect() as conn:
            rows = conn.execute(compartments_statement(which, types)).all()
        return [Stored(r.res_type, r.res_id, r.version, r.last_updated, r.content) for r in rows]

    def _includes(self, conn: Connection, query: SearchQuery, found: list[Stored]) -> list[Stored]:
        if not found or not (query.includes or query.revincludes):
            return []
        wanted: set[tuple[str, str]] = set()
        ids = [s.id for s in found]
        for inc in query.includes:
            if inc.source_type != query.rtype:
                continue
            refs = conn.execute(
                select(ReferenceIndexRow.target_type, ReferenceIndexRow.target_id).where(
                    ReferenceIndexRow.res_type == query.rtype,
                    ReferenceIndexRow.param == inc.param.name,
                    ReferenceIndexRow.res_id.in_(ids),
                )
            ).all()
            wanted |= {(t, i) for t, i in refs if inc.target_type in (None, t)}
        for inc in query.revincludes:
            refs = conn.execute(
                select(ReferenceIndexRow.res_type, ReferenceIndexRow.res_id).where(
                    ReferenceIndexRow.res_type == inc.source_type,
                    ReferenceIndexRow.param == inc.param.name,
                    ReferenceIndexRow.target_type == query.rtype,
                    ReferenceIndexRow.target_id.in_(ids),
                )
            ).all()
            wanted |= {(t, i) for t, i in refs}
        wanted -= {(query.rtype, i) for i in ids}
        if not wanted:
            return []
        rows = conn.execute(
            select(RESOURCE.c.res_type, RESOURCE.c.res_id, RESOURCE.c.version, RESOURCE.c.last_updated, RESOURCE.c.content).where(
                tuple_(RESOURCE.c.res_type, RESOURCE.c.res_id).in_(sorted(wanted)), RESOURCE.c.deleted.is_(False)
            )
        ).all()
        included = [Stored(r.res_type, r.res_id, r.version, r.last_updated, r.content) for r in rows]
        return [s for s in included if query.visible(s)] if query.visible else included

    @contextmanager
    def _connection(self, conn: Connection | None) -> Iterator[Connection]:
        if conn is not None:
            yield conn
        else:
            with self.reads.connect() as fresh:
                yield fresh

    # ----------------------------------------------------------------- writes

    @contextmanager
    def writer(self, *, guard: "WriteGuard | None" = None, context: Any = None) -> Iterator["Writer"]:
        """A unit of work: commits when the block ends, rolls back on any error.

        `guard` checks (and may stamp) every write; `context` is handed to the
        listeners (the audit trail keeps the request's interaction there).
        """
        # SQLite has one writer at a time; threads of this process queue on a lock
        # instead of polling the database file's lock with sleeps.
        with self._write_lock, self.engine.connect().execution_options(**{WRITE_OPTION: True}) as conn:
            with conn.begin():
                w = Writer(self, conn, guard=guard, context=context)
                yield w
                # Listeners first: the rows they hand to `insert_later` (the AuditEvent)
                # then go out with the unit's resources in one statement.
                for listener in self.listeners:
                    listener.before_commit(w)
                w.flush()
            for listener in self.listeners:
                after_commit = getattr(listener, "after_commit", None)
                if after_commit is not None:
                    after_commit(w)

    def run_unit(self, work: Callable[["Writer"], Any], *, attempts: int = 3, guard: "WriteGuard | None" = None, context: Any = None) -> Any:
        """Run `work` in a writer, retrying when a concurrent writer won an identifier race."""
        for attempt in range(attempts):
            try:
                with self.writer(guard=guard, context=context) as w:
                    return work(w)
            except RetryableConflict:
                if attempt == attempts - 1:
                    raise
        raise AssertionError("unreachable")


@dataclass
class _Pending:
    rtype: str
    id: str
    content: dict
    path: str


class Writer:
    """One database transaction's worth of FHIR writes."""

    def __init__(self, store: FhirStore, conn: Connection, *, guard: WriteGuard | None = None, context: Any = None):
        self.store = store
        self.conn = conn
        self.guard = guard
        self.context = context
        self.contexts: list[Any] = [] if context is None else [context]  # every context the unit acted for
        self.now = store.clock()
        self._resources: list[dict] = []
        self._versions: list[dict] = []
        self._index = IndexRows()
        self._created: dict[tuple[str, str], _Pending] = {}
        self._claims: dict[tuple[str, str, str], _Pending] = {}
        self._claim_cache: dict[tuple[str, str, str], str | None] = {}
        self._locked: dict[tuple[str, str], Stored | None] = {}  # rows read_current_many read, each taken by one read
        self._live: set[tuple[str, str]] = set()  # resources this unit read as stored and not deleted
        self._claims_checked = 0  # buffered claims `check` has already looked up
        self._refs_to_check: list[tuple[str, str, str, str]] = []  # type, id, referring path, reference
        self.written: list[Stored] = []  # every version this unit stored, in order
        self._later: list[tuple[Table | Upsert, list[dict]]] = []  # listeners' rows, inserted at the next flush

    def act_for(self, guard: WriteGuard | None, context: Any) -> None:
        """Write from now on for another caller (a unit holding several requests):
        its rights check the writes, its context gets the listeners' notes."""
        self.guard = guard
        self.context = context
        if context is not None and all(c is not context for c in self.contexts):  # by identity: two requests may look alike
            self.contexts.append(context)

    # -- conditional lookups

    def prefetch_claims(self, keys: list[tuple[str, str, str]]) -> None:
        """Look up many (type, system, value) identifiers in as few queries as possible."""
        keys = [k for k in dict.fromkeys(keys) if k not in self._claim_cache]
        found = self._claim_owners(keys)
        for key in keys:
            self._claim_cache[key] = found.get(key)

    def _claim_owners(self, keys: list[tuple[str, str, str]]) -> dict[tuple[str, str, str], str]:
        return key_reads.claim_owners(self.conn, keys)

    def claim_owner(self, key: tuple[str, str, str]) -> str | None:
        """The stored owner of an identifier `prefetch_claims` looked up (None: free, or not looked up)."""
        return self._claim_cache.get(key)

    def find(self, query: SearchQuery) -> list[tuple[str, str]]:
        """Ids matching a conditional request's criteria, counting this unit's own writes.

        Criteria made only of `identifier` tokens with a system are answered from
        the claim table (and from this unit's pending creates) without a search.
        """
        keys = identifier_keys(query)
        if keys is not None:
            self.prefetch_claims(keys)
            ids: list[str] = []
            for key in keys:
                pending = self._claims.get(key)
                owner = pending.id if pending else self._claim_cache.get(key)
                if owner and owner not in ids:
                    ids.append(owner)
            # An AND of identifiers matches only when they name the same resource.
            if len(query.criteria) > 1 and len(ids) > 1:
                return []
            return [(query.rtype, i) for i in ids]
        self.flush()
        probe = SearchQuery(query.rtype, criteria=query.criteria, count=2)
        return [(s.rtype, s.id) for s in self.store.search(probe, self.conn).resources]

    # -- operations

    def create(
        self,
        resource: dict,
        *,
        path: str | None = None,
        res_id: str | None = None,
        if_none_exist: SearchQuery | None = None,
        references: list[str] | None = None,
    ) -> WriteResult:
        """Store a new resource (or, with `if_none_exist`, return the one that matches).

        `references` lists the resource's reference strings when the caller has
        already walked it; otherwise the resource is walked here.
        """
        rtype = resource["resourceType"]
        path = path or rtype
        if if_none_exist is not None:
            matches = self.find(if_none_exist)
            if len(matches) > 1:
                raise PreconditionFailed(
                    f"If-None-Exist matched {len(matches)} {rtype} resources; the criteria are not selective enough",
                    [Issue("Conditional create matched more than one resource", path, "multiple-matches")],
                )
            if matches:
                return WriteResult(200, self._current(rtype, matches[0][1]))
        res_id = res_id or self.store.new_id()
        return self._store_new(rtype, res_id, resource, path, version=1, method="create", references=references)

    def update(
        self,
        rtype: str,
        res_id: str,
        resource: dict,
        *,
        path: str | None = None,
        if_match: str | None = None,
        references: list[str] | None = None,
    ) -> WriteResult:
        path = path or f"{rtype}/{res_id}"
        if not ID_PATTERN.match(res_id):
            raise InvalidResource(f"{res_id!r} is not a valid resource id", [Issue("Invalid id", f"{path}.id")])
        self.flush()
        current = self._lock_current(rtype, res_id)
        if if_match is not None:
            expected = parse_etag(if_match)
            if current is None or current.version != expected:
                have = "does not exist" if current is None else f"is at version {current.version}"
                raise PreconditionFailed(f"If-Match expected version {expected} but {rtype}/{res_id} {have}")
        if self.guard is not None:
            resource = self.guard.on_write(rtype, "update" if current is not None else "create", resource, current)
        if current is None:
            return self._store_new(rtype, res_id, resource, path, version=1, method="create", references=references, guarded=True)
        if current.deleted:
            self._delete_index(rtype, res_id)
            return self._store_new(rtype, res_id, resource, path, version=current.version + 1, method="update", existing=True, references=references)
        if _strip_meta({**resource, "id": res_id}) == _strip_meta(current.content or {}):
            return WriteResult(200, current)  # an identical re-send makes no new version
        content = self._stamp(resource, res_id, current.version + 1)
        self._check_claims(rtype, res_id, content, path)
        changed = self.conn.execute(
            update(RESOURCE)
            .where(RESOURCE.c.res_type == rtype, RESOURCE.c.res_id == res_id, RESOURCE.c.version == current.version)
            .values(
                version=current.version + 1,
                last_updated=self.now,
                deleted=False,
                patient_id=compartment_patient(rtype, res_id, content),
                content=content,
            )
        ).rowcount
        if changed != 1:
            raise VersionConflict(f"{rtype}/{res_id} was changed by another request; read it again and retry")
        self._archive(current)
        self._delete_index(rtype, res_id)
        self._versions.append(self._version_row(rtype, res_id, current.version + 1, "update"))
        self._index.extend(index_rows(rtype, res_id, content))
        self._queue_reference_checks(content, path, references)
        return WriteResult(200, self._written(Stored(rtype, res_id, current.version + 1, self.now, content, "update"), current))

    def update_many(self, rtype: str, resources: list[dict]) -> list[WriteResult]:
        """`update` (or create) many resources of one type, each stored as `update`
        stores it, in a few statements for all: current versions locked in one
        query, one UPDATE and one archive statement each sent together, only
        the index rows that changed deleted and inserted (`replace_index_rows`),
        new rows in one flush.
        For a unit without a guard (the master patient index's golden Patients)."""
        ids = [r["id"] for r in resources]
        if self.guard is not None or len(resources) < 2 or len(set(ids)) != len(ids) or not all(ID_PATTERN.match(i) for i in ids):
            return [self.update(rtype, r["id"], r) for r in resources]
        self.flush()
        current = {r.res_id: Stored(rtype, r.res_id, r.version, r.last_updated, None if r.deleted else r.content)
                   for r in key_reads.current_rows(self.conn, [(rtype, i) for i in ids], lock=True)}
        results: dict[str, WriteResult] = {}
        changed: list[tuple[Stored, dict]] = []
        for resource in resources:
            res_id = resource["id"]
            found = current.get(res_id)
            if found is None:
                results[res_id] = self._store_new(rtype, res_id, resource, f"{rtype}/{res_id}", version=1, method="create", guarded=True)
                continue
            if found.deleted:
                continue  # revived one by one below
            if _strip_meta({**resource, "id": res_id}) == _strip_meta(found.content or {}):
                results[res_id] = WriteResult(200, found)  # an identical re-send makes no new version
                continue
            content = self._stamp(resource, res_id, found.version + 1)
            self._check_claims(rtype, res_id, content, f"{rtype}/{res_id}")
            changed.append((found, content))
        if changed:
            updated = self.conn.execute(
                update(RESOURCE)
                .where(RESOURCE.c.res_type == rtype, RESOURCE.c.res_id == bindparam("b_id"), RESOURCE.c.version == bindparam("b_version"))
                .values(version=bindparam("b_new"), last_updated=self.now, deleted=False, patient_id=bindparam("b_patient"), content=bindparam("b_content")),
                [{"b_id": s.id, "b_version": s.version, "b_new": s.version + 1, "b_patient": compartment_patient(rtype, s.id, c), "b_content": c}
                 for s, c in changed],
            ).rowcount
            if updated not in (-1, len(changed)):
                raise VersionConflict(f"{len(changed) - updated} {rtype} resources were changed by another request; read them again and retry")
            archived = [{"b_id": s.id, "b_version": s.version, "b_content": s.content} for s, _c in changed if s.content is not None]
            if archived:  # the superseded versions' content, into their history rows (as `_archive`)
                self.conn.execute(
                    update(VERSION).where(VERSION.c.res_type == rtype, VERSION.c.res_id == bindparam("b_id"), VERSION.c.version == bindparam("b_version"))
                    .values(content=bindparam("b_content")),
                    archived,
                )
            new_rows = IndexRows()
            for found, content in changed:
                new_rows.extend(index_rows(rtype, found.id, content))
            # Only the rows that changed are deleted and inserted (a golden gaining a member: one `link` row).
            self._index.extend(replace_index_rows(self.conn, (*INDEX_TABLES, CLAIM), rtype, [s.id for s, _c in changed], new_rows))
            for found, content in changed:
                self._versions.append(self._version_row(rtype, found.id, found.version + 1, "update"))
                self._queue_reference_checks(content, f"{rtype}/{found.id}", None)
                results[found.id] = WriteResult(200, self._written(Stored(rtype, found.id, found.version + 1, self.now, content, "update"), found))
        for resource in resources:
            if resource["id"] not in results:
                results[resource["id"]] = self.update(rtype, resource["id"], resource)
        return [results[i] for i in ids]

    def delete(self, rtype: str, res_id: str, *, path: str | None = None) -> WriteResult:
        path = path or f"{rtype}/{res_id}"
        self.flush()
        current = self._lock_current(rtype, res_id)
        if current is None:
            raise NotFound(f"{rtype}/{res_id} is not known")
        if current.deleted:
            return WriteResult(204, current)
        if self.guard is not None:
            self.guard.on_write(rtype, "delete", None, current)
        referrers = self.conn.execute(
            select(ReferenceIndexRow.res_type, ReferenceIndexRow.res_id)
            .where(ReferenceIndexRow.target_type == rtype, ReferenceIndexRow.target_id == res_id)
            .limit(5)
        ).all()
        if referrers:
            names = ", ".join(f"{t}/{i}" for t, i in referrers)
            raise Conflict(
                f"{rtype}/{res_id} cannot be deleted: it is referenced by {names}",
                [Issue(f"Referenced by {names}", path, "conflict")],
            )
        version = current.version + 1
        self.conn.execute(
            update(RESOURCE)
            .where(RESOURCE.c.res_type == rtype, RESOURCE.c.res_id == res_id, RESOURCE.c.version == current.version)
            .values(version=version, last_updated=self.now, deleted=True, content=None)
        )
        self._archive(current)
        self._delete_index(rtype, res_id)
        self._live.discard((rtype, res_id))
        self._versions.append(self._version_row(rtype, res_id, version, "delete"))
        return WriteResult(204, self._written(Stored(rtype, res_id, version, self.now, None, "delete"), current))

    def read(self, rtype: str, res_id: str) -> Stored:
        """A read inside the unit, seeing its own writes."""
        return self._current(rtype, res_id)

    # -- flushing

    def check(self) -> None:
        """Check what was buffered since the last check (new identifiers free,
        references resolving) and keep the rows buffered: a unit holding
        several transactions checks each one at its end, so a failure is laid
        on the transaction that caused it, and writes all their rows in one
        statement when it flushes."""
        self._verify_new_claims()
        self._verify_references()
        self._refs_to_check = []

    def flush(self) -> None:
        """Check pending claims and references, then write buffered rows."""
        if not self._resources and not self._versions and not self._refs_to_check and not self._later:
            return
        self.check()
        index = self._index
        try:
            insert_rows(self.conn, [
                (RESOURCE, self._resources),
                (VERSION, self._versions),
                *zip(INDEX_TABLES, (index.token, index.string, index.date, index.reference)),
                (CLAIM, index.claims),
                *self._later,
            ])
        except IntegrityError as exc:
            raise RetryableConflict("Another request stored the same identifier at the same time") from exc
        self._resources, self._versions, self._index = [], [], IndexRows()
        self._later, self._claims_checked = [], 0

    def insert_later(self, table: Table | Upsert, rows: list[dict]) -> None:
        """Rows of another table to insert (or upsert) with this unit's next flush (before it commits)."""
        self._later.append((table, rows))

    # -- internals

    def _stamp(self, resource: dict, res_id: str, version: int) -> dict:
        # A shallow copy: callers hand over the parsed request body, which nothing else changes.
        meta = {**(resource.get("meta") or {}), "versionId": str(version), "lastUpdated": format_instant(self.now)}
        return {"resourceType": resource["resourceType"], "id": res_id, "meta": meta, **{k: v for k, v in resource.items() if k not in ("resourceType", "id", "meta")}}

    def _version_row(self, rtype: str, res_id: str, version: int, method: str) -> dict:
        # The current version's content lives in `resource` only; it is copied
        # here by `_archive` when a newer version supersedes it.
        return {"res_type": rtype, "res_id": res_id, "version": version, "last_updated": self.now, "method": method, "content": None}

    def _archive(self, superseded: Stored) -> None:
        """Keep the content of a version that is no longer current in its history row."""
        if superseded.content is None:
            return
        self.flush()  # the history row may still be buffered
        self.conn.execute(
            update(VERSION)
            .where(VERSION.c.res_type == superseded.rtype, VERSION.c.res_id == superseded.id, VERSION.c.version == superseded.version)
            .values(content=superseded.content)
        )

    def _store_new(
        self,
        rtype: str,
        res_id: str,
        resource: dict,
        path: str,
        *,
        version: int,
        method: str,
        existing: bool = False,
        references: list[str] | None = None,
        guarded: bool = False,
    ) -> WriteResult:
        if (rtype, res_id) in self._created:
            raise InvalidResource(f"{rtype}/{res_id} is written twice in one request", [Issue("Duplicate resource in request", path)])
        if self.guard is not None and not (existing or guarded):
            resource = self.guard.on_write(rtype, "create", resource, None)
        content = self._stamp(resource, res_id, version)
        pending = _Pending(rtype, res_id, content, path)
        for system, value in claimed_identifiers(content):
            key = (rtype, system, value)
            other = self._claims.get(key)
            if other is not None:
                raise DuplicateIdentifier(
                    f"{path} repeats identifier {system}|{value} of {other.path}",
                    [Issue(f"Identifier {system}|{value} is already used by {other.path} in this request", f"{path}.identifier", "duplicate")],
                )
            self._claims[key] = pending
        self._created[(rtype, res_id)] = pending
        row = {
            "res_type": rtype,
            "res_id": res_id,
            "version": version,
            "last_updated": self.now,
            "deleted": False,
            "patient_id": compartment_patient(rtype, res_id, content),
            "content": content,
        }
        if existing:
            self.conn.execute(
                update(RESOURCE).where(RESOURCE.c.res_type == rtype, RESOURCE.c.res_id == res_id).values(**row)
            )
        else:
            self._resources.append(row)
        self._versions.append(self._version_row(rtype, res_id, version, method))
        self._index.extend(index_rows(rtype, res_id, content))
        self._queue_reference_checks(content, path, references)
        return WriteResult(201, self._written(Stored(rtype, res_id, version, self.now, content, method), None))

    def _written(self, stored: Stored, previous: Stored | None) -> Stored:
        self.written.append(stored)
        for listener in self.store.listeners:
            listener.after_write(self, stored, previous)
        return stored

    def _queue_reference_checks(self, content: dict, path: str, references: list[str] | None) -> None:
        for ref in _all_references(content) if references is None else references:
            parsed = parse_reference(ref)
            if parsed and not ref.startswith(("http://", "https://")):
                self._refs_to_check.append((*parsed, path, ref))

    def _verify_references(self) -> None:
        """Every relative reference must name a stored (or in-request) resource.

        One this unit already read as stored needs no second look, as a
        reference is checked without a row lock either way."""
        missing = [(t, i, p, r) for t, i, p, r in self._refs_to_check if (t, i) not in self._created and (t, i) not in self._live]
        if not missing:
            return
        found = key_reads.live_resources(self.conn, ((t, i) for t, i, _, _ in missing))
        issues = [Issue(f"Reference {ref} does not resolve to a stored resource", path, "not-found") for t, i, path, ref in missing if (t, i) not in found]
        if issues:
            raise InvalidResource(f"{issues[0].expression}: {issues[0].message}", issues)

    def _verify_new_claims(self) -> None:
        # Keys this unit already looked up (conditional creates) need no second query;
        # a claim taken since then by a concurrent writer fails the insert instead.
        claims = self._index.claims[self._claims_checked:]
        self._claims_checked = len(self._index.claims)
        unknown = [(c["res_type"], c["system"], c["value"]) for c in claims]
        owners = self._claim_owners([k for k in unknown if k not in self._claim_cache])
        owners |= {k: v for k, v in self._claim_cache.items() if v is not None}
        issues = []
        for claim in claims:
            key = (claim["res_type"], claim["system"], claim["value"])
            owner = owners.get(key)
            if owner and owner != claim["res_id"]:
                pending = self._claims.get(key)
                where = pending.path if pending else claim["res_type"]
                issues.append(
                    Issue(
                        f"Identifier {claim['system']}|{claim['value']} is already held by {claim['res_type']}/{owner}",
                        f"{where}.identifier",
                        "duplicate",
                    )
                )
        if issues:
            raise DuplicateIdentifier(issues[0].message, issues)

    def _check_claims(self, rtype: str, res_id: str, content: dict, path: str) -> None:
        """For an update: the new identifiers must not belong to another resource."""
        for system, value in claimed_identifiers(content):
            key = (rtype, system, value)
            pending = self._claims.get(key)
            if pending is not None and pending.id != res_id:
                raise DuplicateIdentifier(f"Identifier {system}|{value} is already used by {pending.path} in this request")
            self._claims[key] = _Pending(rtype, res_id, content, path)

    def _delete_index(self, rtype: str, res_id: str) -> None:
        key_reads.delete_rows_of(self.conn, (*INDEX_TABLES, CLAIM), rtype, [res_id])

    def read_current_many(self, keys: list[tuple[str, str]], *, lock: bool) -> None:
        """Read the current versions of many resources in one query; the next
        read of each in this unit uses the row read.

        With `lock`, PostgreSQL locks the rows, in one sorted order so that
        concurrent units cannot deadlock. A row lock writes the row's page (and,
        first after a checkpoint, a copy of the whole page to the WAL), so reads
        that only answer with the resource do without it."""
        wanted = sorted({k for k in keys if k not in self._created and k not in self._locked})
        if not wanted or (lock and len(wanted) < 2):
            return  # one row to lock: the locking read itself is the one query
        found = {
            (row.res_type, row.res_id): Stored(row.res_type, row.res_id, row.version, row.last_updated, None if row.deleted else row.content)
            for row in key_reads.current_rows(self.conn, wanted, lock=lock)
        }
        for key in wanted:
            self._locked[key] = found.get(key)
        self._live.update(key for key, stored in found.items() if not stored.deleted)

    def _lock_current(self, rtype: str, res_id: str) -> Stored | None:
        if (rtype, res_id) in self._locked:
            # Taken once: a later read in this unit (after a write here) goes to the database again.
            return self._locked.pop((rtype, res_id))
        stmt = select(RESOURCE.c.version, RESOURCE.c.last_updated, RESOURCE.c.content, RESOURCE.c.deleted).where(
            RESOURCE.c.res_type == rtype, RESOURCE.c.res_id == res_id
        )
        if self.conn.dialect.name == "postgresql":
            stmt = stmt.with_for_update()
        row = self.conn.execute(stmt).first()
        if row is None:
            return None
        return Stored(rtype, res_id, row.version, row.last_updated, None if row.deleted else row.content)

    def _current(self, rtype: str, res_id: str) -> Stored:
        pending = self._created.get((rtype, res_id))
        if pending is not None:
            meta = pending.content["meta"]
            return Stored(rtype, res_id, int(meta["versionId"]), self.now, pending.content)
        current = self._lock_current(rtype, res_id)
        if current is None:
            raise NotFound(f"{rtype}/{res_id} is not known")
        if current.deleted:
            raise Gone(f"{rtype}/{res_id} was deleted")
        return current


def compartments_statement(which: ColumnElement[bool], types: tuple[str, ...] | None = None) -> Select:
    """The live resources of the compartments `which` selects, in a stable order."""
    stmt = select(RESOURCE.c.res_type, RESOURCE.c.res_id, RESOURCE.c.version, RESOURCE.c.last_updated, RESOURCE.c.content).where(
        which, RESOURCE.c.deleted.is_(False)
    )
    if types:
        stmt = stmt.where(RESOURCE.c.res_type.in_(types))
    return stmt.order_by(RESOURCE.c.res_type, RESOURCE.c.res_id)


def _versions_with_content():
    """Version rows with their content: archived in the row, or current in `resource`."""
    current = and_(
        RESOURCE.c.res_type == VERSION.c.res_type,
        RESOURCE.c.res_id == VERSION.c.res_id,
        RESOURCE.c.version == VERSION.c.version,
    )
    return select(
        VERSION.c.res_id,
        VERSION.c.version,
        VERSION.c.last_updated,
        VERSION.c.method,
        func.coalesce(VERSION.c.content, RESOURCE.c.content).label("content"),
    ).select_from(VERSION.outerjoin(RESOURCE, current))


def identifier_keys(query: SearchQuery) -> list[tuple[str, str, str]] | None:
    """(type, system, value) keys when every criterion is `identifier=system|value`."""
    if not query.criteria:
        return None
    keys = []
    for crit in query.criteria:
        if crit.param.name != "identifier" or crit.modifier or len(crit.values) != 1:
            return None
        token: TokenValue = crit.values[0]
        if not token.system or not token.code:
            return None
        keys.append((query.rtype, token.system, token.code))
    return keys


def _all_references(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "reference" and isinstance(value, str):
                yield value
            else:
                yield from _all_references(value)
    elif isinstance(node, list):
        for item in node:
            yield from _all_references(item)

