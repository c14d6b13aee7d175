"""The audit trail: one FHIR AuditEvent per interaction with health data.

An `Interaction` is filled while a request runs (who, from where, what,
outcome). Writes append their AuditEvent inside the write's own database
transaction, so a stored change always has its record; reads, searches and
refused requests append theirs in a transaction of their own.

Tamper evidence: events are appended to one of `chains` hash chains. Each
event stores its predecessor's hash and a SHA-256 over its own canonical
content and that predecessor hash; each chain's head row holds the last
sequence number and hash. `verify()` recomputes every chain, so an edited,
deleted or re-ordered event, or a cut-off tail, is reported. A chain whose
oldest months were archived (`vaxhub retention run`) is verified from its
`audit_checkpoint` on; the archive files are verified by
`vaxhub.hub.retention.audit_archive.verify_archives`.
"""

from __future__ import annotations

import base64
import hashlib
import random
import re
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Callable

import orjson
from sqlalchemy import Connection, Engine, Table, and_, func, insert, select
from sqlalchemy.exc import IntegrityError

from vaxhub.fhir.search_params import compartment_patient
from vaxhub.hub.audit.group_commit import GroupCommit
from vaxhub.hub.audit.read_chains import ReadChains
from vaxhub.hub.audit.tables import AuditChainHeadRow, AuditCheckpointRow, AuditEventRow, AuditPatientRow
from vaxhub.hub.observability.metrics import AUDIT_EVENTS_PER_COMMIT
from vaxhub.hub.observability.request_context import current_request_id
from vaxhub.hub.security.principal import NOBODY, PATIENT, Principal
from vaxhub.hub.storage.bulk import Upsert, insert_rows
from vaxhub.hub.storage.engine import write_transaction
from vaxhub.hub.storage.ids import time_ordered_hex

GENESIS = "0" * 64
EVENTS = AuditEventRow.__table__
PATIENTS = AuditPatientRow.__table__
# The head row exists and is locked by then: the upsert only moves it on.
MOVE_HEAD = Upsert(AuditChainHeadRow.__table__, ("chain",), ("last_seq", "last_hash"))
# FHIR AuditEvent.action per interaction (hl7.org/fhir/R4/valueset-audit-event-action.html).
ACTION_CODE = {
    "create": "C", "read": "R", "vread": "R", "search": "E", "history": "R", "update": "U",
    "delete": "D", "transaction": "E", "batch": "E", "operation": "E", "export": "R", "issue-certificate": "C",
    "login": "E",
}
# Security events are not REST interactions: a login (token issued or refused) is
# DICOM 110114 User Authentication, subtype 110122 Login (IHE BasicAudit).
DICOM = "http://dicom.nema.org/resources/ontology/DCM"
EVENT_TYPES = {
    "login": ({"system": DICOM, "code": "110114", "display": "User Authentication"}, {"system": DICOM, "code": "110122", "display": "Login"}),
}
# AuditEvent.outcome: 0 success, 4 minor failure (the caller's), 8 serious failure (refused or ours).
SUCCESS, MINOR_FAILURE, SERIOUS_FAILURE = "0", "4", "8"


def outcome_for_status(status: int) -> str:
    if status < 400:
        return SUCCESS
    if status in (401, 403):
        return SERIOUS_FAILURE
    return MINOR_FAILURE if status < 500 else SERIOUS_FAILURE


@dataclass
class Interaction:
    """One REST interaction as the audit trail records it."""

    action: str
    method: str
    path: str
    query: str = ""
    source_ip: str | None = None
    request_id: str = field(default_factory=lambda: current_request_id() or uuid.uuid4().hex)
    principal: Principal = NOBODY
    entities: list[tuple[str, str, int | None]] = field(default_factory=list)
    patients: set[str] = field(default_factory=set)
    outcome: str = SUCCESS
    description: str | None = None
    recorded: bool = False

    def for_entry(self, method: str, rtype: str) -> "Interaction":
        """The interaction of one batch entry: same caller and request, its own action."""
        action = {"GET": "read", "POST": "create", "PUT": "update", "DELETE": "delete"}.get(method, "operation")
        return Interaction(action, method, f"{self.path} [{rtype}]", "", self.source_ip, self.request_id, self.principal)

    def touched(self, rtype: str, res_id: str, version: int | None, content: dict | None) -> None:
        """Note a resource the interaction read or wrote, and whose data it is."""
        self.entities.append((rtype, res_id, version))
        patient = compartment_patient(rtype, res_id, content or {}) if content is not None else None
        if patient:
            self.patients.add(patient)


