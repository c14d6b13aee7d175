"""The export job table (migration 0010).

`bulk_export_job` holds one `$export` request from kick-off to expiry: what
was asked (level, Group, types, `_since`, the kick-off URL), who asked, the
transactionTime the data is as of, the queue columns (state, when it may next
be claimed, the lease of the worker holding it, attempts), progress, and once
done the manifest's files. Everything a status poll or a worker needs is here,
so any hub process or `vaxhub export work` can run, report or cancel any job.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, DateTime, Index, Integer, String, Text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from vaxhub.hub.storage.tables import Base

DOCUMENT = JSON(none_as_null=True).with_variant(JSONB(none_as_null=True), "postgresql")


class BulkExportJobRow(Base):
    __tablename__ = "bulk_export_job"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    client_id: Mapped[str] = mapped_column(String(255))
    level: Mapped[str] = mapped_column(String(8))  # system | patient | group
    group_id: Mapped[str | None] = mapped_column(String(64))
    group_version: Mapped[int | None] = mapped_column(Integer)  # the Group version read at kick-off
    patients: Mapped[list[str] | None] = mapped_column(DOCUMENT)  # the `patient` parameter of a POST kick-off
    types: Mapped[list[str]] = mapped_column(DOCUMENT)
    since: Mapped[datetime | None] = mapped_column(DateTime)
    request_url: Mapped[str] = mapped_column(Text)
    warnings: Mapped[list[str] | None] = mapped_column(DOCUMENT)  # parameters ignored under handling=lenient
    # queued | running | done | failed | cancelled | expired
    state: Mapped[str] = mapped_column(String(16))
    transaction_time: Mapped[datetime] = mapped_column(DateTime)
    created_at: Mapped[datetime] = mapped_column(DateTime)
    # When a queued job may be claimed; while running, when its lease expires.
    available_at: Mapped[datetime] = mapped_column(DateTime)
    lease_token: Mapped[str | None] = mapped_column(String(36))
    leased_by: Mapped[str | None] = mapped_column(String(100))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    resources_written: Mapped[int] = mapped_column(Integer, default=0)
    progress: Mapped[str | None] = mapped_column(String(255))
    output_dir: Mapped[str | None] = mapped_column(String(36))  # the finishing attempt's folder
    output: Mapped[list[dict[str, Any]] | None] = mapped_column(DOCUMENT)  # [{type, file, count}]
    errors: Mapped[list[dict[str, Any]] | None] = mapped_column(DOCUMENT)  # OperationOutcome files, same shape
    error: Mapped[str | None] = mapped_column(Text)  # why a failed job failed
    finished_at: Mapped[datetime | None] = mapped_column(DateTime)
    expires_at: Mapped[datetime | None] = mapped_column(DateTime)

    __table_args__ = (
        Index("ix_bulk_export_job_claim", "state", "available_at"),
        Index("ix_bulk_export_job_client", "client_id", "state"),
    )
