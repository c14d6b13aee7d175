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
        if isinstance(writer.context, Interaction) and not writer.context.recorded:
            self.trail.append(writer.conn, writer.context, writer.insert_later)

    def after_commit(self, writer: Writer) -> None:
        if isinstance(writer.context, Interaction):
            writer.context.recorded = True
