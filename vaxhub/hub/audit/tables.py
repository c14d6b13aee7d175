"""Audit trail tables: hash-chained AuditEvents.

Events are appended to one of several chains (`audit_chain_head` holds each
chain's last sequence number and hash), so that concurrent writers do not all
queue on one lock; each event stores the hash of its chain predecessor and its
own hash over its content, so changing, removing or reordering any event is
detected by `vaxhub audit verify`.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import DateTime, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from vaxhub.hub.storage.tables import CONTENT, Base


class AuditChainHeadRow(Base):
    __tablename__ = "audit_chain_head"

    chain: Mapped[int] = mapped_column(Integer, primary_key=True)
    last_seq: Mapped[int] = mapped_column(Integer)
    last_hash: Mapped[str] = mapped_column(String(64))


class AuditEventRow(Base):
    __tablename__ = "audit_event"

    chain: Mapped[int] = mapped_column(Integer, primary_key=True)
    seq: Mapped[int] = mapped_column(Integer, primary_key=True)
    event_id: Mapped[str] = mapped_column(String(64), unique=True)
    recorded: Mapped[datetime] = mapped_column(DateTime)
    action: Mapped[str] = mapped_column(String(32))
    outcome: Mapped[str] = mapped_column(String(2))  # FHIR AuditEvent.outcome: 0, 4, 8, 12
    client_id: Mapped[str | None] = mapped_column(String(128))
    content: Mapped[dict[str, Any]] = mapped_column(CONTENT)  # the FHIR AuditEvent
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))

    __table_args__ = (
        Index("ix_audit_event_recorded", "recorded"),
        Index("ix_audit_event_client", "client_id", "recorded"),
    )


class AuditPatientRow(Base):
    """Which patients' data an event touched: the index behind `AuditEvent?patient=`."""

    __tablename__ = "audit_patient"

    patient_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    chain: Mapped[int] = mapped_column(Integer, primary_key=True)
    seq: Mapped[int] = mapped_column(Integer, primary_key=True)
