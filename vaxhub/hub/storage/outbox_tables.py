"""Tables of the identity verification queue (migrations 0003, 0005, 0008).

- `verification_job` is the outbox and the verification state of each
  Patient, one row per Patient: the claim to put to the population registry
  (copied from the Patient version that asked for it, in the same
  transaction), the queue columns (state, attempts, when it may next be
  claimed, the lease of the worker holding it) and the latest result.
  A newer Patient version overwrites the row, which is how a pending job for
  an older version is superseded.
- `verification_result` keeps every result ever recorded (append-only): which
  registry said what about which Patient version, and when. The `insurance_*`
  columns (on both tables) hold the social insurance cross-check made with the
  population call; NULL when no social insurance registry was configured.
- `registry_circuit` is the shared circuit breaker of each registry, so that
  every worker process stops calling a registry that one of them found down,
  and operators can see it.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, DateTime, Float, Index, Integer, String, Text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from vaxhub.hub.storage.tables import Base

DOCUMENT = JSON(none_as_null=True).with_variant(JSONB(none_as_null=True), "postgresql")


class VerificationJobRow(Base):
    __tablename__ = "verification_job"

    patient_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    patient_version: Mapped[int] = mapped_column(Integer)
    claim: Mapped[dict[str, Any]] = mapped_column(DOCUMENT)
    site_ref: Mapped[str | None] = mapped_column(String(255))
    site_name: Mapped[str | None] = mapped_column(String(255))
    # The site code that wrote the Patient (its `meta.source`), which a site
    # operator's views are limited to; NULL for records loaded nationally.
    site_code: Mapped[str | None] = mapped_column(String(64))
    # queued (waiting or leased) | done | dead
    state: Mapped[str] = mapped_column(String(16))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    # When a queued job may be claimed; while leased, when the lease expires.
    available_at: Mapped[datetime] = mapped_column(DateTime)
    lease_token: Mapped[str | None] = mapped_column(String(36))
    leased_by: Mapped[str | None] = mapped_column(String(100))
    enqueued_at: Mapped[datetime] = mapped_column(DateTime)
    last_error: Mapped[str | None] = mapped_column(Text)
    # The latest result, kept while a re-check of a newer version is queued.
    result_status: Mapped[str | None] = mapped_column(String(16))
    result_version: Mapped[int | None] = mapped_column(Integer)
    mismatches: Mapped[dict[str, Any] | None] = mapped_column(DOCUMENT)
    registry_id: Mapped[str | None] = mapped_column(String(12))
    checked_at: Mapped[datetime | None] = mapped_column(DateTime)
    insurance_status: Mapped[str | None] = mapped_column(String(16))
    insurance_mismatches: Mapped[dict[str, Any] | None] = mapped_column(DOCUMENT)
    # The API request that queued this version's check (migration 0011), bound
    # by the worker for its logs and sent to the registries as X-Request-ID.
    request_id: Mapped[str | None] = mapped_column(String(64))

    __table_args__ = (
        Index("ix_verification_job_claimable", "state", "available_at"),
        Index("ix_verification_job_result", "result_status", "site_ref"),
        Index("ix_verification_job_site_code", "site_code", "result_status"),
    )


class VerificationResultRow(Base):
    __tablename__ = "verification_result"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    patient_id: Mapped[str] = mapped_column(String(64))
    patient_version: Mapped[int] = mapped_column(Integer)
    registry_name: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16))
    mismatches: Mapped[dict[str, Any] | None] = mapped_column(DOCUMENT)
    registry_id: Mapped[str | None] = mapped_column(String(12))
    message: Mapped[str | None] = mapped_column(Text)
    attempts: Mapped[int] = mapped_column(Integer)
    worker: Mapped[str] = mapped_column(String(100))
    recorded_at: Mapped[datetime] = mapped_column(DateTime)
    insurance_status: Mapped[str | None] = mapped_column(String(16))
    insurance_mismatches: Mapped[dict[str, Any] | None] = mapped_column(DOCUMENT)
    insurance_message: Mapped[str | None] = mapped_column(Text)

    __table_args__ = (Index("ix_verification_result_patient", "patient_id", "patient_version"),)


class RegistryCircuitRow(Base):
    __tablename__ = "registry_circuit"

    registry_name: Mapped[str] = mapped_column(String(64), primary_key=True)
    state: Mapped[str] = mapped_column(String(16))  # closed | open | half_open
    open_until: Mapped[datetime | None] = mapped_column(DateTime)
    cooldown_seconds: Mapped[float] = mapped_column(Float)
    opened_count: Mapped[int] = mapped_column(Integer, default=0)
    reason: Mapped[str | None] = mapped_column(Text)
    probe_by: Mapped[str | None] = mapped_column(String(100))
    updated_at: Mapped[datetime] = mapped_column(DateTime)
