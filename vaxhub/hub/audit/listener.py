"""Writes' AuditEvents, appended inside the write's own transaction."""

from __future__ import annotations

from vaxhub.hub.audit.trail import AuditTrail, Interaction
from vaxhub.hub.storage.store import Stored, Writer


class AuditListener:
    def __init__(self, trail: AuditTrail):
        self.trail = trail

    def after_write(self, writer: Writer, stored: Stored, previous: Stored | None) -> None:
        if isinstance(writer.context, Interaction):
            content = stored.content if stored.content is not None else (previous.content if previous else None)
            writer.context.touched(stored.rtype, stored.id, stored.version, content)

    def before_commit(self, writer: Writer) -> None:
        # A unit may act for several requests (HL7 v2 messages stored together): one event each, chained in order.
        interactions = [c for c in writer.contexts if isinstance(c, Interaction) and not c.recorded]
        if interactions:
            self.trail.append_all(writer.conn, interactions, writer.insert_later)

    def after_commit(self, writer: Writer) -> None:
        for context in writer.contexts:
            if isinstance(context, Interaction):
                context.recorded = True