def _agent(principal: Principal, source_ip: str | None) -> dict[str, Any]:
    human = principal.kind in (PATIENT, "operator")
    agent: dict[str, Any] = {
        "type": {
            "coding": [
                {"system": "http://terminology.hl7.org/CodeSystem/extra-security-role-type", "code": "humanuser" if human else "dataprocessor"}
            ]
        },
        "requestor": True,
        "who": {"reference": f"Patient/{principal.patient_id}"}
        if principal.kind == PATIENT and principal.patient_id
        else {"identifier": {"system": "urn:vaxhub:client", "value": principal.client_id or principal.subject}},
        "name": principal.display,
    }
    if principal.site_code:
        agent["location"] = {"display": f"site {principal.site_code}"}
    if source_ip:
        agent["network"] = {"address": source_ip, "type": "2"}
    return agent


_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def _printable(text: str) -> str:
    """A caller's path or an error message as the trail can store it: PostgreSQL's
    JSONB refuses NUL, and no control character belongs in an audit record."""
    return _CONTROL.sub("\ufffd", text)


def audit_event(interaction: Interaction, event_id: str, recorded: datetime) -> dict[str, Any]:
    """The FHIR R4 AuditEvent for an interaction."""
    entities: list[dict[str, Any]] = [
        {"what": {"reference": f"{t}/{i}" + (f"/_history/{v}" if v else "")}, "type": {"system": "http://hl7.org/fhir/resource-types", "code": t}}
        for t, i, v in interaction.entities
    ]
    entities += [{"what": {"reference": f"Patient/{p}"}, "role": {"system": "http://terminology.hl7.org/CodeSystem/object-role", "code": "1"}} for p in sorted(interaction.patients)]
    if interaction.query:
        entities.append({"type": {"system": "http://terminology.hl7.org/CodeSystem/audit-entity-type", "code": "2"}, "query": _b64(interaction.query)})
    event_type, subtype = EVENT_TYPES.get(interaction.action) or (
        {"system": "http://terminology.hl7.org/CodeSystem/audit-event-type", "code": "rest", "display": "RESTful Operation"},
        {"system": "http://hl7.org/fhir/restful-interaction", "code": interaction.action},
    )
    event: dict[str, Any] = {
        "resourceType": "AuditEvent",
        "id": event_id,
        "type": event_type,
        "subtype": [subtype],
        "action": ACTION_CODE.get(interaction.action, "E"),
        "recorded": recorded.replace(tzinfo=timezone.utc).isoformat().replace("+00:00", "Z"),
        "outcome": interaction.outcome,
        "agent": [_agent(interaction.principal, interaction.source_ip)],
        "source": {"observer": {"display": "vaxhub"}, "type": [{"system": "http://terminology.hl7.org/CodeSystem/security-source-type", "code": "4"}]},
    }
    if interaction.description:
        event["outcomeDesc"] = _printable(interaction.description[:1000])
    event["extension"] = [{"url": "urn:vaxhub:request", "valueString": _printable(f"{interaction.method} {interaction.path} {interaction.request_id}")}]
    if entities:
        event["entity"] = entities
    return event


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def event_hash(prev_hash: str, chain: int, seq: int, event_id: str, recorded: datetime, action: str, outcome: str, client_id: str | None, content: dict) -> str:
    canonical = orjson.dumps(
        {"chain": chain, "seq": seq, "id": event_id, "recorded": recorded.isoformat(), "action": action, "outcome": outcome, "client": client_id, "content": content},
        option=orjson.OPT_SORT_KEYS,
    )
    return hashlib.sha256(prev_hash.encode() + canonical).hexdigest()


@dataclass
class VerifyReport:
    chains: int
    events: int
    problems: list[str]
    archived: int = 0  # events before the checkpoints, verified from their archive files

    @property
    def ok(self) -> bool:
        return not self.problems


