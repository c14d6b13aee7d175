"""VXU^V04 messages stored together: the messages that reach one process
while another group is being stored go into one unit of work.

Hospital systems send one message per dose, and a message alone pays for a
whole transaction: a connection, BEGIN, the check for an earlier ACK, an
audit chain head, COMMIT. Grouped (`GroupCommit`: no timer, so a lone message
is stored at once and groups form only when messages queue), they share one
transaction, one query for earlier ACKs and one chain head; each message
still runs its own transaction Bundle, with its own sender's rights, its own
request id on the jobs it queues, and its own AuditEvent.

A message that fails inside the group is handed back to be stored on its
own, by its own thread, exactly as if it had come alone (its ACK is then AE
or AR, or AA once the widened patient match finds the person), and the group
is stored again without it. A failure the group cannot lay on one message
(the final statement, the database itself) hands every message back.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select

from vaxhub.hub.audit.group_commit import GroupCommit
from vaxhub.hub.observability.metrics import HL7_MESSAGES_PER_UNIT, HL7_SET_ASIDE
from vaxhub.hub.observability.request_context import bound_request_id
from vaxhub.hub.operations.transaction import Entry, prefetch, transaction_in
from vaxhub.hub.storage.import_tables import Hl7MessageRow
from vaxhub.hub.storage.lists import one_of
from vaxhub.hub.storage.store import FhirStore, RetryableConflict, WriteGuard, Writer

log = logging.getLogger("vaxhub.hl7v2")
MESSAGES = Hl7MessageRow.__table__
# Messages per unit: enough to spread the fixed cost thin, few enough that a
# group retried without a failed message redoes little.
MOST_PER_GROUP = 32
# Failed messages a group sets aside before it gives up and hands all back.
MOST_SET_ASIDE = 2


@dataclass
class QueuedMessage:
    """A translated message waiting for its group."""

    key: tuple[str, str]  # (sender, MSH-10 control id)
    entries: list[Entry]  # its transaction Bundle, parsed
    keep: Callable[[Writer], None]  # keeps the message's ACK with its records
    base: str
    guard: WriteGuard | None
    interaction: Any
    request_id: str | None
    _noted: tuple[int, set] | None = field(default=None, repr=False)

    def rewind(self) -> None:
        """Forget what an attempt noted in the interaction: a group stored again notes it again."""
        entities, patients = getattr(self.interaction, "entities", None), getattr(self.interaction, "patients", None)
        if entities is None or patients is None:
            return
        if self._noted is None:
            self._noted = (len(entities), set(patients))
        else:
            del entities[self._noted[0]:]
            patients.intersection_update(self._noted[1])


@dataclass(frozen=True)
class StoredTogether:
    response: dict  # the transaction-response Bundle


@dataclass(frozen=True)
class Resent:
    ack: str  # the ACK this sender already had for the message


ALONE = None  # the message is to be stored on its own
Answer = StoredTogether | Resent | None


class _SetAside(Exception):
    def __init__(self, message: QueuedMessage):
        super().__init__("a message of the group failed")
        self.message = message


class VxuGroups:
    """`store_message(message)` answers StoredTogether, Resent, or ALONE (store it alone now)."""

    def __init__(self, store: FhirStore, *, most: int = MOST_PER_GROUP):
        self.store = store
        self._group: GroupCommit[QueuedMessage, Answer] = GroupCommit(self.store_all, most=most)

    def store_message(self, message: QueuedMessage) -> Answer:
        return self._group.submit(message)

    def store_all(self, messages: list[QueuedMessage]) -> list[Answer]:
        """Store the messages in one unit of work; each one's answer, in order."""
        answers: dict[int, Answer] = {}
        pending: list[QueuedMessage] = []
        keys: set[tuple[str, str]] = set()
        for message in messages:
            if message.key in keys:
                answers[id(message)] = ALONE  # a copy of one in this group: alone, after it, it finds the first's ACK
            else:
                keys.add(message.key)
                pending.append(message)
        set_aside = 0
        while pending:
            try:
                stored = self.store.run_unit(lambda w: self._unit(w, pending))
                HL7_MESSAGES_PER_UNIT.observe(sum(isinstance(a, StoredTogether) for a in stored.values()))
                answers |= stored
                break
            except _SetAside as failed:
                HL7_SET_ASIDE.inc()
                answers[id(failed.message)] = ALONE
                pending = [m for m in pending if m is not failed.message]
                set_aside += 1
                if set_aside > MOST_SET_ASIDE:
                    break
            except Exception as exc:  # noqa: BLE001 - not one message's fault: each finds out alone
                log.warning("a group of %d VXU messages failed (%s: %s); each is stored alone", len(pending), type(exc).__name__, exc)
                break
        for message in messages:
            if answers.get(id(message)) is ALONE:
                message.rewind()  # its interaction as it came: storing alone notes its own
        return [answers.get(id(m), ALONE) for m in messages]

    def _unit(self, writer: Writer, messages: list[QueuedMessage]) -> dict[int, Answer]:
        earlier = _earlier_acks(writer, [m.key for m in messages])
        prefetch(writer, [m.entries for m in messages if m.key not in earlier])
        answers: dict[int, Answer] = {}
        for message in messages:
            message.rewind()
            if message.key in earlier:
                answers[id(message)] = Resent(earlier[message.key])
                continue
            writer.act_for(message.guard, message.interaction)
            with bound_request_id(message.request_id):  # on the jobs the message queues
                try:
                    answers[id(message)] = StoredTogether(transaction_in(writer, message.entries, message.base, message.keep))
                except RetryableConflict:
                    raise  # a concurrent writer took an identifier: the whole group again
                except Exception as exc:
                    raise _SetAside(message) from exc
        return answers


# Built once, its text the same whatever the group's size (`one_of`), so it stays prepared:
# built for each group (its IN lists rendered anew) it cost twice the CPU, 0.5 ms a group.
_EARLIER_ACKS = select(MESSAGES.c.sender, MESSAGES.c.control_id, MESSAGES.c.ack).where(
    one_of(MESSAGES.c.sender, "senders"), one_of(MESSAGES.c.control_id, "control_ids")
)


def _earlier_acks(writer: Writer, keys: list[tuple[str, str]]) -> dict[tuple[str, str], str]:
    """The ACKs already given for any of these messages, in one query."""
    wanted = set(keys)
    rows = writer.conn.execute(_EARLIER_ACKS, {"senders": sorted({s for s, _ in keys}), "control_ids": sorted({c for _, c in keys})})
    return {(r.sender, r.control_id): r.ack for r in rows if (r.sender, r.control_id) in wanted}
