"""Audit trail tables: hash-chained AuditEvents.

Events are appended to one of several chains (`audit_chain_head` holds each
chain's last sequence number and hash), so that concurrent writers do not all
queue on one lock; each event stores the hash of its chain predecessor and its
own hash over its content, so changing, removing or reordering any event is
detected by `vaxhub audit verify`.

On PostgreSQL `audit_event` and `audit_patient` are range-partitioned by month
on `recorded` (migration 0013; `vaxhub retention run` keeps partitions ahead
and archives months past retention), so every unique key includes `recorded`.
Archived months leave one `audit_checkpoint` per chain (the last archived
sequence number and hash) from which verification of the live rows resumes,
and one `audit_archive` row per month naming the file that holds them.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, DateTime, Index, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from vaxhub.hub.storage.tables import CONTENT, Base


class AuditChainHeadRow(Base):
    __tablename__ = "audit_chain_head"

    chain: Mapped[int] = mapped_column(Integer, primary_key=True)
    last_seq: Mapped[int] = mapped_column(BigInteger)
    last_hash: Mapped[str] = mapped_column(String(64))


class AuditEventRow(Base):
    __tablename__ = "audit_event"

    # The partition key is part of every unique key (a PostgreSQL rule for
    # partitioned tables); `seq` is 64-bit: 32 bits run out at national scale.
    chain: Mapped[int] = mapped_column(Integer, primary_key=True)
    seq: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    recorded: Mapped[datetime] = mapped_column(DateTime, primary_key=True)
    event_id: Mapped[str] = mapped_column(String(64))
    action: Mapped[str] = mapped_column(String(32))
    outcome: Mapped[str] = mapped_column(String(2))  # FHIR AuditEvent.outcome: 0, 4, 8, 12
    client_id: Mapped[str | None] = mapped_column(String(128))
    content: Mapped[dict[str, Any]] = mapped_column(CONTENT)  # the FHIR AuditEvent
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))

    __table_args__ = (
        UniqueConstraint("event_id", "recorded"),
        Index("ix_audit_event_recorded", "recorded"),
        Index("ix_audit_event_client", "client_id", "recorded"),
        {"postgresql_partition_by": "RANGE (recorded)"},
    )


class AuditPatientRow(Base):
    """Which patients' data an event touched: the index behind `AuditEvent?patient=`."""

    __tablename__ = "audit_patient"

    # (patient, recorded) leads the key: a patient's events newest first are one
    # index range per monthly partition, joined to `audit_event` by its full key.
    patient_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    recorded: Mapped[datetime] = mapped_column(DateTime, primary_key=True)
    chain: Mapped[int] = mapped_column(Integer, primary_key=True)
    seq: Mapped[int] = mapped_column(BigInteger, primary_key=True)

    __table_args__ = ({"postgresql_partition_by": "RANGE (recorded)"},)


class AuditCheckpointRow(Base):
    """Where a chain resumes after its archived (and dropped) beginning."""

    __tablename__ = "audit_checkpoint"

    chain: Mapped[int] = mapped_column(Integer, primary_key=True)
    seq: Mapped[int] = mapped_column(BigInteger)  # the last archived event of the chain
    hash: Mapped[str] = mapped_column(String(64))  # its hash: the next live event's prev_hash
    archived_through: Mapped[datetime] = mapped_column(DateTime)  # end of the newest archived month
    updated: Mapped[datetime] = mapped_column(DateTime)


class AuditArchiveRow(Base):
    """One archived audit month: its file, digest and the chain positions it covers."""

    __tablename__ = "audit_archive"

    month: Mapped[str] = mapped_column(String(7), primary_key=True)  # 2016-03
    file_name: Mapped[str] = mapped_column(String(255))
    sha256: Mapped[str] = mapped_column(String(64))
    events: Mapped[int] = mapped_column(BigInteger)
    # {"chain": {"first_seq", "prev_hash", "last_seq", "last_hash"}} per chain in the month
    chains: Mapped[dict[str, Any]] = mapped_column(JSON)
    archived_at: Mapped[datetime] = mapped_column(DateTime)
