"""Receiving one VXU^V04: translate, store through the transaction path, ACK.

Never raises: every outcome is an ACK (AA stored or already stored, AE content
error with nothing stored, AR not accepted or not processable now). A message
whose MSH-10 was already acknowledged AA for the same sender gets that ACK
again without being processed; any other re-send is harmless too, because
every entry is a conditional create or update on business identifiers.

Given the process's `VxuGroups`, messages that arrive together are stored in
one transaction (`vxu_groups`); one that fails there is stored here alone.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from typing import Any
from datetime import datetime, timezone

import orjson
from sqlalchemy import bindparam, select

from vaxhub.errors import Conflict, Forbidden, InputError, VaxhubError
from vaxhub.fhir.hl7v2 import (
    Hl7Finding,
    Hl7Location,
    Hl7MessageError,
    ack_for,
    ack_for_error,
    ack_for_header,
    parse_er7,
    translate_vxu,
    widen_patient_match,
)
from vaxhub.fhir.hl7v2.header import header_fields
from vaxhub.fhir.hl7v2.translate import ReceivedVxu
from vaxhub.fhir.hl7v2.er7 import APPLICATION_INTERNAL_ERROR, DATA_TYPE_ERROR, DUPLICATE_KEY_IDENTIFIER
from vaxhub.hub.ingest.vxu_groups import ALONE, Answer, QueuedMessage, Resent, StoredTogether, VxuGroups
from vaxhub.hub.observability.request_context import current_request_id
from vaxhub.hub.operations.transaction import parse_entries, process_bundle
from vaxhub.hub.storage.import_tables import Hl7MessageRow
from vaxhub.hub.storage.store import FhirStore, WriteGuard, Writer

log = logging.getLogger("vaxhub.hl7v2")
MESSAGES = Hl7MessageRow.__table__
# Built once: every message asks it.
_EARLIER_ACK = select(MESSAGES.c.ack).where(MESSAGES.c.sender == bindparam("sender"), MESSAGES.c.control_id == bindparam("control_id"))
_ENTRY = re.compile(r"Bundle\.entry\[(\d+)\]")


@dataclass(frozen=True)
class VxuOutcome:
    ack: str
    code: str  # AA, AE, AR
    created: int = 0  # resources newly stored
    resent: bool = False


def _utcnow() -> datetime:
    return datetime.now(timezone.utc).replace(tzinfo=None)


def _location(expression: str | None) -> Hl7Location:
    """The segment a stored-side problem came from: entry 0 is the PID, entry n the n-th RXA."""
    match = _ENTRY.search(expression or "")
    index = int(match[1]) if match else 0
    return Hl7Location("PID") if index == 0 else Hl7Location("RXA", index)


def _store_findings(exc: VaxhubError) -> list[Hl7Finding]:
    code = DUPLICATE_KEY_IDENTIFIER if isinstance(exc, Conflict) else DATA_TYPE_ERROR
    return [Hl7Finding(code, issue.message, _location(issue.expression)) for issue in exc.issues]


@dataclass(frozen=True)
class PreparedVxu:
    received: ReceivedVxu
    remember: _Remember
    queued: QueuedMessage | None  # None: stored alone (no groups, or a Bundle that does not parse and is refused there)


class VxuReceiver:
    def __init__(self, store: FhirStore, *, base: str, max_entries: int = 1000, guard: WriteGuard | None = None, interaction: Any = None,
                 groups: VxuGroups | None = None):
        self.store = store
        self.base = base
        self.max_entries = max_entries
        self.guard = guard  # the sender's rights: a site stores only its own records
        self.interaction = interaction  # audited inside the storing transaction
        self.groups = groups  # the process's messages stored together, when given

    def for_sender(self, guard: WriteGuard | None, interaction: Any) -> "VxuReceiver":
        """This receiver for one message: writes checked by `guard`, audited as `interaction`."""
        return VxuReceiver(self.store, base=self.base, max_entries=self.max_entries, guard=guard, interaction=interaction, groups=self.groups)

    def receive(self, text: str) -> VxuOutcome:
        try:
            prepared = self.prepare(text)
            if isinstance(prepared, VxuOutcome):
                return prepared
            together = self.groups is not None and prepared.queued is not None
            return self.finish(prepared, self.groups.store_message(prepared.queued) if together else ALONE)  # type: ignore[union-attr,arg-type]
        except Exception:  # a defect or an unreachable database: the sender should retry later
            log.exception("VXU processing failed")
            finding = Hl7Finding(APPLICATION_INTERNAL_ERROR, "The hub could not process the message now; nothing was stored, send it again later")
            try:
                echo = header_fields(parse_er7(text))
            except Exception:  # noqa: BLE001 - the ACK must go out even for unreadable text
                echo = {}
            return VxuOutcome(ack_for("AR", echo, [finding]), "AR")

    def prepare(self, text: str) -> PreparedVxu | VxuOutcome:
        """Translate the message, ready to be stored (alone or in a group); or its ACK when it cannot be."""
        try:
            received = translate_vxu(text)
        except Hl7MessageError as exc:
            return VxuOutcome(ack_for_error(exc), exc.ack_code)
        header = received.header
        remember = _Remember(header.sender[:255], header.control_id, ack_for_header(header, "AA", received.translation.warnings))
        if self.groups is None:
            return PreparedVxu(received, remember, None)  # stored alone: its Bundle is parsed there
        try:
            _btype, entries, _failures = parse_entries(
                orjson.loads(orjson.dumps(received.translation.bundle)), max_entries=self.max_entries, default_count=20, max_count=500)
        except VaxhubError:
            return PreparedVxu(received, remember, None)  # stored alone, it gets its AE from the same check
        queued = QueuedMessage((remember.sender, remember.control_id), entries, remember.keep, self.base, self.guard, self.interaction,
                               current_request_id())
        return PreparedVxu(received, remember, queued)

    def finish(self, prepared: PreparedVxu, answer: Answer) -> VxuOutcome:
        """The ACK, from a group's answer; a message the group handed back (ALONE) is stored here on its own."""
        header, ack = prepared.received.header, prepared.remember.ack
        if isinstance(answer, Resent):
            return VxuOutcome(answer.ack, "AA", resent=True)
        try:
            response = answer.response if isinstance(answer, StoredTogether) else self._store(prepared.received, prepared.remember)
        except _AlreadyAcknowledged as earlier:
            return VxuOutcome(earlier.ack, "AA", resent=True)
        except (InputError, Conflict) as exc:
            return VxuOutcome(ack_for_header(header, "AE", _store_findings(exc)), "AE")
        except Forbidden as exc:
            # Table 0357 has no code for authorisation; 207 with the reason, and AR: do not resend.
            return VxuOutcome(ack_for_header(header, "AR", [Hl7Finding(APPLICATION_INTERNAL_ERROR, f"Not allowed: {exc.message}")]), "AR")
        created = sum(1 for e in response["entry"] if e["response"]["status"].startswith("201"))
        return VxuOutcome(ack, "AA", created)

    def _store(self, received: ReceivedVxu, remember: _Remember) -> dict:
        try:
            # A copy: the transaction rewrites references in place, and a retry needs the originals.
            return process_bundle(
                self.store, orjson.loads(orjson.dumps(received.translation.bundle)), base=self.base, max_entries=self.max_entries,
                guard=self.guard, interaction=self.interaction, on_unit=remember,
            )
        except (Conflict, InputError) as first:
            # The business identifier missed but another number of the patient is
            # held (a CCCD added later, a shared BHYT): match on any of them.
            if not isinstance(first, Conflict) and not any(i.code == "multiple-matches" for i in first.issues):
                raise
            return process_bundle(
                self.store, widen_patient_match(received.translation), base=self.base, max_entries=self.max_entries,
                guard=self.guard, interaction=self.interaction, on_unit=remember,
            )


class _AlreadyAcknowledged(Exception):
    def __init__(self, ack: str):
        super().__init__("message already acknowledged")
        self.ack = ack


@dataclass(frozen=True)
class _Remember:
    """Run at the start of the storing unit: a message this sender already had
    acknowledged AA is answered with that ACK and nothing is stored; otherwise
    its ACK is kept with the records, in the same commit. Two copies racing
    both miss the check, the second then fails on the message's key and its
    unit runs again, now finding the first's ACK."""

    sender: str
    control_id: str
    ack: str

    def __call__(self, writer: Writer) -> None:
        earlier = writer.conn.execute(_EARLIER_ACK, {"sender": self.sender, "control_id": self.control_id}).scalar()
        if earlier is not None:
            raise _AlreadyAcknowledged(earlier)
        self.keep(writer)

    def keep(self, writer: Writer) -> None:
        """Keep the ACK with the records (a group checked for an earlier one itself)."""
        writer.insert_later(MESSAGES, [{"sender": self.sender, "control_id": self.control_id, "received_at": _utcnow(), "ack": self.ack}])