class AuditTrail:
    def __init__(self, engine: Engine, *, chains: int = 8, clock: Callable[[], datetime] | None = None):
        self.engine = engine
        self.chains = chains
        self.clock = clock or (lambda: datetime.now(timezone.utc).replace(tzinfo=None))
        self._group = GroupCommit(self._record_together)
        # PostgreSQL: reads append to chains `chains` … `2 × chains - 1` in one statement each.
        self._read_chains = ReadChains(engine, chains, chains, GENESIS) if engine.dialect.name == "postgresql" else None
        # Built once (every transaction that audits runs it): a random head no one holds.
        self._any_free_head = (
            select(AuditChainHeadRow.chain, AuditChainHeadRow.last_seq, AuditChainHeadRow.last_hash)
            .where(AuditChainHeadRow.chain < chains)
            .order_by(func.random()).limit(1).with_for_update(skip_locked=True)
        )

    def append(self, conn: Connection, interaction: Interaction, insert_later: Callable[[Table, list[dict]], None] | None = None) -> str:
        """Append the interaction's AuditEvent in the caller's transaction.

        The chain head is locked now, until this transaction commits; the
        event's rows and the head's new position go out in one statement,
        with the unit's own rows when `insert_later` (a unit of work's
        `Writer.insert_later`) is given."""
        return self.append_all(conn, [interaction], insert_later)[0]

    def append_all(self, conn: Connection, interactions: list[Interaction],
                   insert_later: Callable[[Table, list[dict]], None] | None = None) -> list[str]:
        """`append` for several interactions of one transaction, in order, on one chain head."""
        event_ids, rows = self._chained(conn, interactions)
        if insert_later is not None:
            for target, batch in rows:
                insert_later(target, batch)
        else:
            insert_rows(conn, rows)
        return event_ids

    def record(self, interaction: Interaction) -> str:
        """Append in a transaction of its own (reads, searches, refused requests).

        Returns once the event is committed. Requests of this process that
        record at the same time share one transaction (`GroupCommit`): one
        chain head, one statement and one commit for all of them."""
        return self._group.submit(interaction)

    def _record_together(self, interactions: list[Interaction]) -> list[str]:
        event_ids = None
        if self._read_chains is not None:
            event_ids = self._read_chains.append(lambda chain, seq, prev: self._rows(chain, seq, prev, interactions))
        if event_ids is None:  # SQLite, or every read chain busy: a write's path
            with write_transaction(self.engine) as conn:
                event_ids, rows = self._chained(conn, interactions)
                insert_rows(conn, rows)
        AUDIT_EVENTS_PER_COMMIT.observe(len(interactions))
        for interaction in interactions:
            interaction.recorded = True
        return event_ids

    def _chained(self, conn: Connection, interactions: list[Interaction]) -> tuple[list[str], list[tuple[Table, list[dict]]]]:
        """The rows that append `interactions`, in order, to one chain whose head this transaction now holds."""
        chain, (seq, prev) = self._free_head(conn) or self._locked_head(conn, random.randrange(self.chains))
        return self._rows(chain, seq, prev, interactions)

    def _rows(self, chain: int, seq: int, prev: str, interactions: list[Interaction]) -> tuple[list[str], list[tuple[Table, list[dict]]]]:
        """The rows that append `interactions` after event `seq` (hash `prev`) of `chain`."""
        event_ids: list[str] = []
        events: list[dict] = []
        patients: list[dict] = []
        for interaction in interactions:
            seq += 1
            event_id = time_ordered_hex()
            recorded = self.clock()
            content = audit_event(interaction, event_id, recorded)
            client_id = interaction.principal.client_id or (interaction.principal.subject if interaction.principal.kind != PATIENT else None)
            digest = event_hash(prev, chain, seq, event_id, recorded, interaction.action, interaction.outcome, client_id, content)
            events.append({"chain": chain, "seq": seq, "event_id": event_id, "recorded": recorded, "action": interaction.action,
                           "outcome": interaction.outcome, "client_id": client_id, "content": content, "prev_hash": prev, "hash": digest})
            patients += [{"patient_id": p, "recorded": recorded, "chain": chain, "seq": seq} for p in sorted(interaction.patients)]
            event_ids.append(event_id)
            prev = digest
        return event_ids, [(EVENTS, events), (PATIENTS, patients), (MOVE_HEAD, [{"chain": chain, "last_seq": seq, "last_hash": prev}])]

    def _free_head(self, conn: Connection) -> tuple[int, tuple[int, str]] | None:
        """On PostgreSQL, a chain head no other transaction holds: writers spread
        over the chains instead of queueing behind one that is busy until its
        holder commits. None when every head is held (or not created yet)."""
        if conn.dialect.name != "postgresql":
            return None
        row = conn.execute(self._any_free_head).first()
        return (row.chain, (row.last_seq, row.last_hash)) if row is not None else None

    def _locked_head(self, conn: Connection, chain: int) -> tuple[int, tuple[int, str]]:
        return chain, self._lock_head(conn, chain)

    def _lock_head(self, conn: Connection, chain: int) -> tuple[int, str]:
        stmt = select(AuditChainHeadRow.last_seq, AuditChainHeadRow.last_hash).where(AuditChainHeadRow.chain == chain)
        if conn.dialect.name == "postgresql":
            stmt = stmt.with_for_update()
        row = conn.execute(stmt).first()
        if row is None:
            try:
                with conn.begin_nested():
                    conn.execute(insert(AuditChainHeadRow).values(chain=chain, last_seq=0, last_hash=GENESIS))
            except IntegrityError:
                pass  # another writer created it first
            row = conn.execute(stmt).first()
        return row.last_seq, row.last_hash

    def verify(self) -> VerifyReport:
        """Recompute every chain; report each break with its location."""
        problems: list[str] = []
        events = 0
        with self.engine.connect() as conn:
            heads = {r.chain: (r.last_seq, r.last_hash) for r in conn.execute(select(AuditChainHeadRow))}
            checkpoints = {r.chain: (r.seq, r.hash) for r in conn.execute(select(AuditCheckpointRow))}
            chains = set(heads) | set(checkpoints) | {c for (c,) in conn.execute(select(AuditEventRow.chain).distinct())}
            for chain in sorted(chains):
                # Archived months were verified when archived and are in their files:
                # the live chain resumes after the last archived event.
                archived_seq, prev = checkpoints.get(chain, (0, GENESIS))
                expected_seq = archived_seq + 1
                for row in conn.execute(select(AuditEventRow).where(AuditEventRow.chain == chain).order_by(AuditEventRow.seq)):
                    events += 1
                    where = f"chain {chain} event {row.seq} ({row.event_id})"
                    if row.seq != expected_seq:
                        problems.append(f"{where}: expected sequence {expected_seq}; events are missing")
                    if row.prev_hash != prev:
                        problems.append(f"{where}: does not follow its predecessor")
                    digest = event_hash(row.prev_hash, chain, row.seq, row.event_id, row.recorded, row.action, row.outcome, row.client_id, row.content)
                    if digest != row.hash:
                        problems.append(f"{where}: content does not match its hash (altered)")
                    prev, expected_seq = row.hash, row.seq + 1
                head = heads.get(chain)
                if head is None:
                    problems.append(f"chain {chain}: head record missing")
                elif head != (expected_seq - 1, prev):
                    problems.append(f"chain {chain}: head says event {head[0]} but the chain ends at {expected_seq - 1} (events removed from the end?)")
        return VerifyReport(len(chains), events, problems, sum(seq for seq, _ in checkpoints.values()))

    def search(
        self,
        *,
        patient: str | None = None,
        client: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        action: str | None = None,
        count: int = 50,
        offset: int = 0,
    ) -> tuple[list[dict], bool]:
        stmt = select(AuditEventRow.content)
        if patient:
            # The full key, partition key included, so each month's rows meet their own month's.
            on = and_(AuditPatientRow.chain == AuditEventRow.chain, AuditPatientRow.seq == AuditEventRow.seq, AuditPatientRow.recorded == AuditEventRow.recorded)
            stmt = stmt.join(AuditPatientRow, on).where(AuditPatientRow.patient_id == patient)
            if since:
                stmt = stmt.where(AuditPatientRow.recorded >= since)
            if until:
                stmt = stmt.where(AuditPatientRow.recorded < until)
        if client:
            stmt = stmt.where(AuditEventRow.client_id == client)
        if since:
            stmt = stmt.where(AuditEventRow.recorded >= since)
        if until:
            stmt = stmt.where(AuditEventRow.recorded < until)
        if action:
            stmt = stmt.where(AuditEventRow.action == action)
        stmt = stmt.order_by(AuditEventRow.recorded.desc(), AuditEventRow.event_id).offset(offset).limit(count + 1)
        with self.engine.connect() as conn:
            rows = [r for (r,) in conn.execute(stmt)]
        return rows[:count], len(rows) > count

    def count(self) -> int:
        with self.engine.connect() as conn:
            return conn.execute(select(func.count()).select_from(AuditEventRow)).scalar_one()
